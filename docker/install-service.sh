#!/bin/sh
# Install one service with exactly its locked dependencies into a new virtual environment.
#
#   docker/install-service.sh <package> <service dir> <venv>
#
# Run from the repository root with uv on PATH. The Dockerfiles run it, and so does the
# test that proves each image's install step without a container engine
# (tests/static/test_images.py): one script, so the two cannot drift apart.
set -eu

package=$1
service_dir=$2
venv=$3
python=${PYTHON:-python3}

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT

# Third-party packages: this service's slice of uv.lock, pinned with hashes.
uv export --frozen --no-dev --package "$package" --no-emit-workspace \
  --no-header --no-annotate --format requirements-txt --output-file "$requirements" >/dev/null
uv venv --quiet --python "$python" "$venv"
uv pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps \
  --compile-bytecode --requirement "$requirements"
# Our own packages: the shared library and the service, without resolving anything again.
uv pip install --quiet --python "$venv/bin/python" --no-deps --compile-bytecode \
  ./libs/common "./$service_dir"
