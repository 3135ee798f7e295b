# capi-worker image.
#   docker build -t capi-worker .
#   docker run -v "$PWD/worker.yaml:/etc/capi-worker/config.yaml:ro" -p 9100:9100 capi-worker
# Plain Dockerfile syntax: builds with BuildKit and with the classic builder alike.

# --------------------------------------------------------------------------- builder
# Wheels of the project and of every dependency go to /wheels and are installed into a
# virtualenv at /opt/capi-worker; only that virtualenv reaches the final stage. Every
# dependency has a manylinux wheel for CPython 3.11 (confluent-kafka bundles librdkafka). The
# project's own wheel compiles the mapping with mypyc (setup.py) and builds its SHA-256
# extension over OpenSSL: gcc and the OpenSSL headers (libssl-dev) are installed in this stage
# only, never in the final one, which gets the compiled modules and no compiler (its libssl3,
# part of python:3.11-slim, has the libcrypto the extension links).
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, from pyproject.toml alone (with a stub package, nothing compiled), so this
# layer stays cached until pyproject.toml, setup.py or README.md (the long description) changes.
COPY pyproject.toml setup.py README.md ./
RUN mkdir worker \
 && touch worker/__init__.py \
 && CAPI_WORKER_COMPILE=0 pip wheel --wheel-dir /wheels . \
 && rm -rf /wheels/capi_worker-*.whl worker build ./*.egg-info

# CAPI_WORKER_COMPILE=required: a failed compile (the SHA-256 extension included) fails the
# image build instead of shipping a fallback; the checks below say which build the image runs.
COPY worker/ worker/
RUN CAPI_WORKER_COMPILE=required pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/capi-worker \
 && /opt/capi-worker/bin/pip install --no-index --find-links=/wheels capi-worker \
 && /opt/capi-worker/bin/pip uninstall --yes pip setuptools

# The default Avro schema (decoding.avro_schema) is package data of the wheel: fail the build
# if the installed package does not find it. (-I: import the installed package, not
# /src/worker from the working directory.)
RUN /opt/capi-worker/bin/python -I -c "import worker.config as c; assert c.DEFAULT_AVRO_SCHEMA.is_file(), c.DEFAULT_AVRO_SCHEMA" \
 && /opt/capi-worker/bin/capi-worker --help > /dev/null \
 && cd / && /opt/capi-worker/bin/capi-worker --version | grep "mapping: compiled (SHA-256: OpenSSL)"

# --------------------------------------------------------------------------- final
FROM python:3.11-slim

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="capi-worker" \
      org.opencontainers.image.description="Kafka worker forwarding Segment/RudderStack-spec events to Meta's Conversions API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/capi-worker/bin:$PATH

# uid/gid 10001, no home, no login shell (the Helm chart sets runAsUser 10001, runAsNonRoot).
RUN groupadd --system --gid 10001 capi \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin capi \
 && mkdir -p /etc/capi-worker

# Root-owned and read-only for the worker: it writes nothing to disk.
COPY --from=builder /opt/capi-worker /opt/capi-worker

# The compiled mapping and its SHA-256 extension load here too (libcrypto of this stage).
RUN capi-worker --version | grep "mapping: compiled (SHA-256: OpenSSL)"

USER 10001:10001

# /metrics (Prometheus), /livez and /readyz: metrics.port of the configuration.
EXPOSE 9100

# The configuration is mounted at /etc/capi-worker/config.yaml (ConfigMap, compose volume).
# On SIGTERM the worker flushes, commits and exits within runtime.shutdown_timeout_seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["capi-worker"]
CMD ["run", "--config", "/etc/capi-worker/config.yaml"]
