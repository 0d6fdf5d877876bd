import json

import numpy as np
import pytest

from tfkit import experiments
from tfkit.config import ConfigError


def test_promot_demo_runs_and_resumes(tmp_path):
    exp = experiments.get("promot")
    cfg = exp.config("demo")
    results = experiments.run_experiment(exp, cfg, tmp_path, log=None)
    assert set(results["target"]) == {"pretrained", "prompt_tuning", "standard_ft", "promot"}
    for shots in ("1shot", "4shot"):
        for method, scores in results["icl"][shots].items():
            assert "normalized_average" in scores and "sentiment" in scores, method
    assert set(results["format_specialization"]) == set(results["target"])
    assert (tmp_path / "report.md").exists() and (tmp_path / "models/pretrained.keras").exists()
    meta = json.loads((tmp_path / "models/pretrained.json").read_text())
    assert meta["kind"] == "language_model" and meta["tokenizer"]["type"] == "word"
    assert (tmp_path / "prompts/entail_promot.npz").exists()
    messages = []
    again = experiments.run_experiment(exp, cfg, tmp_path, log=messages.append)
    assert again["target"] == results["target"]
    assert not any(m.endswith(": running") for m in messages)  # every stage was reused


def test_promot_config_reaches_both_stages():
    from tfkit.promot.pipeline import Setup

    exp = experiments.get("promot")
    cfg = exp.config("demo", model_optimizer="adafactor", prompt_tokens=8)
    tuning = Setup.create(cfg).tuning()
    assert (tuning.model_optimizer, tuning.prompt_tokens) == ("adafactor", 8)
    assert tuning.model_learning_rate == cfg.model_learning_rate


def test_promot_config_typos_fail_before_pretraining():
    exp = experiments.get("promot")
    bad = {"methods": "standard_ft,promt", "targets": "entail,rte", "prompt_positions": "shift",
           "prompt_init": "vocab", "prompt_optimizer": "sgd", "model_optimizer": "adamw",
           "model_schedule": "linear", "prompt_tokens": 0}
    for field, value in bad.items():  # each used to fail only after pretraining (or not at all)
        with pytest.raises(ConfigError, match=field):
            exp.config("demo", overrides=[f"{field}={value}"])


def test_docs_describe_the_full_config_lm():
    """docs/promot.md's full-Config paragraph names its LM's size and pretraining steps."""
    from pathlib import Path

    from tfkit.models import DecoderLM
    from tfkit.promot.pipeline import Setup

    cfg = experiments.get("promot").config("full")
    setup = Setup.create(cfg)
    lm = DecoderLM(vocabulary_size=setup.tokenizer.vocabulary_size,
                   sequence_length=cfg.context_length + cfg.prompt_tokens
                   + 2 * setup.max_new_tokens,
                   num_layers=cfg.num_layers, hidden_dim=cfg.hidden_dim,
                   num_heads=cfg.num_heads, intermediate_dim=cfg.intermediate_dim)
    lm(np.zeros((1, 4), "int32"))
    docs = " ".join((Path(__file__).parents[2] / "docs/promot.md").read_text().split())
    assert (f"{cfg.num_layers}-layer, width-{cfg.hidden_dim} LM "
            f"({round(lm.count_params() / 1000)} k parameters") in docs
    assert f"for {cfg.pretrain_steps:,} steps" in docs
    assert f"all {len(cfg.methods)} methods" in docs.replace("all six", "all 6")
