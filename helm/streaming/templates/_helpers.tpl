{{/*
Expand the name of the chart.
*/}}
{{- define "streaming.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "streaming.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "streaming.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "streaming.labels" -}}
helm.sh/chart: {{ include "streaming.chart" . }}
{{ include "streaming.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "streaming.name" . }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "streaming.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streaming.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component (gateway, capture, event-sim): call with (dict "root" $ "component" "gateway").
*/}}
{{- define "streaming.componentLabels" -}}
{{ include "streaming.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streaming.componentSelectorLabels" -}}
{{ include "streaming.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Image reference of a service: call with (dict "root" $ "image" .Values.gateway.image).
By tag, and by digest too when the image names one: the tag says what it is, the digest
makes sure that is what runs.
*/}}
{{- define "streaming.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- $ref := printf "%s:%s" .image.repository $tag -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end -}}
{{ $ref }}
{{- end }}

{{/*
checkov's findings the chart accepts, with the reason (metadata annotations of a pod's
owner): call with (dict "root" $ "image" .Values.gateway.image).
*/}}
{{- define "streaming.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_11=no CPU limit on purpose, CFS throttling stalls live streams; the requests reserve the CPU"
checkov.io/skip2: "CKV_K8S_15=IfNotPresent lets kind and minikube run the images make images loaded; tags are commits, and digests pin them when given"
checkov.io/skip3: "CKV_K8S_35=the services read settings from the environment; secrets come from secretKeyRef and never sit in the manifest"
{{- if not .image.digest }}
checkov.io/skip4: "CKV_K8S_43=pulled by tag and digest when the image has one (image.digest); the local images of make images have none"
{{- end }}
{{- end }}

{{/*
The Strimzi Kafka cluster's name.
*/}}
{{- define "streaming.kafkaCluster" -}}
{{- default (include "streaming.fullname" .) .Values.kafka.strimzi.clusterName | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
Is the chart's own Strimzi listener authenticating clients (SCRAM) and encrypting (TLS)?
*/}}
{{- define "streaming.strimziScram" -}}
{{- if and (eq .Values.kafka.mode "strimzi") (eq .Values.kafka.strimzi.listener.authentication "scram-sha-512") }}true{{ end }}
{{- end }}

{{/*
Kafka bootstrap address the services connect to.
*/}}
{{- define "streaming.kafkaBootstrap" -}}
{{- if eq .Values.kafka.mode "strimzi" -}}
{{ printf "%s-kafka-bootstrap:%d" (include "streaming.kafkaCluster" .) (int .Values.kafka.strimzi.listener.port) }}
{{- else -}}
{{ required "kafka.external.bootstrap is required when kafka.mode is external" .Values.kafka.external.bootstrap }}
{{- end -}}
{{- end }}

{{/*
librdkafka's security.protocol for the services.
*/}}
{{- define "streaming.kafkaSecurityProtocol" -}}
{{- if eq .Values.kafka.mode "strimzi" -}}
{{- $l := .Values.kafka.strimzi.listener -}}
{{- if and $l.tls (eq $l.authentication "scram-sha-512") }}SASL_SSL
{{- else if $l.tls }}SSL
{{- else if eq $l.authentication "scram-sha-512" }}SASL_PLAINTEXT
{{- else }}PLAINTEXT
{{- end -}}
{{- else -}}
{{ .Values.kafka.external.securityProtocol }}
{{- end -}}
{{- end }}

{{/*
Name of the Secret holding the CA that signed the brokers' certificates, or "" when none.
*/}}
{{- define "streaming.kafkaCaSecret" -}}
{{- if eq .Values.kafka.mode "strimzi" -}}
{{- if .Values.kafka.strimzi.listener.tls }}{{ include "streaming.kafkaCluster" . }}-cluster-ca-cert{{ end -}}
{{- else -}}
{{ .Values.kafka.external.caSecret.name }}
{{- end -}}
{{- end }}

{{- define "streaming.kafkaCaKey" -}}
{{- if eq .Values.kafka.mode "strimzi" }}ca.crt{{ else }}{{ .Values.kafka.external.caSecret.key }}{{ end -}}
{{- end }}

{{/*
The KafkaUser (Strimzi) of a service: call with (dict "root" $ "service" "gateway").
*/}}
{{- define "streaming.kafkaUser" -}}
{{- printf "%s-%s" (include "streaming.fullname" .root) .service | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Environment of every service: logging and the Kafka connection. Call with
(dict "root" $ "service" "gateway" "credentials" .Values.kafka.external.credentials.gateway).
*/}}
{{- define "streaming.commonEnv" -}}
{{- $root := .root -}}
- name: LOG_LEVEL
  value: {{ $root.Values.logging.level | quote }}
- name: LOG_FORMAT
  value: {{ $root.Values.logging.format | quote }}
- name: KAFKA_BOOTSTRAP
  value: {{ include "streaming.kafkaBootstrap" $root | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ include "streaming.kafkaSecurityProtocol" $root | quote }}
- name: KAFKA_TOPIC_PREFIX
  value: {{ $root.Values.kafka.topicPrefix | quote }}
{{- if eq $root.Values.kafka.mode "strimzi" }}
{{- if include "streaming.strimziScram" $root }}
- name: KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: KAFKA_USERNAME
  value: {{ include "streaming.kafkaUser" . | quote }}
- name: KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streaming.kafkaUser" . }}
      key: password
{{- end }}
{{- else if hasPrefix "SASL" $root.Values.kafka.external.securityProtocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $root.Values.kafka.external.saslMechanism | quote }}
- name: KAFKA_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "kafka.external.credentials.%s.secretName is required with SASL" (default .service .credentialsName)) .credentials.secretName }}
      key: {{ .credentials.usernameKey }}
- name: KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .credentials.secretName }}
      key: {{ .credentials.passwordKey }}
{{- end }}
{{- if include "streaming.kafkaCaSecret" $root }}
- name: KAFKA_CA_FILE
  value: /etc/kafka-ca/{{ include "streaming.kafkaCaKey" $root }}
{{- end }}
{{- end }}

{{/*
The CA volume and its mount, when the brokers speak TLS.
*/}}
{{- define "streaming.kafkaCaVolume" -}}
{{- if include "streaming.kafkaCaSecret" . -}}
- name: kafka-ca
  secret:
    secretName: {{ include "streaming.kafkaCaSecret" . }}
    items:
      - key: {{ include "streaming.kafkaCaKey" . }}
        path: {{ include "streaming.kafkaCaKey" . }}
{{- end }}
{{- end }}

{{- define "streaming.kafkaCaMount" -}}
{{- if include "streaming.kafkaCaSecret" . -}}
- name: kafka-ca
  mountPath: /etc/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{/*
Extra environment variables from a map (name: value), sorted by name.
*/}}
{{- define "streaming.extraEnv" -}}
{{- $env := list }}
{{- range $name, $value := . }}
{{- $env = append $env (dict "name" $name "value" ($value | toString)) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
Labels the monitors carry so that the Prometheus of kube-prometheus-stack selects them.
*/}}
{{- define "streaming.monitorLabels" -}}
{{ include "streaming.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The contract topics (files/topics.yaml, generated from rts_common.contracts).
*/}}
{{- define "streaming.topics" -}}
{{- .Files.Get "files/topics.yaml" }}
{{- end }}

