# The two commands a newcomer needs: `make run` and `make test`. Everything else is
# a step of those, or an operator's convenience. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .cache/tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Use the machine's Python; never download an interpreter behind the user's back.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- environment ------------------------------------------------------------------------

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard */*/pyproject.toml)
	$(UV) sync --locked --all-packages
	@touch $@

.PHONY: venv
venv: $(VENV)/.synced ## create/update the virtual environment (.venv) from uv.lock

.PHONY: lock
lock: $(UV) ## re-resolve uv.lock after changing a pyproject.toml
	$(UV) lock

.PHONY: system-deps
system-deps: ## install the system packages the tests need (Debian/Ubuntu, as root)
	bash tools/system-deps.sh

# --- the local stack --------------------------------------------------------------------

.PHONY: kafka-fetch
kafka-fetch: venv ## fetch the Kafka broker jars from Maven Central (cached)
	$(BIN)/rts-devstack kafka fetch

# GATEWAYS=N: N gateway replicas behind nginx on the gateway's port (`make run GATEWAYS=3`,
# then `make scale GATEWAYS=N` while it runs); unset: one gateway, no nginx.
GATEWAYS ?=

.PHONY: run
run: kafka-fetch ## run the whole platform locally (GATEWAYS=N: N gateways behind nginx); Ctrl-C stops it
	$(BIN)/rts-devstack run $(if $(GATEWAYS),--gateways $(GATEWAYS))

.PHONY: login-url
login-url: venv ## print a new sign-in link for the dashboard of `make run`
	@GATEWAY_AUTH_SECRET="$$(cat $${RTS_DATA_DIR:-.data}/gateway-secret)" $(BIN)/gateway login-url \
		--base http://127.0.0.1:$${GATEWAY_PORT:-8000}

.PHONY: kafka-start kafka-stop kafka-status
kafka-start: kafka-fetch ## start only the local broker, in the background
	$(BIN)/rts-devstack kafka start
kafka-stop: venv ## stop the background broker
	$(BIN)/rts-devstack kafka stop
kafka-status: venv ## is the background broker running?
	$(BIN)/rts-devstack kafka status

# --- tests ------------------------------------------------------------------------------

.PHONY: test
test: unit integration e2e static ## everything CI runs: unit, integration (real broker), browser, static checks

.PHONY: unit
unit: venv ## fast tests, no broker
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: integration
integration: kafka-fetch ## tests against a real broker started on free ports (or KAFKA_BOOTSTRAP)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

.PHONY: e2e
e2e: kafka-fetch ## the dashboard in headless Chromium against the full local stack
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

.PHONY: static
static: venv frontend-deps $(HELM) ## lint, format and type checks; the dashboard bundle is up to date; chart and images
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd $(FRONTEND) && npm run --silent check
	HELM=$(HELM) $(BIN)/pytest tests/static $(PYTEST_ARGS)

# --- the dashboard's front end ----------------------------------------------------------

FRONTEND := services/gateway/frontend

$(FRONTEND)/node_modules/.package-lock.json: $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: frontend-deps
frontend-deps: $(FRONTEND)/node_modules/.package-lock.json

.PHONY: frontend
frontend: frontend-deps ## rebuild the dashboard bundle (committed) after changing frontend/src
	cd $(FRONTEND) && npm run --silent build

.PHONY: fmt
fmt: venv ## format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# --- Kubernetes: the chart's tools ------------------------------------------------------

# helm, built from source with Go at a pinned version (no prebuilt binary download).
HELM_VERSION := v4.3.1
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm

$(HELM):
	@command -v go >/dev/null || { echo "helm is built with Go (1.24+): install Go first" >&2; exit 1; }
	GOBIN=$(abspath $(dir $(HELM))) GOFLAGS=-buildvcs=false go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: helm
helm: $(HELM) ## build the pinned helm the chart tests use (cached in .cache/tools)

.PHONY: chart-topics
chart-topics: venv ## regenerate the chart's topic list from rts_common.contracts
	$(BIN)/python tools/chart_topics.py

# --- Kubernetes: a local cluster (kind by default, CLUSTER=minikube) ------------------------

include k8s/versions.mk

CLUSTER ?= kind
CLUSTER_NAME ?= rts
NAMESPACE ?= rts
RELEASE ?= streaming
REPLICAS ?= 3
KEDA ?=
# Your own helm (3.8+ or 4) for the cluster; the tests use the pinned build above.
HELM_CLI ?= helm
IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
SERVICES := capture event-sim gateway
DEPLOY_TIMEOUT ?= 15m

ifeq ($(CLUSTER),kind)
KUBE_CONTEXT := kind-$(CLUSTER_NAME)
else ifeq ($(CLUSTER),minikube)
KUBE_CONTEXT := $(CLUSTER_NAME)
else
$(error CLUSTER must be kind or minikube)
endif
KUBECTL := kubectl --context $(KUBE_CONTEXT)
HELMK := $(HELM_CLI) --kube-context $(KUBE_CONTEXT)

.PHONY: cluster-up
cluster-up: ## create the local cluster (kind; CLUSTER=minikube for minikube)
ifeq ($(CLUSTER),kind)
	kind create cluster --name $(CLUSTER_NAME) --config k8s/kind-config.yaml --image $(KIND_NODE_IMAGE)
else
	minikube start --profile $(CLUSTER_NAME) --kubernetes-version=$(MINIKUBE_KUBERNETES_VERSION) \
	  --cpus=4 --memory=8g --addons=ingress
endif
	$(KUBECTL) wait --for=condition=Ready nodes --all --timeout=180s

.PHONY: images
images: ## build the three images and load them into the cluster
	for s in $(SERVICES); do \
	  docker build -f docker/$$s.Dockerfile -t rts-$$s:$(IMAGE_TAG) . || exit 1; \
	done
ifeq ($(CLUSTER),kind)
	kind load docker-image --name $(CLUSTER_NAME) $(foreach s,$(SERVICES),rts-$(s):$(IMAGE_TAG))
else
	for s in $(SERVICES); do minikube --profile $(CLUSTER_NAME) image load rts-$$s:$(IMAGE_TAG) || exit 1; done
endif

.PHONY: operators
operators: ## install ingress-nginx (kind), kube-prometheus-stack, Strimzi (and KEDA with KEDA=1)
ifeq ($(CLUSTER),kind)
	$(HELMK) upgrade --install ingress-nginx ingress-nginx --repo $(INGRESS_NGINX_REPO) \
	  --version $(INGRESS_NGINX_VERSION) --namespace ingress-nginx --create-namespace \
	  --values k8s/ingress-nginx.yaml --wait --timeout 5m
endif
	$(HELMK) upgrade --install kube-prometheus-stack $(KPS_CHART) --repo $(KPS_REPO) \
	  --version $(KPS_VERSION) --namespace monitoring --create-namespace \
	  --values k8s/kube-prometheus-stack.yaml --wait --timeout 10m
	$(KUBECTL) create namespace $(NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(HELMK) upgrade --install strimzi $(STRIMZI_CHART) --version $(STRIMZI_VERSION) \
	  --namespace strimzi --create-namespace --values k8s/strimzi.yaml \
	  --set "watchNamespaces={$(NAMESPACE)}" --wait --timeout 5m
ifneq ($(KEDA),)
	$(HELMK) upgrade --install keda keda --repo $(KEDA_REPO) --version $(KEDA_VERSION) \
	  --namespace keda --create-namespace --values k8s/keda.yaml --wait --timeout 5m
endif

.PHONY: deploy
deploy: operators ## install the operators, then the chart; wait until everything is ready
	$(HELMK) upgrade --install $(RELEASE) helm/streaming --namespace $(NAMESPACE) \
	  --set image.tag=$(IMAGE_TAG) $(if $(KEDA),--set gateway.keda.enabled=true) $(HELM_ARGS)
	@echo "waiting for Kafka (the first start takes a few minutes)..."
	$(KUBECTL) -n $(NAMESPACE) wait kafka/$(RELEASE) --for=condition=Ready --timeout=$(DEPLOY_TIMEOUT)
	$(KUBECTL) -n $(NAMESPACE) wait kafkatopic,kafkauser -l app.kubernetes.io/instance=$(RELEASE) \
	  --for=condition=Ready --timeout=5m
	$(KUBECTL) -n $(NAMESPACE) wait deployment -l app.kubernetes.io/instance=$(RELEASE) \
	  --for=condition=Available --timeout=5m
	$(HELMK) test $(RELEASE) --namespace $(NAMESPACE) --logs
	@echo; echo "dashboard: $(if $(filter kind,$(CLUSTER)),http://localhost/,http://$$(minikube --profile $(CLUSTER_NAME) ip)/)"

.PHONY: cluster-login-url
cluster-login-url: ## print a one-time sign-in link for the cluster's dashboard (BASE=URL)
	@$(KUBECTL) -n $(NAMESPACE) exec deploy/$(RELEASE)-gateway -- gateway login-url \
	  --base $(or $(BASE),$(if $(filter kind,$(CLUSTER)),http://localhost,http://$$(minikube --profile $(CLUSTER_NAME) ip)))

.PHONY: scale
scale: ## GATEWAYS=N: the running `make run`'s gateways; else the cluster's, to REPLICAS (3)
ifneq ($(GATEWAYS),)
	$(BIN)/rts-devstack scale $(GATEWAYS)
else
	$(KUBECTL) -n $(NAMESPACE) scale deployment/$(RELEASE)-gateway --replicas=$(REPLICAS)
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/$(RELEASE)-gateway --timeout=5m
endif

.PHONY: grafana
grafana: ## port-forward Grafana to http://localhost:3000 (Ctrl-C stops)
	@echo "Grafana: http://localhost:3000  user: admin  password:"
	@echo "  $(KUBECTL) -n monitoring get secret kube-prometheus-stack-grafana -o jsonpath='{.data.admin-password}' | base64 -d; echo"
	$(KUBECTL) -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80

.PHONY: status
status: ## what runs: Kafka resources, pods, services, ingress
	$(KUBECTL) -n $(NAMESPACE) get kafka,kafkanodepool,kafkatopic,kafkauser
	$(KUBECTL) -n $(NAMESPACE) get deployments,pods,services,ingress -o wide

.PHONY: logs
logs: ## recent logs of the platform's pods (SERVICE=gateway|capture|event-sim to pick one)
	$(KUBECTL) -n $(NAMESPACE) logs --prefix --tail=50 --max-log-requests=20 \
	  -l app.kubernetes.io/instance=$(RELEASE)$(if $(SERVICE),$(comma)app.kubernetes.io/component=$(SERVICE))

comma := ,

.PHONY: cluster-smoke
cluster-smoke: venv ## check a deployed cluster end to end (frames, events, scaling, Prometheus)
	$(BIN)/python tools/cluster_smoke.py --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) --release $(RELEASE)

.PHONY: cluster-down
cluster-down: ## delete the local cluster
ifeq ($(CLUSTER),kind)
	kind delete cluster --name $(CLUSTER_NAME)
else
	minikube delete --profile $(CLUSTER_NAME)
endif

# --- observability ----------------------------------------------------------------------

.PHONY: dashboards
dashboards: venv ## regenerate the Grafana dashboards (committed) after changing observability/
	$(BIN)/rts-dashboards write

# --- housekeeping -----------------------------------------------------------------------

.PHONY: clean clean-data
clean: ## remove the environment and caches (keeps broker data)
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
clean-data: ## remove the local broker's data (topics and their messages)
	$(BIN)/rts-devstack kafka stop || true
	rm -rf .data
