from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.processes", "tests.fixtures.capture"]

ROOT = Path(__file__).resolve().parents[1]
# Files a developer may be writing while the tests run; what tests leave behind is data.
SOURCE_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".js", ".toml", ".tpl", ".sh"}


def _untracked() -> set[str] | None:
    """Files in the checkout that git neither tracks nor ignores (None without git)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return None
    out = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {
        line[3:]
        for line in out.splitlines()
        if line.startswith("??") and Path(line[3:]).suffix not in SOURCE_SUFFIXES
    }


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean() -> Iterator[None]:
    """Tests write to temporary folders, never into the checkout."""
    before = _untracked()
    yield
    after = _untracked()
    if before is not None and after is not None:
        assert after <= before, f"tests left files in the checkout: {sorted(after - before)}"
