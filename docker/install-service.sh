#!/bin/sh
# Install services with exactly their locked dependencies into a new virtual environment.
#
#   docker/install-service.sh <venv> <package>=<source dir> [<package>=<source dir>...]
#
# Run from the repository root with uv on PATH. The Dockerfiles run it, and so does the
# test that proves each image's install step without a container engine
# (tests/static/test_images.py): one script, so the two cannot drift apart. The gateway's
# image holds two packages (the gateway and the latency probe).
set -eu

venv=$1
shift
python=${PYTHON:-python3}

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT

packages=""
sources="./libs/common"
for item in "$@"; do
  packages="$packages --package ${item%%=*}"
  sources="$sources ./${item#*=}"
done

# Third-party packages: these services' slice of uv.lock, pinned with hashes.
# shellcheck disable=SC2086 # one word per option
uv export --frozen --no-dev $packages --no-emit-workspace \
  --no-header --no-annotate --format requirements-txt --output-file "$requirements" >/dev/null
uv venv --quiet --python "$python" "$venv"
uv pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps \
  --compile-bytecode --requirement "$requirements"
# Our own packages: the shared library and the services, without resolving anything again.
# shellcheck disable=SC2086
uv pip install --quiet --python "$venv/bin/python" --no-deps --compile-bytecode $sources
