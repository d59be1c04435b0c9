"""Rule files: loaded and checked like `promtool check rules`, and agreeing with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from peers import PROMTOOL

from hakon.alerting.rules import RuleFileError, load_file

FILES = Path(__file__).parent / "rulefiles"
BAD = {
    "bad_expr.yml": "could not parse expression",
    "bad_both.yml": "one of 'record' or 'alert'",
    "bad_record_name.yml": "invalid recording rule name",
    "bad_duplicate_group.yml": "groupname must be unique",
    "bad_label_name.yml": "invalid label name",
    "bad_unknown_field.yml": "unknown field(s) severity",
    "bad_for_in_record.yml": "invalid field 'for' in recording rule",
    "bad_yaml.yml": "not valid YAML",
}


def test_a_good_file_loads_every_rule() -> None:
    groups = load_file(str(FILES / "good.yml"))
    assert [g.name for g in groups] == ["node", "empty"]
    node = groups[0]
    assert node.interval_ms == 30_000 and groups[1].interval_ms == 60_000
    record, alert = node.rules
    assert (record.kind, record.name) == ("record", "instance:node_cpu:rate5m")
    assert (alert.kind, alert.for_ms, alert.keep_firing_for_ms) == ("alert", 300_000, 60_000)
    summary = alert.annotations["summary"].render({"instance": "n1"}, 0.953)
    assert summary == "CPU on n1 at 95.3%"


@pytest.mark.parametrize(("name", "message"), sorted(BAD.items()))
def test_each_bad_file_names_its_problem(name: str, message: str) -> None:
    with pytest.raises(RuleFileError) as info:
        load_file(str(FILES / name))
    assert any(message in p and name in p for p in info.value.problems), info.value.problems


def test_the_cli_checks_files_and_exits_1_on_problems() -> None:
    cmd = [sys.executable, "-m", "hakon", "rules", "check"]
    ok = subprocess.run([*cmd, str(FILES / "good.yml")], capture_output=True, text=True)
    assert ok.returncode == 0 and "SUCCESS: 2 rules found" in ok.stdout
    bad = subprocess.run([*cmd, str(FILES / "bad_expr.yml")], capture_output=True, text=True)
    assert bad.returncode == 1 and "could not parse expression" in bad.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="Debian package prometheus missing")
@pytest.mark.parametrize("name", sorted(p.name for p in FILES.glob("*.yml")))
def test_hakon_and_promtool_agree_on_every_file(name: str) -> None:
    assert PROMTOOL is not None
    theirs = subprocess.run([PROMTOOL, "check", "rules", str(FILES / name)], capture_output=True)
    try:
        load_file(str(FILES / name))
        ours = 0
    except RuleFileError:
        ours = 1
    assert (theirs.returncode == 0) == (ours == 0), theirs.stdout + theirs.stderr
