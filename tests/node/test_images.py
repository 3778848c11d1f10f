"""The three images as built for the real node (`make images-test` runs only these): each
runs read-only as uid 10001 and answers --help, with the user its Dockerfile names. The
pods of test_real_node.py then run the same images under the chart's security context.
"""

from __future__ import annotations

import json

import pytest
from rts_cluster import images

# The first test builds the stand-in bases and the three images (its setup counts).
pytestmark = pytest.mark.timeout(3600)


@pytest.mark.parametrize(
    ("service", "entrypoint"),
    [("capture", None), ("event-sim", None), ("gateway", None), ("gateway", "latency-probe")],
)
def test_each_image_runs_read_only_as_its_user(
    built_images: list[images.Built], service: str, entrypoint: str | None
) -> None:
    (image,) = [i for i in built_images if i.service == service]
    entry = ["--entrypoint", entrypoint] if entrypoint else []
    out = images.podman(
        *"run --rm --read-only --user 10001:10001 --network host".split(),
        *images.ULIMITS,
        *entry,
        image.names[0],
        "--help",
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "LOG_LEVEL" in out.stdout
    config = json.loads(images.podman("image", "inspect", image.names[0]).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
