import subprocess

from rts_devstack.stack import StackSettings, plan


def test_the_run_command_starts_event_sim_paced_with_its_ops_url() -> None:
    services = {s.name: s for s in plan(StackSettings.load([], environ={}), "127.0.0.1:19092")}
    sim = services["event-sim"]
    assert sim.env["KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert sim.env["EVENTSIM_OPS_PORT"] == "9110"
    assert sim.url == "http://127.0.0.1:9110/metrics"
    assert float(sim.env["EVENTSIM_RATE"]) <= 1000  # a live demo, not a benchmark
    assert "EVENTSIM_COUNT" not in sim.env
    help_text = subprocess.run([*sim.argv, "--help"], capture_output=True, text=True, check=True)
    assert "EVENTSIM_RATE" in help_text.stdout