{{/*
Partitions of one contract topic: call with (dict "root" $ "topic" "playback-events").
*/}}
{{- define "streaming.topicPartitions" -}}
{{- $found := "" -}}
{{- range (include "streaming.topics" .root | fromYaml).topics }}
{{- if eq .name $.topic }}{{ $found = .partitions }}{{ end }}
{{- end -}}
{{- required (printf "topic %s is not in files/topics.yaml" .topic) $found -}}
{{- end }}

{{/*
SASL mechanism of the services' connection.
*/}}
{{- define "streaming.kafkaSaslMechanism" -}}
{{- if eq .Values.kafka.mode "strimzi" }}SCRAM-SHA-512{{ else }}{{ .Values.kafka.external.saslMechanism }}{{ end -}}
{{- end }}

{{/*
The Secret holding the gateway's sign-in secret.
*/}}
{{- define "streaming.gatewayAuthSecret" -}}
{{- default (printf "%s-gateway-auth" (include "streaming.fullname" .)) .Values.gateway.auth.existingSecret -}}
{{- end }}

{{/*
The signing secret the chart makes (base64): the one already in the cluster, kept across
upgrades (a new one would sign every browser out), or a new one. Made once per render,
so the Secret and the checksum on the gateway's pods agree.
*/}}
{{- define "streaming.gatewayAuthValue" -}}
{{- $auth := .Values.gateway.auth -}}
{{- if not (hasKey $auth "rendered") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "streaming.gatewayAuthSecret" .) -}}
{{- $value := "" -}}
{{- if and $existing (index ($existing.data | default dict) $auth.secretKey) -}}
{{- $value = index $existing.data $auth.secretKey -}}
{{- else -}}
{{- $value = randAlphaNum 48 | b64enc -}}
{{- end -}}
{{- $_ := set $auth "rendered" $value -}}
{{- end -}}
{{- $auth.rendered -}}
{{- end }}

