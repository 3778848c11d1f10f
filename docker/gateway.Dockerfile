# gateway: MJPEG streams and the live dashboard under gunicorn; also the latency probe
# (`latency-probe`), which signs in with the gateway's own code and so ships with it.
# Built from the repository root: docker build -f docker/gateway.Dockerfile -t rts-gateway .
# checkov:skip=CKV_DOCKER_2:Kubernetes probes the service's ops port (the chart's probes); a Docker health check would never run there
# checkov:skip=CKV_DOCKER_7:the bases are build arguments whose defaults (below) are exact versions; checkov cannot read through ARG

# The base images (a build may substitute its own, e.g. a local mirror's).
ARG PYTHON_IMAGE=python:3.11.17-slim-trixie
ARG NODE_IMAGE=node:22.24.0-trixie-slim

# The dashboard's bundle, rebuilt from its sources (the committed copy is for `make run`).
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src/services/gateway/frontend
COPY services/gateway/frontend/package.json services/gateway/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY services/gateway/frontend/ ./
RUN npm run build

FROM ${PYTHON_IMAGE} AS build
ENV UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# The workspace's manifests (uv export reads them with the lock), then the sources.
COPY pyproject.toml uv.lock ./
COPY tools/devstack/pyproject.toml tools/devstack/
COPY tools/cluster/pyproject.toml tools/cluster/
COPY services/capture/pyproject.toml services/capture/
COPY services/event-sim/pyproject.toml services/event-sim/
COPY services/notifier/pyproject.toml services/notifier/
COPY libs/common/ libs/common/
COPY services/gateway/pyproject.toml services/gateway/README.md services/gateway/
COPY services/gateway/src/ services/gateway/src/
COPY services/latency-probe/ services/latency-probe/
COPY --from=frontend /src/services/gateway/src/rts_gateway/static/ services/gateway/src/rts_gateway/static/
COPY docker/install-service.sh docker/
RUN sh docker/install-service.sh /opt/venv rts-gateway=services/gateway \
    rts-probe=services/latency-probe

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# The dashboard and streams; the ops port (/metrics, /healthz, /readyz).
EXPOSE 8000 9130
ENTRYPOINT ["gateway"]
