import subprocess
import sys
from pathlib import Path

from rts_devstack.launch import Launch
from rts_devstack.stack import StackSettings, plan
from rts_devstack.supervisor import Output, Supervisor


def test_the_run_command_starts_the_test_pattern_and_a_generated_sample_video() -> None:
    settings = StackSettings.load([], environ={"RTS_DATA_DIR": "data"})  # planned, never written
    services = {s.name: s for s in plan(settings, "127.0.0.1:1234")}
    test, sample = services["cam-test"], services["cam-sample"]
    for service in (test, sample):
        assert service.env["KAFKA_BOOTSTRAP"] == "127.0.0.1:1234"
        assert [sys.executable, "-m", "rts_capture.sample", str(Path("data/samples"))] in [
            list(c) for c in service.setup
        ]
    argv = " ".join(test.argv)
    assert "--camera-id cam-test --source test" in argv
    assert "--test-face data/samples/face.png" in argv
    argv = " ".join(sample.argv)
    assert "--camera-id cam-sample --source data/samples/sample.mp4 --loop" in argv
    assert test.metrics == "http://127.0.0.1:9101/metrics"
    assert sample.metrics == "http://127.0.0.1:9102/metrics"
    assert test.ready == "http://127.0.0.1:9101/readyz"


def test_a_service_whose_setup_fails_is_not_started(tmp_path: Path) -> None:
    lines: list[str] = []

    class Capture(Output):
        def line(self, name: str, text: str) -> None:
            lines.append(f"{name}: {text}")

    supervisor = Supervisor(Capture(), cwd=tmp_path)
    failing = [sys.executable, "-c", "print('no room'); raise SystemExit(3)"]
    service = Launch("svc", [sys.executable, "-c", "pass"], setup=[failing])
    assert supervisor.start(service) is None
    assert supervisor.procs == {}
    assert "svc: no room" in lines
    assert any("setup exited with 3" in line for line in lines)


def test_the_run_command_starts_event_sim_paced_with_its_ops_url() -> None:
    services = {s.name: s for s in plan(StackSettings.load([], environ={}), "127.0.0.1:19092")}
    sim = services["event-sim"]
    assert sim.env["KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert "--ops-port 9110" in " ".join(sim.argv)
    assert sim.metrics == "http://127.0.0.1:9110/metrics"
    assert float(sim.env["EVENTSIM_RATE"]) <= 1000  # a live demo, not a benchmark
    assert "EVENTSIM_COUNT" not in sim.env
    help_text = subprocess.run([*sim.argv, "--help"], capture_output=True, text=True, check=True)
    assert "EVENTSIM_RATE" in help_text.stdout


def test_gateways_run_as_replicas_behind_nginx_on_the_gateway_port(tmp_path: Path) -> None:
    settings = StackSettings.load(["--gateways", "3", "--data-dir", str(tmp_path)], environ={})
    services = {s.name: s for s in plan(settings, "127.0.0.1:9092", gateway_secret="s3")}
    assert "gateway" not in services
    for i in (1, 2, 3):
        replica = services[f"gateway-{i}"]
        assert replica.env["GATEWAY_REPLICA"] == f"gateway-{i}"
        assert replica.env["GATEWAY_AUTH_SECRET"] == "s3"
        argv = " ".join(replica.argv)
        assert f"--port {8000 + i} --host 127.0.0.1" in argv
        assert f"--ops-host 127.0.0.1 --ops-port {9130 + i}" in argv
        assert replica.metrics == f"http://127.0.0.1:{9130 + i}/metrics"  # one target each
        assert replica.job == "gateway"
    nginx = services["nginx"]
    assert nginx.url == "http://127.0.0.1:8000/"
    ((config_file, config),) = nginx.files.items()
    assert config_file == tmp_path / "nginx" / "nginx.conf"
    assert "listen 127.0.0.1:8000;" in config
    for i in (1, 2, 3):
        assert f"server 127.0.0.1:{8000 + i} max_fails=0;" in config


def test_without_gateways_one_gateway_serves_the_port_itself() -> None:
    services = {s.name: s for s in plan(StackSettings.load([], environ={}), "127.0.0.1:9092")}
    assert "nginx" not in services
    assert services["gateway"].url == "http://127.0.0.1:8000"
    assert "--host" not in services["gateway"].argv  # every address, as before
    assert not any(name.startswith("gateway-") for name in services)
