# gateway: MJPEG streams and the live dashboard under gunicorn.
# Built from the repository root: docker build -f docker/gateway.Dockerfile -t rts-gateway .
# checkov:skip=CKV_DOCKER_2:Kubernetes probes the service's ops port (the chart's probes); a Docker health check would never run there

# The dashboard's bundle, rebuilt from its sources (the committed copy is for `make run`).
FROM node:22.20.0-trixie-slim AS frontend
WORKDIR /src/services/gateway/frontend
COPY services/gateway/frontend/package.json services/gateway/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY services/gateway/frontend/ ./
RUN npm run build

FROM python:3.11.14-slim-trixie AS build
ENV UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# The workspace's manifests (uv export reads them with the lock), then the sources.
COPY pyproject.toml uv.lock ./
COPY tools/devstack/pyproject.toml tools/devstack/
COPY services/capture/pyproject.toml services/capture/
COPY services/event-sim/pyproject.toml services/event-sim/
COPY libs/common/ libs/common/
COPY services/gateway/pyproject.toml services/gateway/README.md services/gateway/
COPY services/gateway/src/ services/gateway/src/
COPY --from=frontend /src/services/gateway/src/rts_gateway/static/ services/gateway/src/rts_gateway/static/
COPY docker/install-service.sh docker/
RUN sh docker/install-service.sh rts-gateway services/gateway /opt/venv

FROM python:3.11.14-slim-trixie
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# The dashboard and streams; the ops port (/metrics, /healthz, /readyz).
EXPOSE 8000 9120
ENTRYPOINT ["gateway"]
