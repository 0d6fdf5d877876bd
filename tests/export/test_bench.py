"""`tfkit bench`: runs benchmark scripts with --json and refreshes the marked RESULTS.md block."""

from __future__ import annotations

import json

import pytest

from tfkit.bench import BenchmarkError, run_benchmarks

GOOD = """
import argparse, json
p = argparse.ArgumentParser(); p.add_argument("--json")
a = p.parse_args()
print("ours 2.0 ms | peer 4.0 ms | 2.0x")
json.dump({"name": "good", "metrics": {"ours_ms": 2.0, "speedup_x": 2.0},
           "command": "uv run python benchmarks/good.py --fast"}, open(a.json, "w"))
"""
BAD = "raise SystemExit(3)\n"


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "good.py").write_text(GOOD)
    (tmp_path / "benchmarks" / "bad.py").write_text(BAD)
    (tmp_path / "benchmarks" / "_helper.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "RESULTS.md").write_text(
        "# R\n\n## Deployment\n\nmine\n<!-- bench:start -->\nold\n<!-- bench:end -->\ntail\n")
    return tmp_path


def test_runs_scripts_and_refreshes_block(repo):
    assert run_benchmarks(["good"], root=repo) == 0
    text = (repo / "docs" / "RESULTS.md").read_text()
    assert "old" not in text and text.startswith("# R") and text.endswith("tail\n")
    assert "ours_ms: 2" in text and "speedup_x: 2" in text
    assert "`uv run python benchmarks/good.py --fast`" in text and "core CPU" in text
    # A failing script is reported, and earlier numbers stay.
    assert run_benchmarks([], root=repo) == 1
    stored = json.loads((repo / "benchmarks" / "results.json").read_text())
    assert set(stored) == {"good", "bad"} and stored["bad"]["returncode"] == 3
    text = (repo / "docs" / "RESULTS.md").read_text()
    assert "FAILED (exit 3)" in text and "ours_ms: 2" in text


def test_unknown_name_lists_available(repo):
    with pytest.raises(BenchmarkError, match="available: bad, good"):
        run_benchmarks(["nope"], root=repo)


def test_every_benchmark_runs_without_required_arguments():
    # `tfkit bench` runs each script with only --json (benchmarks/README.md, convention 1)
    import ast
    from pathlib import Path

    scripts = sorted((Path(__file__).parents[2] / "benchmarks").glob("[!_]*.py"))
    assert len(scripts) >= 5
    for script in scripts:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "required":
                assert not (isinstance(node.value, ast.Constant) and node.value.value), \
                    f"{script.name} has a required argument"


def test_reproduce_command_leaves_out_the_json_file():
    from tfkit.bench import reproduce_command

    # `tfkit bench` puts --json first; the recorded command must not name its temp file
    assert reproduce_command(["benchmarks/x.py", "--json", "/tmp/t/x.json", "--steps", "3"]) \
        == "uv run python benchmarks/x.py --steps 3"
    assert reproduce_command(["/abs/benchmarks/x.py", "--steps", "3", "--json=o.json"]) \
        == "uv run python benchmarks/x.py --steps 3"