{{/*
A value that changes whenever the gateway's signing secret does: on the pod template, it
rolls the pods onto a new secret.
*/}}
{{- define "streaming.gatewayAuthChecksum" -}}
{{- if .Values.gateway.auth.existingSecret -}}
{{- .Values.gateway.auth.checksum | default "unset" | sha256sum -}}
{{- else -}}
{{- include "streaming.gatewayAuthValue" . | sha256sum -}}
{{- end -}}
{{- end }}

{{/*
Does the API server serve this kind? Call with (dict "root" $ "api" "kafka.strimzi.io/v1/Kafka").
Objects of custom kinds are rendered only when their CRD is installed; NOTES.txt lists
the ones skipped. (`helm template` knows no CRDs unless given --api-versions.)
*/}}
{{- define "streaming.served" -}}
{{- if .root.Capabilities.APIVersions.Has .api }}true{{ end -}}
{{- end }}

{{- define "streaming.servesStrimzi" -}}
{{- include "streaming.served" (dict "root" . "api" "kafka.strimzi.io/v1/Kafka") -}}
{{- end }}

{{- define "streaming.servesMonitoring" -}}
{{- include "streaming.served" (dict "root" . "api" "monitoring.coreos.com/v1/ServiceMonitor") -}}
{{- end }}

{{- define "streaming.servesKeda" -}}
{{- include "streaming.served" (dict "root" . "api" "keda.sh/v1alpha1/ScaledObject") -}}
{{- end }}

{{/*
What the values ask for but the cluster cannot take (its CRDs are missing), one line each.
*/}}
{{- define "streaming.skipped" -}}
{{- if and (eq .Values.kafka.mode "strimzi") (not (include "streaming.servesStrimzi" .)) }}
- the Kafka cluster, its node pools, topics and users: Strimzi's CRDs (kafka.strimzi.io/v1)
  are not installed. The services wait for a broker that does not exist: install the
  Strimzi operator (`make operators`), then run the same `helm upgrade` again.
{{- end }}
{{- if and (or .Values.monitoring.serviceMonitor .Values.monitoring.podMonitor .Values.monitoring.prometheusRule) (not (include "streaming.servesMonitoring" .)) }}
- the ServiceMonitor, PodMonitors and PrometheusRule: prometheus-operator's CRDs
  (monitoring.coreos.com/v1) are not installed, so nothing scrapes the services.
{{- end }}
{{- if and .Values.gateway.enabled .Values.gateway.keda.enabled (not (include "streaming.servesKeda" .)) }}
- the gateway's ScaledObject: KEDA's CRDs (keda.sh/v1alpha1) are not installed, and with
  gateway.keda.enabled the chart leaves the replica count to KEDA: nothing scales it.
{{- end }}
{{- end }}

{{/*
A resource quantity as a number (bytes, cores), or "" when it has a form not parsed here.
*/}}
{{- define "streaming.quantity" -}}
{{- $text := toString . -}}
{{- $number := regexFind "^[0-9]*\\.?[0-9]+" $text -}}
{{- $suffix := trimPrefix $number $text -}}
{{- $scale := dict "" 1.0 "n" 1e-9 "u" 1e-6 "m" 1e-3 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- if and $number (hasKey $scale $suffix) -}}
{{- mulf (float64 $number) (get $scale $suffix) -}}
{{- end -}}
{{- end }}

