# event-sim: simulated viewers whose players report playback events to Kafka; also the
# notifier (`notifier`), whose dependencies are event-sim's and paho-mqtt.
# Built from the repository root: docker build -f docker/event-sim.Dockerfile -t rts-event-sim .
# checkov:skip=CKV_DOCKER_2:Kubernetes probes the service's ops port (the chart's probes); a Docker health check would never run there
# checkov:skip=CKV_DOCKER_7:the bases are build arguments whose defaults (below) are exact versions; checkov cannot read through ARG

# The base images (a build may substitute its own, e.g. a local mirror's).
ARG PYTHON_IMAGE=python:3.11.17-slim-trixie

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
COPY services/gateway/pyproject.toml services/gateway/
COPY services/latency-probe/pyproject.toml services/latency-probe/
COPY libs/common/ libs/common/
COPY services/event-sim/ services/event-sim/
COPY services/notifier/ services/notifier/
COPY docker/install-service.sh docker/
RUN sh docker/install-service.sh /opt/venv rts-eventsim=services/event-sim \
    rts-notifier=services/notifier

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 9110 9140
ENTRYPOINT ["event-sim"]
