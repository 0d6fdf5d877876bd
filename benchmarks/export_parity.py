"""TFLite variants vs float32 TFLite and vs the SavedModel on TensorFlow: size and latency.

    uv run python benchmarks/export_parity.py [--tflite-dir tflite/topk]
        [--saved-model saved_models/topk/1] [--runs 200] [--json PATH]

Ours: the four `tfkit export tflite` variants on the on-device interpreter (tflite_runtime,
1 thread, batch 1). Peers: the float32 TFLite model, and the exported SavedModel served by
TensorFlow at batch 1 (what TF Serving runs). Latency is the median of `--runs` single-image
calls after 10 warm-up calls. Held-out accuracy is read from the export's parity.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfkit.export import VARIANTS, TFLiteModel  # noqa: E402
from tfkit.runs import markdown_table, write_json  # noqa: E402


def median_ms(fn, x: np.ndarray, runs: int) -> float:
    for _ in range(10):  # warm-up: first calls allocate and pack weights
        fn(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tflite-dir", type=Path, default=ROOT / "tflite" / "topk")
    parser.add_argument("--saved-model", type=Path, default=ROOT / "saved_models" / "topk" / "1")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()

    parity_path = args.tflite_dir / "parity.json"
    if not parity_path.exists():
        print(f"{parity_path} is missing; run `uv run tfkit export tflite RUN_DIR --out "
              f"{args.tflite_dir}` first", file=sys.stderr)
        return 2
    parity = json.loads(parity_path.read_text())
    rng = np.random.default_rng(0)
    models = {v: TFLiteModel(args.tflite_dir / parity["variants"][v]["file"], num_threads=1)
              for v in VARIANTS if v in parity["variants"]}
    shape = models["float32"].input_shape
    image = rng.integers(0, 256, size=(1, *shape), dtype=np.uint8)
    x = image.astype(np.float32) / 255.0

    from tfkit.backend import tf  # after the TFLite runs are set up: TF is the peer

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    serve = tf.saved_model.load(str(args.saved_model)).signatures["serving_default"]
    sm_ms = median_ms(lambda im: serve(images=tf.constant(im)), image, args.runs)

    metrics, rows = {"savedmodel_ms": sm_ms}, []
    base_ms = median_ms(models["float32"].predict, x, args.runs)
    base_size = models["float32"].size_bytes
    for variant, model in models.items():
        ms = base_ms if variant == "float32" else median_ms(model.predict, x, args.runs)
        acc = parity["variants"][variant]["accuracy"]
        rows.append([variant, model.size_bytes / 1e6, base_size / model.size_bytes, ms,
                     base_ms / ms, sm_ms / ms, acc])
        metrics.update({f"{variant}_mb": model.size_bytes / 1e6, f"{variant}_ms": ms,
                        f"{variant}_size_ratio": base_size / model.size_bytes,
                        f"{variant}_accuracy": acc})
    print(f"model: {args.tflite_dir} ({parity['dataset']}, held-out accuracy from parity.json"
          f" on {parity['examples']} examples); SavedModel on TF: {sm_ms:.3f} ms/image\n")
    print(markdown_table(rows, ["variant", "MB", "x smaller than float32", "ms/image",
                                "x faster than float32", "x faster than SavedModel (TF)",
                                "accuracy"], digits=3))
    if args.json:
        write_json(args.json, {"name": "export_parity", "metrics": metrics,
                               "command": "uv run python benchmarks/export_parity.py"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
