"""Prometheus for the local stack: its configuration, built from what the stack runs.

The labels make local series look like the cluster's, so every dashboard query and
alert rule works unchanged in both places:

- `job`: the kind of process (capture, event-sim, gateway, kafka). In the cluster the
  PodMonitors set it from the pods' `app.kubernetes.io/component` label.
- `pod`: the replica. In the cluster the pod's name; here the process's name.
- `namespace`: in the cluster the release's namespace; here `local`.

Prometheus reads YAML, and JSON is YAML, so the configuration is written as JSON.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOCAL_NAMESPACE = "local"
# The alert rule groups the chart ships, relative to the repository.
ALERT_RULES = Path("helm") / "streaming" / "files" / "alerts"


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    pod: str
    url: str  # http://host:port/metrics

    @property
    def address(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/metrics"


def config(
    targets: Iterable[ScrapeTarget],
    *,
    rule_files: Sequence[Path] = (),
    scrape_interval: float = 5.0,
    namespace: str = LOCAL_NAMESPACE,
) -> dict[str, Any]:
    """The configuration: one scrape job per kind of process, one static target each."""
    interval = f"{scrape_interval:g}s"
    jobs: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append(
            {
                "targets": [target.address],
                "labels": {
                    "pod": target.pod,
                    "namespace": namespace,
                    "__metrics_path__": target.path,
                },
            }
        )
    return {
        "global": {
            "scrape_interval": interval,
            # a scrape may not outlast the interval (Prometheus refuses the config)
            "scrape_timeout": f"{min(scrape_interval, 10.0):g}s",
            "evaluation_interval": interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": static} for job, static in jobs.items()
        ],
    }


def render(cfg: dict[str, Any]) -> str:
    return json.dumps(cfg, indent=2) + "\n"


def rule_files(root: Path) -> list[Path]:
    """The alert rule files under `root` (the repository), as a glob Prometheus expands."""
    return [root / ALERT_RULES / "*.yaml"]


def binary() -> str | None:
    """Debian's (or any) `prometheus` on the PATH."""
    return shutil.which("prometheus")


def command(
    executable: str, config_file: Path, data_dir: Path, port: int, host: str = "127.0.0.1"
) -> list[str]:
    return [
        executable,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        # a development history: a day is plenty, and keeps .data small
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address={host}:{port}",
        "--log.level=warn",
    ]
