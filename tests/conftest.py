"""Shared pytest setup: quiet TensorFlow, seeded runs, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    """The real-data folder ($TFKIT_DATA_DIR or ../shared/data); skips when absent."""
    env = os.environ.get("TFKIT_DATA_DIR")
    path = Path(env) if env else SHARED_DATA
    if not (path / "mnist.npz").exists():
        pytest.skip("real data not available (set TFKIT_DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def _seed():
    from tfkit.backend import keras, set_seed

    set_seed(0)
    yield
    keras.backend.clear_session()
