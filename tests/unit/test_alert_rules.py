"""The alerting rules in deploy/prometheus/ load, fire when they should (promtool's
own rule tests), and name metrics the processes really export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway import backlog

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is missing: apt-get install prometheus (Debian), as .ci/run does")
    return found


def test_the_rules_load_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    for args in (
        ["check", "rules", "botgw-rules.yaml"],
        ["test", "rules", "botgw-rules.test.yaml"],
    ):
        done = subprocess.run(
            [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_name_metrics_that_are_exported() -> None:
    text = (RULES / "botgw-rules.yaml").read_text()
    used = set(re.findall(r"\b(botgw_[a-z_]+)\b", text))
    exported = {
        backlog.BACKLOG._name,
        backlog.BACKLOG_AGE._name,
        backlog.MEASURED._name,
        "botgw_rest_requests_total",
    }
    assert used <= exported, used - exported
