"""Pins that keep the gateway on what it was built for, checked in the lock CI installs."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.static.chart import ROOT


def locked(package: str) -> Version:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return Version(version)


def test_gunicorn_stays_below_26_where_the_eventlet_worker_is_gone() -> None:
    # gunicorn 26.0 removed the eventlet worker the gateway runs under (25.x deprecated
    # it): the lock must not move past it until the gateway has left eventlet.
    assert locked("gunicorn") < Version("26"), "uv.lock moved gunicorn to 26 or later"
    gateway = tomllib.loads((ROOT / "services/gateway/pyproject.toml").read_text())
    (pin,) = [
        Requirement(r)
        for r in gateway["project"]["dependencies"]
        if Requirement(r).name == "gunicorn"
    ]
    assert not pin.specifier.contains("26.0"), f"the gateway's pin {pin} allows 26"
