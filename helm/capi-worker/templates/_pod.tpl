{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "capi-worker.podTemplate" -}}
{{- $port := int (.Values.config.metrics.port | default 9100) -}}
metadata:
  annotations:
    # Rolls the pods when the worker's configuration changes. Not the destinationsDir
    # ConfigMap, nor tokens mounted as files (secrets.mode files): the worker reloads those
    # live. With secrets.mode env, a change of the chart's Secret rolls the pods; with files,
    # only a change of secrets.extraEnv (still environment variables) does.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if not .Values.secrets.existingSecret }}
    {{- if eq .Values.secrets.mode "files" }}
    checksum/secret-env: {{ .Values.secrets.extraEnv | default dict | toJson | sha256sum }}
    {{- else }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "capi-worker.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "capi-worker.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  # Longer than config.runtime.shutdown_timeout_seconds: SIGTERM flushes and commits first.
  terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
  containers:
    - name: capi-worker
      image: {{ include "capi-worker.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- $processes := int (.Values.processes | default 1) }}
      args: ["run", "--config", "/etc/capi-worker/config.yaml"{{ if gt $processes 1 }}, "--processes", "{{ $processes }}"{{ end }}]
      ports:
        - name: metrics
          containerPort: {{ $port }}
          protocol: TCP
      env:
        # The pod name: group.instance.id with workload.kind StatefulSet, and in logs.
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- if eq .Values.secrets.mode "env" }}
        {{- range $d := .Values.config.destinations }}
        {{- $suffix := include "capi-worker.envSuffix" ($d.name | toString) }}
        - name: CAPI_TOKEN_{{ $suffix }}
          valueFrom:
            secretKeyRef:
              name: {{ include "capi-worker.secretName" $ }}
              key: CAPI_TOKEN_{{ $suffix }}
        {{- if include "capi-worker.hasAppSecret" (dict "root" $ "name" $d.name) }}
        - name: CAPI_APP_SECRET_{{ $suffix }}
          valueFrom:
            secretKeyRef:
              name: {{ include "capi-worker.secretName" $ }}
              key: CAPI_APP_SECRET_{{ $suffix }}
        {{- end }}
        {{- end }}
        {{- end }}
        {{- range $name := include "capi-worker.extraSecretEnvNames" . | splitList "," | compact }}
        - name: {{ $name }}
          valueFrom:
            secretKeyRef:
              name: {{ include "capi-worker.secretName" $ }}
              key: {{ $name }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      {{- if .enabled }}
      livenessProbe:
        httpGet:
          path: /livez
          port: metrics
        initialDelaySeconds: {{ int .initialDelaySeconds }}
        periodSeconds: {{ int .periodSeconds }}
        timeoutSeconds: {{ int .timeoutSeconds }}
        failureThreshold: {{ int .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      {{- if .enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        initialDelaySeconds: {{ int .initialDelaySeconds }}
        periodSeconds: {{ int .periodSeconds }}
        timeoutSeconds: {{ int .timeoutSeconds }}
        failureThreshold: {{ int .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/capi-worker
          readOnly: true
        {{- if eq .Values.secrets.mode "files" }}
        # Tokens and app secrets, one file per key of the Secret; kubelet refreshes them when
        # the Secret changes and the worker reads them again at its next reload.
        - name: secrets
          mountPath: {{ include "capi-worker.secretsPath" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.destinationsDir.enabled }}
        # One file per shop: the worker's destinations_dir, reloaded live.
        - name: destinations
          mountPath: {{ include "capi-worker.destinationsPath" . }}
          readOnly: true
        {{- end }}
        # The root filesystem is read-only; /tmp is the only writable place.
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "capi-worker.fullname" . }}
    {{- if eq .Values.secrets.mode "files" }}
    - name: secrets
      secret:
        secretName: {{ include "capi-worker.secretName" . }}
        defaultMode: 0440
    {{- end }}
    {{- if .Values.destinationsDir.enabled }}
    - name: destinations
      configMap:
        name: {{ include "capi-worker.destinationsConfigMap" . }}
    {{- end }}
    - name: tmp
      emptyDir:
        {{- with .Values.tmpSizeLimit }}
        sizeLimit: {{ . }}
        {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
