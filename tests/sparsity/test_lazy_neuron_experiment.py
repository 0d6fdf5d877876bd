from tfkit.experiments import get, run_experiment


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    exp = get("lazy-neuron")
    cfg = exp.config("demo")
    results = run_experiment(exp, cfg, tmp_path, log=None)
    assert {"sparsity", "topk", "dense", "tflite"} <= set(results)
    models = {r["model"] for r in results["sparsity"]}
    assert models == {"vit", "lm"}
    for row in results["sparsity"]:
        assert set(row) == {"model", "width", "depth", "split", "nonzero_fraction_per_layer"}
        assert all(0 < f <= 1 for f in row["nonzero_fraction_per_layer"])
    k = results["topk"][0]
    assert k["k"] == cfg.topk_width // cfg.topk_divisors[0]
    assert max(k["nonzero_fraction_test"]) <= k["k"] / cfg.topk_width + 1e-9
    assert set(k) >= {"k", "accuracy", "ece", "noisy_label_accuracy"}
    assert set(results["dense"]) >= {"accuracy", "ece", "noisy_label_accuracy"}
    # one seed (the demo/quick default): the mean is that seed's value, with no spread
    d = results["dense"]
    assert d["seeds"] == [cfg.seed] and d["per_seed"][0]["accuracy"] == d["accuracy"]
    assert d["std"]["accuracy"] is None
    assert k["vs_dense"]["accuracy"]["per_seed"] == [k["accuracy"] - d["accuracy"]]
    t = results["tflite"]
    assert t["max_abs_diff"] <= 1e-4
    assert t["speedup"] == t["dense_ms"] / t["sparse_ms"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "sparsity_vit.png").exists()
    assert (tmp_path / "models" / "topk.keras").exists()

    logs = []
    again = run_experiment(exp, cfg, tmp_path, log=logs.append)
    assert again["topk"] == results["topk"]
    assert not any("running" in line for line in logs)


def test_lms_train_at_lm_learning_rate(tmp_path):
    """The LMs take `lm_learning_rate`, not the ViTs' `learning_rate`: at 0 they do not move."""
    from tfkit.experiments.lazy_neuron import _text, _train_lm
    from tfkit.runs import RunDir

    cfg = get("lazy-neuron").config("demo", lm_learning_rate=0.0, learning_rate=1e-2)
    r = _train_lm(cfg, RunDir(tmp_path, log=None), _text(cfg), "lm", 32, 1)
    test = [p for p in r["over_training"] if p["split"] == "test"]
    assert test[-1]["step"] > test[0]["step"] > -1
    # frozen weights: the activation pattern at the end is the one at initialization
    key = "nonzero_fraction_per_layer"
    assert test[-1][key] == test[0][key] == r["test"]
