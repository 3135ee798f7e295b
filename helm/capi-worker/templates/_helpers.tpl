{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "capi-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart's. */}}
{{- define "capi-worker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "capi-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "capi-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "capi-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "capi-worker.labels" -}}
helm.sh/chart: {{ include "capi-worker.chart" . }}
{{ include "capi-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "capi-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "capi-worker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "capi-worker.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tokens: the user's existingSecret or the chart's own. */}}
{{- define "capi-worker.secretName" -}}
{{- default (include "capi-worker.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Where the Secret is mounted (secrets.mode files) and where destinationsDir is mounted. */}}
{{- define "capi-worker.secretsPath" -}}/run/secrets/capi-worker{{- end -}}
{{- define "capi-worker.destinationsPath" -}}/etc/capi-worker-destinations{{- end -}}

{{/* The ConfigMap mounted as destinations_dir: the user's, or the chart's own. */}}
{{- define "capi-worker.destinationsConfigMap" -}}
{{- default (printf "%s-destinations" (include "capi-worker.fullname" .)) .Values.destinationsDir.existingConfigMap -}}
{{- end -}}

{{/* Every destination the chart knows of: config.destinations, then destinationsDir's (as
JSON: {"items": [...]}, read back with fromJson). */}}
{{- define "capi-worker.allDestinations" -}}
{{- $all := .Values.config.destinations | default list -}}
{{- if .Values.destinationsDir.enabled -}}
{{- $all = concat $all (.Values.destinationsDir.destinations | default list) -}}
{{- end -}}
{{- dict "items" $all | toJson -}}
{{- end -}}

{{/* One destination as the worker reads it: its values plus where its token (and app secret)
come from, a file of the mounted Secret or a ${VAR} of the environment (as JSON). */}}
{{- define "capi-worker.destinationWithSecrets" -}}
{{- $root := .root -}}
{{- $suffix := include "capi-worker.envSuffix" (.destination.name | toString) -}}
{{- $entry := deepCopy .destination -}}
{{- $files := eq $root.Values.secrets.mode "files" -}}
{{- if $files -}}
{{- $_ := set $entry "access_token_file" (printf "%s/CAPI_TOKEN_%s" (include "capi-worker.secretsPath" $root) $suffix) -}}
{{- else -}}
{{- $_ := set $entry "access_token" (printf "${CAPI_TOKEN_%s}" $suffix) -}}
{{- end -}}
{{- if include "capi-worker.hasAppSecret" (dict "root" $root "name" .destination.name) -}}
{{- if $files -}}
{{- $_ := set $entry "app_secret_file" (printf "%s/CAPI_APP_SECRET_%s" (include "capi-worker.secretsPath" $root) $suffix) -}}
{{- else -}}
{{- $_ := set $entry "app_secret" (printf "${CAPI_APP_SECRET_%s}" $suffix) -}}
{{- end -}}
{{- end -}}
{{- toJson $entry -}}
{{- end -}}

{{/* Environment-variable suffix of a destination name: "eu-shop" -> "EU_SHOP". */}}
{{- define "capi-worker.envSuffix" -}}
{{- regexReplaceAll "[^A-Z0-9]" (upper .) "_" -}}
{{- end -}}

{{/* Whether the destination named by .name has an app secret: "true" or "". */}}
{{- define "capi-worker.hasAppSecret" -}}
{{- $s := .root.Values.secrets -}}
{{- if $s.existingSecret -}}
{{- if has .name ($s.existingSecretKeys.appSecrets | default list) -}}true{{- end -}}
{{- else if index ($s.appSecrets | default dict) .name -}}true{{- end -}}
{{- end -}}

{{/* Every key the worker reads from the Secret in use, comma-separated. */}}
{{- define "capi-worker.secretKeys" -}}
{{- $keys := list -}}
{{- range $d := (include "capi-worker.allDestinations" . | fromJson).items -}}
{{- $suffix := include "capi-worker.envSuffix" ($d.name | toString) -}}
{{- $keys = append $keys (printf "CAPI_TOKEN_%s" $suffix) -}}
{{- if include "capi-worker.hasAppSecret" (dict "root" $ "name" $d.name) -}}
{{- $keys = append $keys (printf "CAPI_APP_SECRET_%s" $suffix) -}}
{{- end -}}
{{- end -}}
{{- concat $keys (include "capi-worker.extraSecretEnvNames" . | splitList "," | compact) | join "," -}}
{{- end -}}

{{/* Names of the extra secret variables: "A,B" (sorted), from the Secret in use. */}}
{{- define "capi-worker.extraSecretEnvNames" -}}
{{- $s := .Values.secrets -}}
{{- if $s.existingSecret -}}
{{- $s.existingSecretKeys.extraEnv | default list | sortAlpha | join "," -}}
{{- else -}}
{{- keys ($s.extraEnv | default dict) | sortAlpha | join "," -}}
{{- end -}}
{{- end -}}

{{/*
Checks that need more than values.schema.json: required settings, cross-field rules and
secret references. Included by the workload template, so every render runs them.
*/}}
{{- define "capi-worker.validate" -}}
{{- $cfg := .Values.config -}}
{{- $kafka := $cfg.kafka | default dict -}}
{{- if not $kafka.bootstrap_servers -}}
{{- fail "capi-worker: set config.kafka.bootstrap_servers (the broker list, e.g. broker-1:9092,broker-2:9092)" -}}
{{- end -}}
{{- if not $kafka.topics -}}
{{- fail "capi-worker: set config.kafka.topics (the source topics, a list)" -}}
{{- end -}}
{{- if not $kafka.dead_letter_topic -}}
{{- fail "capi-worker: set config.kafka.dead_letter_topic (where undeliverable records go)" -}}
{{- end -}}
{{- $dir := .Values.destinationsDir -}}
{{- if not (or $cfg.destinations $dir.enabled) -}}
{{- fail "capi-worker: set config.destinations (one entry per Meta pixel: name and pixel_id), or destinationsDir" -}}
{{- end -}}
{{- if $dir.enabled -}}
{{- if ne .Values.secrets.mode "files" -}}
{{- fail "capi-worker: destinationsDir needs secrets.mode files: a shop added later must find its token without a restart" -}}
{{- end -}}
{{- if not (or $dir.destinations $dir.existingConfigMap $cfg.destinations) -}}
{{- fail "capi-worker: destinationsDir is enabled but has no destinations: set destinationsDir.destinations or destinationsDir.existingConfigMap" -}}
{{- end -}}
{{- range $d := $dir.destinations -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" ($d.name | toString)) -}}
{{- fail (printf "capi-worker: destinationsDir destination %q: the name becomes a ConfigMap key (<name>.yaml): letters, digits, '-', '_' and '.' only" ($d.name | toString)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $metrics := $cfg.metrics | default dict -}}
{{- if not $metrics.enabled -}}
{{- fail "capi-worker: config.metrics.enabled must be true: the liveness and readiness probes use the metrics port" -}}
{{- end -}}
{{- $runtime := $cfg.runtime | default dict -}}
{{- $shutdown := $runtime.shutdown_timeout_seconds | default 25 | float64 -}}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $shutdown -}}
{{- fail (printf "capi-worker: terminationGracePeriodSeconds (%v) must exceed config.runtime.shutdown_timeout_seconds (%v), or Kubernetes kills the worker before it has flushed and committed" .Values.terminationGracePeriodSeconds $shutdown) -}}
{{- end -}}
{{- range $section := list "client" "consumer" "producer" -}}
{{- if hasKey (index $kafka $section | default dict) "group.instance.id" -}}
{{- fail (printf "capi-worker: do not set group.instance.id in config.kafka.%s: every pod needs its own; use workload.kind StatefulSet, which sets it from the pod name" $section) -}}
{{- end -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $d := (include "capi-worker.allDestinations" . | fromJson).items -}}
{{- if or (hasKey $d "access_token") (hasKey $d "app_secret") -}}
{{- fail (printf "capi-worker: destination %q: remove access_token/app_secret from config.destinations (the config is a ConfigMap, readable by anyone who can read the namespace); put them in secrets.accessTokens/appSecrets or in secrets.existingSecret" ($d.name | toString)) -}}
{{- end -}}
{{- $suffix := include "capi-worker.envSuffix" ($d.name | toString) -}}
{{- if hasKey $seen $suffix -}}
{{- fail (printf "capi-worker: destinations %q and %q both map to the variable CAPI_TOKEN_%s: rename one" (get $seen $suffix) $d.name $suffix) -}}
{{- end -}}
{{- $_ := set $seen $suffix $d.name -}}
{{- if and (not $.Values.secrets.existingSecret) (not (index ($.Values.secrets.accessTokens | default dict) $d.name)) -}}
{{- fail (printf "capi-worker: destination %q has no access token: set secrets.accessTokens.%s, or secrets.existingSecret (a Secret with the key CAPI_TOKEN_%s)" $d.name $d.name $suffix) -}}
{{- end -}}
{{- end -}}
{{- $keda := .Values.autoscaling.keda -}}
{{- if and $keda.enabled .Values.autoscaling.hpa.enabled -}}
{{- fail "capi-worker: autoscaling.keda.enabled and autoscaling.hpa.enabled are mutually exclusive (KEDA manages its own HPA): enable one" -}}
{{- end -}}
{{- if $keda.enabled -}}
{{- if not $keda.partitions -}}
{{- fail "capi-worker: set autoscaling.keda.partitions to the topic's partition count: it caps the replicas (a consumer group never uses more members than partitions)" -}}
{{- end -}}
{{- $processes := int (.Values.processes | default 1) -}}
{{- if and (not (kindIs "invalid" $keda.maxReplicaCount)) (gt (mul (int $keda.maxReplicaCount) $processes) (int $keda.partitions)) -}}
{{- if eq $processes 1 -}}
{{- fail (printf "capi-worker: autoscaling.keda.maxReplicaCount (%d) exceeds autoscaling.keda.partitions (%d): replicas past the partition count sit idle" (int $keda.maxReplicaCount) (int $keda.partitions)) -}}
{{- else -}}
{{- fail (printf "capi-worker: autoscaling.keda.maxReplicaCount (%d) x processes (%d) exceeds autoscaling.keda.partitions (%d): consumer processes past the partition count sit idle" (int $keda.maxReplicaCount) $processes (int $keda.partitions)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $hpa := .Values.autoscaling.hpa -}}
{{- $members := int (.Values.processes | default 1) -}}
{{- if and $hpa.enabled $keda.partitions (gt (mul (int $hpa.maxReplicas) $members) (int $keda.partitions)) -}}
{{- fail (printf "capi-worker: autoscaling.hpa.maxReplicas (%d) x processes (%d) exceeds autoscaling.keda.partitions (%d): replicas past the partition count sit idle" (int $hpa.maxReplicas) $members (int $keda.partitions)) -}}
{{- end -}}
{{- end -}}

{{/* The worker's YAML configuration as rendered into the ConfigMap (no secret in it). */}}
{{- define "capi-worker.config" -}}
{{- $cfg := omit (deepCopy .Values.config) "destinations" -}}
{{- $kafka := $cfg.kafka -}}
{{- if eq .Values.workload.kind "StatefulSet" -}}
{{- $consumer := $kafka.consumer | default dict -}}
{{- $_ := set $consumer "group.instance.id" "${POD_NAME}" -}}
{{- $_ := set $kafka "consumer" $consumer -}}
{{- end -}}
{{- $destinations := list -}}
{{- range $d := .Values.config.destinations -}}
{{- $destinations = append $destinations (include "capi-worker.destinationWithSecrets" (dict "root" $ "destination" $d) | fromJson) -}}
{{- end -}}
{{- $_ := set $cfg "destinations" $destinations -}}
{{- if .Values.destinationsDir.enabled -}}
{{- $_ := set $cfg "destinations_dir" (include "capi-worker.destinationsPath" .) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
