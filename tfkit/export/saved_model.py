"""SavedModels for TF Serving, with explicit, named serving signatures.

The exported object is a `tf.Module` whose `tf.function`s have fixed input signatures, so the
SavedModel needs neither Keras nor tfkit to load, and TF Serving rejects wrong dtypes and shapes
before the model runs. Image classifiers take uint8 HWC images and preprocess in-graph;
language models take token ids (tfkit's models tokenize outside the graph).

Example:
    >>> from tfkit.export import export_saved_model
    >>> from tfkit.models import ViT
    >>> model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
    ...             intermediate_dim=32, num_classes=3, channels=3)
    >>> meta = {"kind": "image_classifier", "class_names": ["cat", "dog", "fox"]}
    >>> _ = export_saved_model(model, meta, "saved_models/example/1")   # TF Serving layout
    >>> m = tf.saved_model.load("saved_models/example/1")
    >>> out = m.signatures["serving_default"](images=tf.zeros([2, 8, 8, 3], tf.uint8))
    >>> sorted(out), out["labels"].shape
    (['classes', 'labels', 'logits', 'probabilities'], TensorShape([2]))
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tfkit.backend import tf
from tfkit.export.errors import ExportError
from tfkit.model_io import ends_in_softmax, model_inputs
from tfkit.runs import unwritable_reason

__all__ = ["ImageClassifierModule", "LanguageModelModule", "check_export_target",
           "check_writable",
           "classifier_outputs", "export_saved_model", "image_input_shape", "keras_logits",
           "serving_module", "signature_summary"]


def image_input_shape(model: Any, meta: dict) -> tuple[int, int, int]:
    """(H, W, C) an image model is exported at: its own input shape ((H, W, 1) for a grayscale
    model whose input has no channel axis, e.g. `keras.Input((28, 28))`), or
    `meta["input_shape"]` for a model that takes any size (ResNet, `ViT(resize_inputs=True)`)."""
    own = tuple(model.input_shape[1:])
    if len(own) in (2, 3) and None not in own:
        return (*(int(d) for d in own), 1)[:3]
    shape = meta.get("input_shape")
    if not shape:
        raise ExportError(f"the model takes images of any size (input shape {list(own)}); add "
                          "\"input_shape\": [height, width, channels] to its meta JSON "
                          "(models/NAME.json beside NAME.keras) to export it at that size")
    if len(shape) != 3 or (own[-1] is not None and int(shape[-1]) != int(own[-1])):
        raise ExportError(f"meta \"input_shape\" {list(shape)} does not fit the model's input "
                          f"{list(own)}; give [height, width, channels]")
    return tuple(int(d) for d in shape)


def _outputs_to_logits(outputs: tf.Tensor, outputs_kind: str) -> tf.Tensor:
    # float32 as documented, also for a mixed-precision model (float16 / bfloat16 outputs)
    outputs = tf.cast(outputs, tf.float32)
    if outputs_kind == "probabilities":  # the model ends in softmax: serve log-probabilities
        return tf.math.log(tf.maximum(outputs, 1e-12))
    return outputs


def classifier_outputs(model: Any, meta: dict) -> str:
    """What an image classifier outputs: the meta's `"outputs"` ("logits" or
    "probabilities"), else "probabilities" for a model whose last layer is a softmax."""
    kind = meta.get("outputs")
    if kind is None:
        return "probabilities" if ends_in_softmax(model) else "logits"
    if kind not in ("logits", "probabilities"):
        raise ExportError(f"meta \"outputs\" {kind!r} of an image classifier must be "
                          "\"logits\" or \"probabilities\" (a model ending in softmax)")
    return str(kind)


def keras_logits(model: Any, meta: dict, pixels: Any) -> tf.Tensor:
    """What the exported `serving_default` returns as `logits` for uint8 `pixels`, computed by
    the Keras model itself (the reference of the export's parity check)."""
    outputs = model(model_inputs(model, tf.convert_to_tensor(pixels)), training=False)
    return _outputs_to_logits(outputs, classifier_outputs(model, meta))


class ImageClassifierModule(tf.Module):
    """Serves a Keras image classifier that takes float32 [0, 1] NHWC images (or scales 0..255
    pixels itself: a uint8 Input or a first pixel `Rescaling`; see `tfkit.model_io`).

    Signatures:
        serving_default: `images` uint8 [batch, H, W, C] (exactly the model's size) →
            `logits` float32 [batch, classes], `probabilities` (softmax), `classes` int64
            (arg-max) and, when class names are known, `labels` (string).
        classify_any_size: `images` uint8 [batch, height, width, C] of any size, resized
            in-graph (bilinear) to H x W; same outputs.

    Args:
        model: the Keras classifier; its input shape fixes H, W, C.
        class_names: one name per class ("" entries allowed), or empty for no `labels` output.
        outputs_kind: "logits" (tfkit's models) or "probabilities" (a model ending in softmax);
            None: "probabilities" when the model's last layer is a softmax.
        input_shape: (H, W, C) for a model that takes any size (None = the model's own).
    """

    def __init__(self, model: Any, class_names: tuple[str, ...] = (),
                 outputs_kind: str | None = None,
                 input_shape: tuple[int, int, int] | None = None):
        super().__init__(name="image_classifier")
        outputs_kind = classifier_outputs(model, {"outputs": outputs_kind} if outputs_kind else {})
        meta = {"input_shape": list(input_shape)} if input_shape else {}
        height, width, channels = image_input_shape(model, meta)
        # Track the weights, not the Keras model: the SavedModel then loads without Keras.
        self.model_weights = list(model.weights)
        names = tf.constant(list(class_names) or [""], tf.string)

        def predict(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
            x = model_inputs(model, pixels)  # uint8 0..255 -> [0, 1], or pixels (tfkit.model_io)
            logits = _outputs_to_logits(model(x, training=False), outputs_kind)
            classes = tf.argmax(logits, axis=-1)
            out = {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
                   "classes": classes}
            if class_names:
                out["labels"] = tf.gather(names, classes)
            return out

        @tf.function(input_signature=[
            tf.TensorSpec([None, height, width, channels], tf.uint8, name="images")])
        def serving_default(images: tf.Tensor) -> dict[str, tf.Tensor]:
            # Signatures called through TF Serving do not enforce the static shape: check it
            # before any model op runs (control dependency), so this is the error users see.
            ok = tf.debugging.assert_equal(
                tf.shape(images)[1:], [height, width, channels],
                message=f"images must be uint8 [batch, {height}, {width}, {channels}]; resize "
                        "them or call the classify_any_size signature")
            with tf.control_dependencies([ok]):
                return predict(tf.identity(images))

        @tf.function(input_signature=[
            tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")])
        def classify_any_size(images: tf.Tensor) -> dict[str, tf.Tensor]:
            ok = tf.debugging.assert_equal(tf.shape(images)[3], channels,
                                           message=f"images must have {channels} channel(s)")
            with tf.control_dependencies([ok]):
                images = tf.identity(images)
            resized = tf.image.resize(images, [height, width], antialias=True)
            return predict(tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8))

        self.serving_default = serving_default
        self.classify_any_size = classify_any_size

    def signatures(self) -> dict[str, Any]:
        return {"serving_default": self.serving_default,
                "classify_any_size": self.classify_any_size}


class LanguageModelModule(tf.Module):
    """Serves a Keras causal LM that maps int32 token ids [batch, length] to logits.

    Signatures:
        serving_default: `token_ids` int32 [batch, length] (id `pad_id` = padding, on either
            side) → `logits` float32 [batch, length, vocabulary], `next_token_logits`
            [batch, vocabulary] at each row's last non-padding token, `next_token` int32.
        generate: `token_ids` int32 [batch, length] (left-padded or equal-length prompts) and
            `max_new_tokens` int32 scalar → `token_ids` [batch, length + max_new_tokens],
            greedy decoding; the model sees at most its last `sequence_length` tokens.
        complete_text (only with a word tokenizer in the meta, as tfkit.promot saves):
            `text` string [batch] and `max_new_tokens` → `completion` string [batch] (the
            generated words) and `token_ids`; tokenization runs in-graph.

    Args:
        model: the Keras LM.
        sequence_length: the longest window the model accepts (its position table).
        pad_id: the padding token id.
        tokenizer: the meta's tokenizer description; `{"type": "word", "vocabulary": [...],
            "unk_id": 1}` adds the `complete_text` signature.
    """

    def __init__(self, model: Any, sequence_length: int, pad_id: int = 0,
                 tokenizer: dict | None = None):
        super().__init__(name="language_model")
        self.model_weights = list(model.weights)
        vocabulary = int(model.output_shape[-1])

        def check(token_ids: tf.Tensor) -> tf.Tensor:
            """`token_ids`, once its length and id range are checked (clear errors first)."""
            checks = [
                tf.debugging.assert_less_equal(
                    tf.shape(token_ids)[1], sequence_length,
                    message=f"token_ids may hold at most {sequence_length} tokens per row"),
                tf.debugging.assert_non_negative(token_ids, message="token ids must be >= 0"),
                tf.debugging.assert_less(token_ids, vocabulary,
                                         message=f"token ids must be < {vocabulary} "
                                                 "(vocabulary)")]
            with tf.control_dependencies(checks):
                return tf.identity(token_ids)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
        def serving_default(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
            token_ids = check(token_ids)
            logits = tf.cast(model(token_ids, training=False), tf.float32)  # also mixed precision
            real = tf.cast(tf.not_equal(token_ids, pad_id), tf.int32)
            length = tf.shape(token_ids)[1]
            last = length - 1 - tf.argmax(tf.reverse(real, [1]), axis=1, output_type=tf.int32)
            next_logits = tf.gather(logits, last, axis=1, batch_dims=1)
            return {"logits": logits, "next_token_logits": next_logits,
                    "next_token": tf.argmax(next_logits, axis=-1, output_type=tf.int32)}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                                      tf.TensorSpec([], tf.int32, name="max_new_tokens")])
        def generate(token_ids: tf.Tensor, max_new_tokens: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"token_ids": greedy(check(token_ids), max_new_tokens)}

        def greedy(token_ids: tf.Tensor, max_new_tokens: tf.Tensor) -> tf.Tensor:
            def step(i, ids):
                logits = model(ids[:, -sequence_length:], training=False)
                nxt = tf.argmax(logits[:, -1], axis=-1, output_type=tf.int32)
                return i + 1, tf.concat([ids, nxt[:, None]], axis=1)

            _, ids = tf.while_loop(lambda i, _: i < max_new_tokens, step, [0, token_ids],
                                   shape_invariants=[tf.TensorShape([]),
                                                     tf.TensorShape([None, None])])
            return ids

        self.serving_default = serving_default
        self.generate = generate
        self.complete_text = None
        if tokenizer and tokenizer.get("type") == "word" and tokenizer.get("vocabulary"):
            self.word_table, self.complete_text = _word_completion(tokenizer, pad_id, greedy)

    def signatures(self) -> dict[str, Any]:
        out = {"serving_default": self.serving_default, "generate": self.generate}
        if self.complete_text is not None:
            out["complete_text"] = self.complete_text
        return out


def _word_completion(tokenizer: dict, pad_id: int, greedy: Any) -> tuple[Any, Any]:
    """The `complete_text` signature: whitespace word tokenizer in-graph (tfkit.promot's
    `WordTokenizer`: id = position in `vocabulary`, unknown words -> `unk_id`)."""
    words = tf.constant(list(tokenizer["vocabulary"]), tf.string)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(words, tf.range(tf.size(words), dtype=tf.int32)),
        default_value=int(tokenizer.get("unk_id", 1)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens")])
    def complete_text(text: tf.Tensor, max_new_tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = table.lookup(tf.strings.split(text))  # ragged [batch, words]
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        right = ids.to_tensor(pad_id)
        width = tf.shape(right)[1]
        # Left-pad (prompts end together, so generation appends at the same position).
        source = tf.range(width)[None, :] - (width - lengths)[:, None]
        left = tf.where(source >= 0, tf.gather(right, tf.maximum(source, 0), batch_dims=1),
                        pad_id)
        out = greedy(left, max_new_tokens)
        new = out[:, width:]
        new_words = tf.ragged.boolean_mask(tf.gather(words, new), tf.not_equal(new, pad_id))
        return {"completion": tf.strings.reduce_join(new_words, axis=1, separator=" "),
                "token_ids": out}

    return table, complete_text


def infer_kind(model: Any, meta: dict) -> str:
    """The meta's `kind`, else guessed from the input: integer ids → LM, 4-D floats → images."""
    if meta.get("kind"):
        return str(meta["kind"])
    spec = model.inputs[0]
    if spec.dtype.is_integer and len(spec.shape) == 2:
        return "language_model"
    if len(spec.shape) == 4:
        return "image_classifier"
    raise ExportError(f"cannot tell what kind of model takes {spec.dtype.name} "
                      f"{list(spec.shape)} inputs; add \"kind\" to its meta JSON")


def serving_module(model: Any, meta: dict) -> ImageClassifierModule | LanguageModelModule:
    """The serving `tf.Module` for `model`, chosen by `meta["kind"]` (or the input's type)."""
    kind = infer_kind(model, meta)
    if kind == "image_classifier":
        return ImageClassifierModule(model, tuple(meta.get("class_names") or ()),
                                     meta.get("outputs"),  # resolved by the module
                                     image_input_shape(model, meta))
    if kind == "language_model":
        length = meta.get("sequence_length") or getattr(model, "sequence_length", None)
        if not length:
            raise ExportError("language model meta lacks \"sequence_length\" and the model has "
                              "no sequence_length attribute")
        tokenizer = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else None
        pad_id = meta.get("pad_id", (tokenizer or {}).get("pad_id", 0))
        return LanguageModelModule(model, int(length), int(pad_id), tokenizer)
    raise ExportError(f"cannot export models of kind {kind!r}")


def check_writable(out: str | os.PathLike) -> None:
    """Raises ExportError when `out` (a folder, created if absent) cannot be written: a file
    on its path, or its nearest existing folder not writable. Checked before any work."""
    reason = unwritable_reason(out)
    if reason:
        raise ExportError(f"cannot write {Path(out).absolute()}: {reason}; pass another --out")


def check_export_target(out: str | os.PathLike) -> None:
    """Raises ExportError unless `out` is absent, empty or an earlier SavedModel export (the
    folders `export_saved_model` may replace); call it before loading a large model. The
    export replaces `out` as a whole, which must never delete a run directory or the other
    versions of `saved_models/NAME`."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        check_writable(out)
        return
    if out.is_dir() and ((out / "saved_model.pb").is_file() or not any(out.iterdir())):
        check_writable(out.parent)  # the export replaces `out` from a folder beside it
        return
    what = "a file" if not out.is_dir() else "a folder with other contents"
    raise ExportError(f"{out} exists and is not a SavedModel ({what}); the export would "
                      "replace it, so it refuses: pass a new or empty folder, e.g. "
                      "saved_models/NAME/1 (TF Serving's NAME/VERSION layout)")


def export_saved_model(model: Any, meta: dict, out: str | os.PathLike) -> Path:
    """Writes `model` as a SavedModel with explicit signatures into `out` (replacing it).

    Use `saved_models/NAME/VERSION` for `out` (the layout TF Serving loads). Returns `out`.

    Raises:
        ExportError: `out` exists and is neither empty nor an earlier SavedModel export.
    """
    out = Path(out)
    check_export_target(out)
    module = serving_module(model, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tf.saved_model.save(module, str(tmp / "model"), signatures=module.signatures())
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp / "model", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def signature_summary(path: str | os.PathLike) -> dict[str, dict]:
    """{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}} of a SavedModel."""
    loaded = tf.saved_model.load(str(path))
    summary = {}
    for key, fn in loaded.signatures.items():
        inputs = {k: (v.dtype.name, v.shape.as_list() if v.shape.rank is not None else None)
                  for k, v in fn.structured_input_signature[1].items()}
        outputs = {k: (v.dtype.name, v.shape.as_list() if v.shape.rank is not None else None)
                   for k, v in fn.structured_outputs.items()}
        summary[key] = {"inputs": inputs, "outputs": outputs}
    return summary