{{/*
Fail, naming the value, when a request is above its limit: Kubernetes refuses the pod.
Call with (dict "path" "gateway.resources" "resources" .Values.gateway.resources).
*/}}
{{- define "streaming.checkResources" -}}
{{- $resources := .resources | default dict -}}
{{- $requests := $resources.requests | default dict -}}
{{- $limits := $resources.limits | default dict -}}
{{- range $name, $limit := $limits -}}
{{- if hasKey $requests $name -}}
{{- $request := get $requests $name -}}
{{- $r := include "streaming.quantity" $request -}}
{{- $l := include "streaming.quantity" $limit -}}
{{- if and $r $l (gt (float64 $r) (float64 $l)) -}}
{{- fail (printf "%s.requests.%s (%v) is above %s.limits.%s (%v): Kubernetes refuses a container that requests more than its limit" $.path $name $request $.path $name $limit) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
The bootstrap address as seen from any namespace (KEDA's operator runs in its own).
*/}}
{{- define "streaming.kafkaBootstrapFQDN" -}}
{{- if eq .Values.kafka.mode "strimzi" -}}
{{ printf "%s-kafka-bootstrap.%s.svc:%d" (include "streaming.kafkaCluster" .) .Release.Namespace (int .Values.kafka.strimzi.listener.port) }}
{{- else -}}
{{ include "streaming.kafkaBootstrap" . }}
{{- end -}}
{{- end }}

{{/*
Egress of what watches the gateway (the latency probe, the helm test): the cluster's DNS
and the gateway's HTTP port (NetworkPolicy egress rules).
*/}}
{{- define "streaming.egressToGateway" -}}
- to:
    {{- toYaml .Values.networkPolicy.dnsTo | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
- to:
    - podSelector:
        matchLabels:
          {{- include "streaming.componentSelectorLabels" (dict "root" . "component" "gateway") | nindent 10 }}
  ports:
    - port: {{ .Values.gateway.port }}
      protocol: TCP
{{- end }}

{{/*
Egress every service needs: the cluster's DNS and the Kafka brokers (NetworkPolicy
egress rules).
*/}}
{{- define "streaming.egressToKafkaAndDns" -}}
- to:
    {{- toYaml .Values.networkPolicy.dnsTo | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if eq .Values.kafka.mode "strimzi" }}
- to:
    - podSelector:
        matchLabels:
          strimzi.io/cluster: {{ include "streaming.kafkaCluster" . }}
          strimzi.io/broker-role: "true"
  ports:
    - port: {{ .Values.kafka.strimzi.listener.port }}
      protocol: TCP
{{- else }}
- {{- with .Values.networkPolicy.kafkaTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range .Values.networkPolicy.kafkaPorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end }}

{{/*
Is the latency probe deployed? It watches the gateway, so it needs one.
*/}}
{{- define "streaming.probeEnabled" -}}
{{- if and .Values.probe.enabled .Values.gateway.enabled }}true{{ end -}}
{{- end }}

{{/*
Where the pods that watch the gateway (the latency probe, the helm test) reach it: its
Service, or gateway.url where there are no Services (a node without kube-proxy).
*/}}
{{- define "streaming.gatewayUrl" -}}
{{- default (printf "http://%s-gateway:%v" (include "streaming.fullname" .) .Values.gateway.service.port) .Values.gateway.url -}}
{{- end }}


{{/*
The ops port of one camera's pod: call with (dict "root" $ "camera" $camera "index" $index).
Its own opsPort; else capture.opsPort, plus the camera's index on the node's network
(hostNetwork), where every camera's pod binds a port of the same node.
*/}}
{{- define "streaming.captureOpsPort" -}}
{{- if hasKey .camera "opsPort" }}{{ .camera.opsPort }}
{{- else if .root.Values.hostNetwork }}{{ add .root.Values.capture.opsPort .index }}
{{- else }}{{ .root.Values.capture.opsPort }}{{ end -}}
{{- end }}

{{/*
On the node's network (hostNetwork) every pod's ports are the node's: fail, naming the
values, when two would bind the same one (the scheduler would leave one pending forever).
*/}}
{{- define "streaming.checkHostPorts" -}}
{{- if .Values.hostNetwork -}}
{{- $ports := list -}}
{{- if .Values.gateway.enabled -}}
{{- $ports = append $ports (list "gateway.port" .Values.gateway.port) -}}
{{- $ports = append $ports (list "gateway.opsPort" .Values.gateway.opsPort) -}}
{{- end -}}
{{- if .Values.capture.enabled -}}
{{- range $index, $camera := .Values.capture.cameras -}}
{{- $port := include "streaming.captureOpsPort" (dict "root" $ "camera" $camera "index" $index) -}}
{{- $ports = append $ports (list (printf "the ops port of camera %s" $camera.id) $port) -}}
{{- end -}}
{{- end -}}
{{- if .Values.eventSim.enabled -}}
{{- $ports = append $ports (list "eventSim.opsPort" .Values.eventSim.opsPort) -}}
{{- end -}}
{{- if include "streaming.probeEnabled" . -}}
{{- $ports = append $ports (list "probe.opsPort" .Values.probe.opsPort) -}}
{{- end -}}
{{- $used := dict -}}
{{- range $ports -}}
{{- $port := toString (index . 1) -}}
{{- if hasKey $used $port -}}
{{- fail (printf "hostNetwork: %s and %s would both bind port %s of the node; give them different ports" (get $used $port) (index . 0) $port) -}}
{{- end -}}
{{- $_ := set $used $port (index . 0) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
A camera's zones or masks ([{name, points: [[x, y]...]}]) as capture's setting reads
them: `name=x,y x,y x,y;name=...`.
*/}}
{{- define "streaming.polygons" -}}
{{- $parts := list -}}
{{- range . -}}
{{- $points := list -}}
{{- range .points -}}
{{- $points = append $points (printf "%v,%v" (index . 0) (index . 1)) -}}
{{- end -}}
{{- $parts = append $parts (printf "%s=%s" .name (join " " $points)) -}}
{{- end -}}
{{- join ";" $parts -}}
{{- end -}}
