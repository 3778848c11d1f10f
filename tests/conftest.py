pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.processes", "tests.fixtures.capture"]
