#!/usr/bin/env bash
# System packages the run and test commands need, installed only when missing.
# Debian/Ubuntu with apt-get; run as root (CI does) or with sudo.
set -euo pipefail

missing=()
need() { # need <command> <package>
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  missing+=(openjdk-17-jre-headless)
fi
need mvn maven
need make make
need kcat kcat
need npm npm
need chromium chromium
# Debian's Prometheus: `make run` starts it, the tests scrape the stack with it, and its
# promtool checks and unit-tests the alert rules.
need prometheus prometheus
need promtool prometheus
# Debian's nginx: `make run GATEWAYS=N` puts it in front of the gateway replicas, and the
# scaling tests run replicas behind it. Root's PATH has /usr/sbin, a user's may not.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# The camera stage (make cameras): GStreamer's RTSP server stands in for IP cameras (run by
# the system's Python, which has its bindings), ffmpeg encodes the clips it serves
# (H.264 and H.265), mosquitto is the MQTT broker the notifier publishes to, and
# opencv-doc carries OpenCV's sample footage (vtest.avi) the people detector is tested on.
need ffmpeg ffmpeg
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || missing+=(opencv-doc)
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null \
    || ! command -v gst-inspect-1.0 >/dev/null 2>&1 || ! gst-inspect-1.0 h265parse >/dev/null 2>&1; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
fi
# The local Kubernetes control plane (make cluster-test, CLUSTER=kwok): its service
# account keys are made with openssl; its programs are built with Go (below).
need openssl openssl
# The real node (make node-test, CLUSTER=kwok): containerd and runc run its pods, the
# loopback CNI plugin is its only network, gcc compiles Kubernetes' pause; podman builds
# the images, on stand-in bases mmdebstrap makes from Debian packages.
need containerd containerd
need runc runc
[ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
need gcc gcc
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
need podman podman
need mmdebstrap mmdebstrap

# Go builds the control plane; Kubernetes 1.35 and kwok need Go 1.25+, newer than some
# distributions ship, so it is checked, not installed.
go_minor() {
  go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'
}
if ! command -v go >/dev/null 2>&1 || [ "$(go_minor)" -lt 25 ]; then
  echo "system-deps: Go 1.25 or newer is needed to build the Kubernetes control plane" \
    "(make controlplane): install a Go 1.25+ release and put it on PATH" >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: everything is installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: please install: ${missing[*]}" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system-deps: installing ${missing[*]}"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

# The package starts a system-wide Prometheus on port 9090 where systemd runs; the
# project starts its own (configured for the local stack), which needs that port.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
    && systemctl is-active --quiet prometheus 2>/dev/null; then
  echo "system-deps: stopping and disabling the system's prometheus service (port 9090)"
  $sudo systemctl disable --now prometheus
fi
# Likewise nginx's system-wide server on port 80: the project runs its own nginx.
if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null 2>&1 \
    && systemctl is-active --quiet nginx 2>/dev/null; then
  echo "system-deps: stopping and disabling the system's nginx service (port 80)"
  $sudo systemctl disable --now nginx
fi
