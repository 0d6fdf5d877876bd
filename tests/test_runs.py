import numpy as np

from tfkit.runs import RunDir, markdown_table, read_json, write_json


def test_stage_runs_once_and_resumes(tmp_path):
    calls = []
    run = RunDir(tmp_path, log=None)
    assert run.stage("a", lambda: calls.append(1) or {"x": np.float32(1.5)}) == {"x": 1.5}
    again = RunDir(tmp_path, log=None)
    assert again.stage("a", lambda: calls.append(2) or {"x": 9}) == {"x": 1.5}
    assert calls == [1] and "a" in again.stage_seconds()


def test_interrupted_stage_reruns(tmp_path):
    run = RunDir(tmp_path, log=None)

    def boom():
        raise RuntimeError("crash")

    try:
        run.stage("b", boom)
    except RuntimeError:
        pass
    assert not run.is_done("b")
    assert run.stage("b", lambda: 7) == 7


def test_atomic_json_leaves_no_temp_files(tmp_path):
    write_json(tmp_path / "r.json", {"a": [1, 2], "nan": float("nan")})
    assert read_json(tmp_path / "r.json") == {"a": [1, 2], "nan": None}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_markdown_table():
    t = markdown_table([["a", 0.12345]], ["k", "v"], digits=2)
    assert "| a | 0.12 |" in t
