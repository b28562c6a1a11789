"""`make test` runs every app's tests: each tests/ folder is in pytest's testpaths."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_apps_tests_are_collected():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = set(config["tool"]["pytest"]["ini_options"]["testpaths"])
    apps_with_tests = {
        folder.parent.name
        for folder in ROOT.glob("*/tests")
        if folder.parent.name not in {"tests", ".venv"}
    }

    assert apps_with_tests - testpaths == set()
