"""`tfkit eval robustness`: run the robustness suites on a user's saved model.

    tfkit eval robustness --model my_model.keras --data cifar10 --suite corruptions,adversarial

The model may be a `.keras` / `.h5` file, a Keras SavedModel directory, or any TF SavedModel
with a `serving_default` signature that maps images [B, H, W, C] to logits (float [0, 1] input,
or uint8 0..255 as `tfkit export savedmodel` writes; a `logits` output is preferred).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tfkit import datasets
from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.robustness import registry
from tfkit.robustness.evaluate import check_input_shape
from tfkit.robustness.inputs import to_uint8_pixels
from tfkit.runs import markdown_table, read_json, unwritable_reason, write_json

__all__ = ["eval_command", "load_model"]


def load_model(path: str | os.PathLike) -> Any:
    """A Keras model when the file/directory holds one, else the SavedModel's serving function
    wrapped as a predict_fn (float [0, 1] images -> logits).

    For a plain SavedModel (e.g. `tfkit export savedmodel` output) the `serving_default`
    signature's `logits` output is used (else its only/first output); a uint8 input is fed
    `round(x * 255)`, so such a model is not differentiable (the adversarial suite says so).
    """
    import tfkit.layers  # noqa: F401  (registers tfkit's serializable layers and models)
    import tfkit.models  # noqa: F401

    path = Path(path)
    if not path.exists():
        raise TfkitError(f"model {str(path)!r} does not exist")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as keras_error:  # not a Keras artifact: try a plain SavedModel
        if not (path / "saved_model.pb").exists():
            raise TfkitError(f"cannot load {str(path)!r} as a Keras model "
                             f"({type(keras_error).__name__}: {keras_error})") from None
    else:
        # A non-Keras SavedModel loads as an uncallable `_UserObject` instead of raising.
        if isinstance(model, keras.Model):
            return model
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise TfkitError(f"SavedModel {str(path)!r} has no serving_default signature; "
                         f"signatures: {list(loaded.signatures)}")
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise TfkitError(f"SavedModel {str(path)!r}: serving_default must take one image input, "
                         f"it takes {sorted(inputs)}")
    (input_name, spec), = inputs.items()

    def predict_fn(x: tf.Tensor) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if spec.dtype == tf.uint8:  # exported pixels: float [0, 1] -> 0..255
            x = to_uint8_pixels(x)
        out = signature(**{input_name: tf.cast(x, spec.dtype)})
        return out["logits"] if "logits" in out else next(iter(out.values()))

    predict_fn.input_shape = tuple(spec.shape)  # for the shape check below
    predict_fn.keep_alive = loaded  # the signature's variables live as long as `loaded`
    return predict_fn


def _check_target(target: Path) -> None:
    """Refuses to overwrite a JSON file that an earlier evaluation did not write (e.g. a
    `tfkit run` directory's results.json), before any work."""
    if not target.exists():
        return
    try:
        previous = read_json(target)
    except (ValueError, OSError):
        previous = None
    if not (isinstance(previous, dict) and {"model", "data", "results"} <= set(previous)):
        raise TfkitError(f"{target} exists and is not a `tfkit eval robustness` result (a run "
                         "directory's?); pass another --out")


def _check_writable(target: Path) -> None:
    """An `--out` whose folder cannot be written (a path through a file, no permission) fails
    now, naming it, not after every suite has run."""
    reason = unwritable_reason(target.parent)
    if reason:
        raise TfkitError(f"cannot write {target}: {reason}; pass another --out")


def eval_command(model: str, data: str, suites: list[str], data_dir: str | None = None,
                 limit: int = 1000, out: str | os.PathLike | None = None, seed: int = 0) -> int:
    """Loads `model` and `data`, runs clean + `suites` on `limit` test images, prints a table
    and writes results.json (to `out`, a folder or a .json path). Returns the exit code."""
    suites = registry.check_suites(suites)  # before any loading
    if limit < 1:
        raise TfkitError(f"--limit must be at least 1, got {limit}")
    target = None
    if out is not None:
        target = Path(out) if Path(out).suffix == ".json" else Path(out) / "results.json"
        _check_target(target)
        _check_writable(target)
    if data in datasets.names() and data not in datasets.IMAGE_SIDES:  # before any download
        raise TfkitError(f"{data!r} is not an image dataset; choose from "
                         f"{', '.join(sorted(datasets.IMAGE_SIDES))}")
    dataset = datasets.load(data, data_dir)
    test = dataset.test.sample(limit, seed)  # a random sample: some copies are class-sorted
    images = test.x  # uint8 (ImageDataset's type): a model that rescales itself gets 0..255
    images = images[..., None] if images.ndim == 3 else images
    labels = test.y
    predictor = load_model(model)
    check_input_shape(predictor, images.shape[1:])
    options = {name: {"seed": seed} for name in ("corruptions", "adversarial", "patch")}
    print(f"tfkit eval robustness: {model} on {len(images)} {data} test images, suites "
          f"{', '.join(suites)}", flush=True)
    results = registry.run(predictor, (images, labels), ["clean", *suites], options,
                           log=lambda line: print(line, flush=True))
    rows = [[k, v] for k, v in results.items() if isinstance(v, float)]
    print(markdown_table(rows, ["metric", "value"]))
    if target is not None:
        write_json(target, {"model": str(model), "data": data, "examples": len(images),
                            "seed": seed, "results": results})
        print(f"results: {target}")
    return 0
