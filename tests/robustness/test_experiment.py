from tfkit.experiments import get, run_experiment
from tfkit.robustness.corruptions import CORRUPTIONS


def test_demo_end_to_end_and_resume(tmp_path):
    exp = get("robustness")
    config = exp.config("demo")
    results = run_experiment(exp, config, tmp_path, log=None)
    assert set(results["clean"]) == {"vit", "resnet"}
    for model in ("vit", "resnet"):
        assert set(results["corruptions"][model]) == set(CORRUPTIONS)
        assert all(len(v) == 5 for v in results["corruptions"][model].values())
        assert results["adversarial"][model]["pgd_linf"]
        n = len(results["cka"][model])
        assert n == len(results["cka"][model][0]) == len(results["layer_removal"][model]) + 1
    assert results["clean"]["vit"] > 0.5 and results["clean"]["resnet"] > 0.5  # trained
    for name in ("report.md", "corruptions.png", "adversarial.png", "layer_removal.png",
                 "cka.png", "corruption_examples.png", "models/vit.keras"):
        assert (tmp_path / name).exists(), name
    # A second run into the same directory reuses every stage.
    again = run_experiment(exp, config, tmp_path, log=None)
    assert again["clean"] == results["clean"]
    assert again["stage_seconds"] == results["stage_seconds"]
