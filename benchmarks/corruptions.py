"""ImageNet-C corruptions: tfkit's batched TensorFlow ops vs the `imagecorruptions` package.

Both sides corrupt the same uint8 images (CIFAR-10 test images from $TFKIT_DATA_DIR, else
scikit-learn's sample photos resized) at one severity, on the same CPU. The reference runs
image by image in NumPy/OpenCV/scikit-image (how it is used); tfkit runs one `tf.function` per
corruption on the whole batch, after a warm-up call (tracing). Reported: milliseconds per image
and the speedup, per corruption and for the whole 15-corruption suite.

    uv run python benchmarks/corruptions.py [--images 256] [--size 32] [--severity 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def _images(n: int, size: int) -> tuple[np.ndarray, str]:
    data_dir = os.environ.get("TFKIT_DATA_DIR")
    if size == 32 and data_dir and (Path(data_dir) / "cifar10_test.npz").exists():
        with np.load(Path(data_dir) / "cifar10_test.npz") as f:
            return f["x_test"][:n], "CIFAR-10 test"
    from sklearn.datasets import load_sample_images

    from tfkit.backend import tf

    photos = np.stack(load_sample_images().images)
    crops = tf.image.resize(photos[:, :420, :420], [size, size], "area").numpy()
    return np.resize(crops.round().astype(np.uint8), (n, size, size, 3)), "sklearn sample photos"


def _patch_reference_for_new_skimage() -> None:
    """imagecorruptions 1.1.2 calls skimage's `gaussian(..., multichannel=True)`, removed in
    scikit-image 0.19+; map it to `channel_axis=-1` (same computation)."""
    import imagecorruptions.corruptions as ref

    original = ref.gaussian

    def gaussian(image, *args, multichannel=None, **kwargs):
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return original(image, *args, **kwargs)

    ref.gaussian = gaussian


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=32, help="image side (>= 32 for the reference)")
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--reference-images", type=int, default=64,
                   help="images the (slow) reference corrupts; its time is per image")
    p.add_argument("--json", type=Path, help="also write the numbers here (tfkit bench)")
    args = p.parse_args()
    try:
        from imagecorruptions import corrupt as reference_corrupt
    except ImportError:
        print("the imagecorruptions package is missing: uv sync --group dev", file=sys.stderr)
        return 1
    _patch_reference_for_new_skimage()
    from tfkit.backend import tf
    from tfkit.robustness.corruptions import CORRUPTIONS, corrupt
    from tfkit.runs import markdown_table

    images, source = _images(args.images, args.size)
    batch = tf.constant(images)
    rows, ours_total, ref_total = [], 0.0, 0.0
    for name in CORRUPTIONS:
        fn = tf.function(lambda x, name=name: corrupt(x, name, args.severity, seed=0))
        fn(batch).numpy()  # warm-up (tracing)
        t0 = time.perf_counter()
        fn(batch).numpy()
        ours = (time.perf_counter() - t0) / len(images) * 1e3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            for img in images[:args.reference_images]:
                reference_corrupt(img, severity=args.severity, corruption_name=name)
            ref = (time.perf_counter() - t0) / min(len(images), args.reference_images) * 1e3
        ours_total, ref_total = ours_total + ours, ref_total + ref
        rows.append([name, ours, ref, ref / ours])
        print(f"{name:18s} tfkit {ours:8.3f} ms/img   imagecorruptions {ref:8.3f} ms/img   "
              f"{ref / ours:6.1f}x", flush=True)
    rows.append(["all 15 (suite)", ours_total, ref_total, ref_total / ours_total])
    print(f"\n{source}, {args.size}x{args.size}, severity {args.severity}, tfkit batch "
          f"{len(images)}, {os.cpu_count()} CPU cores\n")
    print(markdown_table(rows, ["corruption", "tfkit ms/image", "imagecorruptions ms/image",
                                "speedup x"], digits=3))
    if args.json:
        command = ("uv run python benchmarks/corruptions.py --images "
                   f"{args.images} --size {args.size} --severity {args.severity}")
        metrics = {"suite_ours_ms_per_image": ours_total, "suite_peer_ms_per_image": ref_total,
                   "suite_speedup_x": ref_total / ours_total,
                   "slowest_speedup_x": min(r[3] for r in rows[:-1])}
        args.json.write_text(json.dumps({"name": "corruptions", "metrics": metrics,
                                         "command": command}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
