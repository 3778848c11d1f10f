"""`make run`'s Prometheus: it scrapes what the stack's plan runs, labelled like the cluster."""

import json
import subprocess
from pathlib import Path

from rts_devstack.stack import StackSettings, plan
from rts_observability import prometheus


def test_config_labels_targets_like_the_cluster_and_groups_them_by_job() -> None:
    cfg = prometheus.config(
        [
            prometheus.ScrapeTarget("capture", "cam-1", "http://127.0.0.1:9101/metrics"),
            prometheus.ScrapeTarget("capture", "cam-2", "http://127.0.0.1:9102/metrics"),
            prometheus.ScrapeTarget("gateway", "gateway", "http://127.0.0.1:8000/metrics"),
        ],
        scrape_interval=2,
    )
    assert cfg["global"]["scrape_interval"] == "2s"
    assert cfg["global"]["scrape_timeout"] == "2s"
    jobs = {c["job_name"]: c["static_configs"] for c in cfg["scrape_configs"]}
    assert set(jobs) == {"capture", "gateway"}
    assert jobs["capture"][1] == {
        "targets": ["127.0.0.1:9102"],
        "labels": {"pod": "cam-2", "namespace": "local", "__metrics_path__": "/metrics"},
    }


def test_the_run_command_scrapes_every_service_of_its_plan_and_the_broker(
    tmp_path: Path,
) -> None:
    settings = StackSettings.load(
        ["--prometheus-port", "19090", "--data-dir", str(tmp_path), "--scrape-interval", "3"],
        environ={},
    )
    services = {s.name: s for s in plan(settings, "127.0.0.1:19092", ["127.0.0.1:19404"])}
    server = services["prometheus"]
    assert server.url == "http://127.0.0.1:19090/"
    assert "--web.listen-address=127.0.0.1:19090" in server.argv
    ((config_file, text),) = server.files.items()
    assert config_file == tmp_path / "prometheus" / "prometheus.yml"
    cfg = json.loads(text)
    scraped = {
        (c["job_name"], s["labels"]["pod"], s["targets"][0])
        for c in cfg["scrape_configs"]
        for s in c["static_configs"]
    }
    assert scraped == {
        ("capture", "cam-test", "127.0.0.1:9101"),
        ("capture", "cam-sample", "127.0.0.1:9102"),
        ("event-sim", "event-sim", "127.0.0.1:9110"),
        ("gateway", "gateway", "127.0.0.1:9130"),
        ("latency-probe", "latency-probe", "127.0.0.1:9120"),
        ("notifier", "notifier", "127.0.0.1:9140"),
        ("kafka", "kafka-1", "127.0.0.1:19404"),
    }
    # what it scrapes is what the plan runs: the ports come from one place
    assert {s.metrics for s in services.values() if s.metrics} == {
        f"http://{address}/metrics" for job, _, address in scraped if job != "kafka"
    }
    # Prometheus itself accepts the file, alert rules included
    config_file.parent.mkdir(parents=True)
    config_file.write_text(text)
    done = subprocess.run(
        ["promtool", "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr


def test_no_prometheus_flag_leaves_it_out() -> None:
    settings = StackSettings.load(["--no-prometheus"], environ={})
    assert "prometheus" not in {s.name for s in plan(settings, "127.0.0.1:19092")}
