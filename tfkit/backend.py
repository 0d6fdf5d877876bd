"""The one place tfkit imports Keras.

Every other module does `from tfkit.backend import keras, tf`. tfkit targets Keras 2.14 as
shipped inside TensorFlow (`tf.keras`), which is also what keras-nlp 0.8 and TFF 0.87 use.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info banners

import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

# In-place slice write that XLA compiles (with a traced start) and eager/graph mode also run.
from tensorflow.compiler.tf2xla.python.xla import dynamic_update_slice  # noqa: E402

__all__ = ["keras", "tf", "set_seed", "set_threads", "dynamic_update_slice"]


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`)."""
    keras.utils.set_random_seed(int(seed))


def set_threads(intra_op: int = 0, inter_op: int = 0) -> None:
    """Caps TensorFlow's thread pools (0 = TensorFlow's default). Call before any op runs."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # the runtime is already initialised; keep its pools
        pass
