from dataclasses import replace

import numpy as np
import pytest

from tfkit.config import ConfigError
from tfkit.experiments import get
from tfkit.experiments.lazy_neuron import Config, _images, _topk_comparison
from tfkit.runs import RunDir
from tfkit.sparsity.comparison import PAIRED_METRICS, combine_seeds, seed_summary, topk_row
from tfkit.sparsity.seeds import paired_difference, seed_statistics


def test_seed_statistics_nested_mean_and_sample_std():
    per_seed = [{"k": 8, "acc": 0.2, "noisy": {"0.4": 0.1}, "layers": [0.3, 0.5]},
                {"k": 8, "acc": 0.4, "noisy": {"0.4": 0.3}, "layers": [0.5, 0.7]},
                {"k": 8, "acc": 0.9, "noisy": {"0.4": 0.2}, "layers": [0.1, 0.3]}]
    s = seed_statistics(per_seed, keep=("k",))
    assert s["k"] == 8 and isinstance(s["k"], int) and s["per_seed"] == per_seed
    assert "k" not in s["std"]
    assert s["acc"] == pytest.approx(0.5)
    assert s["std"]["acc"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert s["noisy"]["0.4"] == pytest.approx(0.2)
    assert s["std"]["noisy"]["0.4"] == pytest.approx(0.1)
    assert s["layers"] == pytest.approx([0.3, 0.5])


def test_one_seed_keeps_values_and_has_no_spread():
    s = seed_statistics([{"acc": 0.25, "noisy": {"0.4": 0.1}}])
    assert s["acc"] == 0.25 and s["std"] == {"acc": None, "noisy": {"0.4": None}}
    with pytest.raises(ValueError):
        seed_statistics([])
    with pytest.raises(ValueError, match="differ"):
        seed_statistics([{"k": 8, "acc": 0.1}, {"k": 16, "acc": 0.2}], keep=("k",))


def test_paired_difference_pairs_by_seed():
    topk = [{"acc": 0.30, "noisy": {"0.4": 0.25}}, {"acc": 0.26, "noisy": {"0.4": 0.20}}]
    dense = [{"acc": 0.28, "noisy": {"0.4": 0.20}}, {"acc": 0.27, "noisy": {"0.4": 0.21}}]
    d = paired_difference(topk, dense, ("acc", "noisy"))
    assert d["acc"]["per_seed"] == pytest.approx([0.02, -0.01])
    assert d["acc"]["mean"] == pytest.approx(0.005)
    assert d["acc"]["std"] == pytest.approx(np.std([0.02, -0.01], ddof=1))
    assert d["noisy"]["mean"]["0.4"] == pytest.approx(0.02)
    with pytest.raises(ValueError):
        paired_difference(topk, dense[:1], ("acc",))


def test_config_rejects_zero_seeds_and_presets_stay_one_seed():
    with pytest.raises(ConfigError, match="seeds"):
        Config(seeds=0)
    exp = get("lazy-neuron")
    assert exp.config("quick").seeds == exp.config("demo").seeds == 1  # run time unchanged


def test_topk_comparison_over_two_seeds(tmp_path):
    # dense only (two tiny trainings): the Top-k rows go through the same stages and summaries
    cfg = get("lazy-neuron").config(
        "demo", train_examples=256, test_examples=64, batch_size=64, hidden_dim=16,
        topk_width=32, topk_divisors=(), label_noise=(), epochs=1, severities=(1,),
        probe_examples=32, seeds=2)
    run_dir, data = RunDir(tmp_path, log=None), _images(cfg)
    per_seed = [_topk_comparison(replace(cfg, seed=s), run_dir, data, None, suffix=f"_s{s}")
                for s in (0, 1)]
    rows = [r[None] for r in per_seed]
    dense = seed_summary(rows, None)
    assert dense["seeds"] == [0, 1] and "k" not in dense
    a, b = (r["ece"] for r in dense["per_seed"])
    assert a != b  # the seed changes training
    assert dense["ece"] == pytest.approx((a + b) / 2)
    assert dense["std"]["ece"] == pytest.approx(abs(a - b) / np.sqrt(2))
    assert (tmp_path / "stages" / "vit_w32_d1_s1.json").exists()
    # a model compared with itself seed by seed differs by exactly zero (pairs match seeds)
    same = seed_summary(rows, rows)["vs_dense"]
    assert same["ece"]["per_seed"] == [0.0, 0.0] and same["ece"]["std"] == 0.0


def test_topk_rows_combine_into_dense_and_topk_summaries():
    def row(k, seed, acc, noisy_acc):
        return topk_row(k, seed, {"accuracy": acc, "ece": 0.05, "noise/1": acc - 0.01,
                                  "blur/1": acc - 0.03},
                        {"0.4": {"accuracy": noisy_acc, "ece": 0.2, "memorized": 0.4}}, [0.3])

    per_seed = [{None: row(None, 0, 0.30, 0.20), 16: row(16, 0, 0.31, 0.25)},
                {None: row(None, 1, 0.34, 0.22), 16: row(16, 1, 0.33, 0.21)}]
    assert per_seed[0][None]["mean_corruption_accuracy"] == pytest.approx(0.28)
    dense, topk = combine_seeds(per_seed)
    assert dense["seeds"] == [0, 1] and "k" not in dense and "vs_dense" not in dense
    assert dense["accuracy"] == pytest.approx(0.32)
    assert [t["k"] for t in topk] == [16]
    gap = topk[0]["vs_dense"]
    assert gap["accuracy"]["per_seed"] == pytest.approx([0.01, -0.01])
    assert gap["noisy_label_accuracy"]["mean"]["0.4"] == pytest.approx(0.02)
    assert set(gap) == set(PAIRED_METRICS)
