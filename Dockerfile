# syntax=docker/dockerfile:1
#
# PIE container image. `docker run IMAGE` serves the API (`pie serve`); any other `pie`
# subcommand replaces the default one: `docker run IMAGE worker`, `docker run IMAGE db upgrade`.
# Build: docker build -t pie:0.1.0 .        Deployment guide: docs/deploy.md
# tests/test_deploy.py checks the properties this file promises (stages, user, healthcheck…).

# -- builder: a wheel of PIE, installed with its dependencies into a self-contained venv ----
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /build
# Only what the wheel is built from, so edits to tests or docs keep the layers cached.
COPY pyproject.toml README.md ./
COPY src ./src
# Every runtime dependency ships binary wheels for CPython 3.11 on amd64 and arm64, so the
# builder needs no compiler. pip compiles the venv's bytecode here, once, so the runtime
# stage never has to write any.
RUN python -m pip wheel --no-deps --wheel-dir /build/dist . \
 && python -m venv /opt/pie \
 && /opt/pie/bin/pip install /build/dist/*.whl

# -- runtime: python:3.11-slim plus the venv, nothing else ----------------------------------
FROM python:3.11-slim AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pie" \
      org.opencontainers.image.description="PIE: a multi-tenant model registry and durable job engine" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, non-root identity so volume ownership and Kubernetes securityContext
# (runAsUser / fsGroup 10001) stay predictable across image versions.
RUN groupadd --gid 10001 pie \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/pie --no-create-home \
      --shell /usr/sbin/nologin pie \
 && mkdir -p /var/lib/pie \
 && chown 10001:10001 /var/lib/pie \
 && chmod 0700 /var/lib/pie

COPY --from=builder /opt/pie /opt/pie

# PIE_DATA_DIR holds the SQLite database and generated secrets in single-container use;
# with PostgreSQL and PIE_CALLBACK_SECRET (plus JWKS auth or PIE_LOCAL_SECRET) nothing is
# written there. Logs are JSON lines on stderr.
ENV PATH="/opt/pie/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIE_DATA_DIR=/var/lib/pie \
    PIE_HOST=0.0.0.0 \
    PIE_PORT=8000 \
    PIE_LOG_FORMAT=json

WORKDIR /var/lib/pie
VOLUME ["/var/lib/pie"]
USER 10001:10001
EXPOSE 8000

# Readiness of `pie serve` (503 while the database is unreachable). The slim image has no
# curl, so the venv's Python asks; proxies are bypassed (HTTP_PROXY set for AWS calls must
# not capture 127.0.0.1). A `pie worker` container serves no HTTP: run it with
# --no-healthcheck (compose: `healthcheck: {disable: true}`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/pie/bin/python", "-I", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('PIE_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["pie"]
CMD ["serve"]
