"""`tfkit export savedmodel|tflite SRC --out DIR`: export, verify against Keras, write a card.

SRC is a run directory (its primary model, else its only one), `RUN_DIR/models/NAME.keras`, or
any `.keras` file (with `NAME.json` meta beside it when there is one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tfkit.datasets import DataError
from tfkit.export.cards import model_card, write_card
from tfkit.export.data import image_slices
from tfkit.export.errors import ExportError
from tfkit.export.parity import parity_markdown, tflite_parity, write_parity
from tfkit.export.saved_model import (
    check_export_target,
    check_writable,
    classifier_outputs,
    export_saved_model,
    image_input_shape,
    infer_kind,
    keras_logits,
    signature_summary,
)
from tfkit.export.source import resolve_source
from tfkit.export.tflite import TFLiteModel
from tfkit.model_io import ends_in_softmax, takes_pixels
from tfkit.runs import write_json

__all__ = ["export_savedmodel", "export_tflite", "saved_model_parity"]


def saved_model_parity(model: Any, meta: dict, path: str | os.PathLike,
                       data_dir: str | os.PathLike | None = None) -> dict:
    """Runs the exported `serving_default` beside Keras; held-out accuracy where data exists.

    Image models get 1,000 seeded random test images of `meta["dataset"]` (random images when
    the data is absent); language models get random token ids.
    """
    from tfkit.backend import tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    rng = np.random.default_rng(0)
    if infer_kind(model, meta) == "language_model":
        vocab = int(model.output_shape[-1])
        length = min(16, int(meta.get("sequence_length") or model.sequence_length))
        ids = rng.integers(1, vocab, size=(8, length)).astype(np.int32)
        got = serve(token_ids=tf.constant(ids))["logits"].numpy()
        return {"max_abs_diff": float(np.max(np.abs(got - model(ids).numpy()))),
                "checked_on": f"8 random sequences of {length} token ids"}
    shape = image_input_shape(model, meta)
    try:
        slices = image_slices(meta, shape, data_dir, calibration_size=1)
        images, labels, what = slices.test_x, slices.test_y, f"{len(slices.test_y)} sampled " \
                                                             f"test images of {slices.dataset}"
    except (DataError, ExportError) as e:
        images = rng.integers(0, 256, size=(32, *shape), dtype=np.uint8)
        labels, what = None, f"32 random images (no held-out data: {e})"
    got, want = [], []
    for i in range(0, len(images), 256):
        batch = images[i:i + 256]
        got.append(serve(images=tf.constant(batch))["logits"].numpy())
        want.append(keras_logits(model, meta, batch).numpy())
    got, want = np.concatenate(got), np.concatenate(want)
    result = {"max_abs_diff": float(np.max(np.abs(got - want))), "checked_on": what}
    if labels is not None:
        result.update(dataset=slices.dataset, examples=int(len(labels)),
                      accuracy=float(np.mean(got.argmax(-1) == labels)))
    return result


def _served_io(model: Any, meta: dict, kind: str) -> str:
    """The card's "Inputs and outputs": what the serving signature's tensors hold."""
    lines = ["## Inputs and outputs", ""]
    if kind == "language_model":
        vocab = int(model.output_shape[-1])
        length = meta.get("sequence_length") or getattr(model, "sequence_length", "?")
        lines += [f"- `token_ids`: int32 ids in [0, {vocab}), at most {length} per row, "
                  f"{meta.get('pad_id', 0)} = padding",
                  f"- `logits`: float32 [batch, length, {vocab}]; `next_token_logits` at each "
                  "row's last non-padding token; `next_token`: their arg-max"]
        return "\n".join(lines)
    height, width, channels = image_input_shape(model, meta)
    scaling = ("given to the model as they are (it scales them itself)" if takes_pixels(model)
               else "scaled to [0, 1] in-graph (pixel / 255), as the model was trained")
    logits = ("log-probabilities (the model ends in a softmax)"
              if classifier_outputs(model, meta) == "probabilities" else "the model's logits")
    labels = "; `labels`: its class name" if meta.get("class_names") else ""
    lines += [f"- `images`: uint8 pixels 0-255 [batch, {height}, {width}, {channels}], "
              f"{scaling}",
              f"- `logits`: float32, {logits}; `probabilities`: their softmax; `classes`: "
              f"the arg-max{labels}"]
    return "\n".join(lines)


def _tflite_io(model: Any, report: dict, out: Path) -> str:
    """The TFLite card's "Inputs and outputs": each variant's input tensor and its encoding."""
    domain = "0-255 pixels" if takes_pixels(model) else "[0, 1] (pixel / 255)"
    lines = ["## Inputs and outputs", "",
             "Each variant takes one image per invoke and outputs the Keras model's outputs "
             f"({'probabilities' if ends_in_softmax(model) else 'logits'}).", ""]
    for v in report["variants"].values():
        runner = TFLiteModel(out / v["file"])
        shape = ", ".join(map(str, (runner.batch_size, *runner.input_shape)))
        scale, zero = runner.input_quantization
        if scale:
            what = (f"{domain} quantized as round(x / {scale:.6g}) "
                    f"{'-' if zero < 0 else '+'} {abs(zero)}")
        elif np.issubdtype(runner.input_dtype, np.floating):
            what = domain
        else:
            what = "0-255 pixels (the model's uint8 Input)"
        lines.append(f"- `{v['file']}`: {runner.input_dtype.name} [{shape}], {what}")
    return "\n".join(lines)


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A scratch folder beside `out` (the same filesystem, so what is written there moves in
    with `os.replace` once complete), removed afterwards whatever happened."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _card_dir(out: Path) -> Path:
    """NAME/ for a TF Serving NAME/VERSION folder (Serving ignores it), else `out` itself."""
    return out.parent if out.name.isdigit() else out


def export_savedmodel(source: str | os.PathLike, out: str | os.PathLike,
                      data_dir: str | os.PathLike | None = None) -> int:
    """CLI: writes the SavedModel, checks it against Keras, writes export.json and a card."""
    src, out = resolve_source(source), Path(out)
    check_export_target(out)  # before loading the model: a refused --out costs nothing
    model = src.load()
    kind = infer_kind(model, src.meta)
    print(f"exporting {src.path} ({kind}) -> {out}", flush=True)
    # Exported and checked in a staging folder beside `out`, moved in only once the parity
    # check passed: a failure leaves `out` and its export.json / card as they were.
    with _staging(out) as stage:
        staged = export_saved_model(model, src.meta, stage / "model")
        try:
            parity = saved_model_parity(model, src.meta, staged, data_dir)
        except Exception as e:  # noqa: BLE001  whatever failed, `out` stays the old export
            raise ExportError(f"the parity check of the SavedModel against Keras failed "
                              f"({type(e).__name__}: {e}); {out} was left as it was") from e
        signatures = signature_summary(staged)
        record = {"source": str(src.path), "meta": src.meta, "signatures": signatures,
                  "parity": parity}
        sig_lines = ["## Signatures", ""]
        for key, sig in signatures.items():
            ins = ", ".join(f"`{k}` {d} {s}" for k, (d, s) in sig["inputs"].items())
            outs = ", ".join(f"`{k}` {d} {s}" for k, (d, s) in sig["outputs"].items())
            sig_lines.append(f"- `{key}`: {ins} → {outs}")
        measured = {"max abs diff vs Keras (logits)": f"{parity['max_abs_diff']:.2e} "
                                                      f"({parity['checked_on']})"}
        if "accuracy" in parity:
            measured["held-out accuracy"] = f"{parity['accuracy']:.4f}"
        card = model_card(
            src, "SavedModel for TF Serving", measured,
            f"uv run tfkit export savedmodel {source} --out {out}",
            _served_io(model, src.meta, kind) + "\n\n" + "\n".join(sig_lines), kind=kind)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    card_dir = _card_dir(out)
    write_json(card_dir / "export.json", record)
    write_card(card_dir / "MODEL_CARD.md", card)
    print(f"SavedModel: {out} (signatures: {', '.join(signatures)}); max abs diff vs Keras "
          f"{parity['max_abs_diff']:.2e} on {parity['checked_on']}"
          + (f"; accuracy {parity['accuracy']:.4f}" if "accuracy" in parity else ""))
    print(f"card: {card_dir / 'MODEL_CARD.md'}")
    return 0


def export_tflite(source: str | os.PathLike, out: str | os.PathLike,
                  data_dir: str | os.PathLike | None = None) -> int:
    """CLI: writes the four TFLite variants, parity.{json,md} and a card into `out`."""
    src, out = resolve_source(source), Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder; pass a folder for the .tflite "
                          "files, e.g. tflite/NAME")
    check_writable(out)  # before loading the model
    model = src.load()
    kind = infer_kind(model, src.meta)
    if kind != "image_classifier":
        raise ExportError(f"TFLite export supports image classifiers; {src.path} is a {kind} "
                          "(export it with `tfkit export savedmodel`)")
    slices = image_slices(src.meta, image_input_shape(model, src.meta), data_dir)
    print(f"exporting {src.path} to TFLite -> {out} (held-out: {len(slices.test_y)} "
          f"{slices.dataset} test images, calibration: {len(slices.calibration)})", flush=True)
    # Everything is written into a staging folder beside `out` and moved in once complete: a
    # failed variant leaves `out` as it was, not new .tflite files beside a stale card.
    with _staging(out) as stage:
        report = tflite_parity(model, slices, stage, src.name)
        report["source"] = str(src.path)
        write_parity(report, stage)
        measured = {f"{v} held-out accuracy": f"{r['accuracy']:.4f} "
                                              f"({r['size_bytes'] / 1e6:.2f} MB)"
                    for v, r in report["variants"].items()}
        data = f" --data-dir {data_dir}" if data_dir else ""
        write_card(stage / "MODEL_CARD.md", model_card(
            src, "TFLite variants", measured,
            f"uv run tfkit export tflite {source} --out {out}{data}",
            _tflite_io(model, report, stage) + "\n\n## Parity with Keras\n\n"
            + parity_markdown(report), kind=kind))
        out.mkdir(exist_ok=True)
        for path in sorted(stage.iterdir()):
            os.replace(path, out / path.name)
    print(parity_markdown(report))
    print(f"wrote {', '.join(v['file'] for v in report['variants'].values())}, parity.md, "
          f"parity.json, MODEL_CARD.md into {out}")
    return 0
