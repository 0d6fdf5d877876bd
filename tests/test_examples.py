"""Every script in examples/ runs as a user runs it (its own process, embedded data) and prints
its result. About 2.5 minutes for all six on 2 cores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# what each script prints once its work is done
LAST_LINES = {
    "deployment.py": "int8 on-device classes:",
    "fedmd.py": "mean accuracy: round 0",
    "lazy_neuron.py": "int8 size:",
    "promot.py": "saved the soft prompt to",
    "rest_react.py": "distilled student: test accuracy",
    "robustness.py": "patch/noise_misaligned",
}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(LAST_LINES)


@pytest.mark.parametrize("name", sorted(LAST_LINES))
def test_example_runs(name, tmp_path):
    args = ["--out", str(tmp_path / "out")] if name == "deployment.py" else []
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # its temp files and worker logs go here
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert LAST_LINES[name] in out.stdout, out.stdout[-2000:]
    assert "not built" not in out.stderr  # Keras' unbuilt-layer warnings (see test_tflite)
