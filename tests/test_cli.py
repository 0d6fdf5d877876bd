import os
import subprocess
import sys

import pytest

from tfkit import experiments
from tfkit.cli import main


def test_list_names_five_experiments(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("lazy-neuron", "robustness", "promot", "fedmd", "rest-react"):
        assert name in out


def test_unknown_experiment_is_a_clear_error(capsys):
    assert main(["run", "nope"]) == 2
    assert "available: lazy-neuron" in capsys.readouterr().err


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_has_valid_presets(name):
    exp = experiments.get(name)
    for size in ("full", "quick", "demo"):
        cfg = exp.config(size)
        assert hasattr(cfg, "seed") and hasattr(cfg, "data_dir")


def test_bad_override_is_rejected(capsys):
    assert main(["run", "promot", "--set", "no_such_field=1"]) == 2
    assert "unknown config key" in capsys.readouterr().err


@pytest.mark.parametrize("name", experiments.names())
def test_print_config_lists_every_field_with_its_value_and_runs_nothing(name, capsys, tmp_path,
                                                                        monkeypatch):
    import json

    from tfkit.config import field_names, to_dict

    monkeypatch.chdir(tmp_path)
    assert main(["run", name, "--quick", "--set", "seed=7", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    cfg = experiments.get(name).config("quick", ["seed=7"])
    assert printed == to_dict(cfg) and printed["seed"] == 7
    for key in field_names(cfg):  # every key --set accepts is shown
        node = printed
        for part in key.split("."):
            node = node[part]
    assert not (tmp_path / "runs").exists()


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "tfkit.cli", "list"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "fedmd" in out.stdout


def test_bad_config_value_is_a_one_line_error_before_any_work(capsys, tmp_path):
    assert main(["run", "rest-react", "--quick", "--set", "generations=0",
                 "--out", str(tmp_path / "run")]) == 2
    assert "generations must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_key_error_inside_a_run_is_a_bug_not_a_user_error(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise KeyError("gen1")

    monkeypatch.setattr(experiments, "run_experiment", broken)
    with pytest.raises(KeyError, match="gen1"):  # with its traceback, not "error: gen1"
        main(["run", "promot", "--quick", "--out", str(tmp_path)])


@pytest.mark.parametrize("override, message", [
    ("patch_size=5", "patch_size 5 does not divide the 32 px images of cifar10"),
    ("vit_heads=3", "vit_hidden_dim 128 is not divisible by vit_heads 3"),
    ("dataset=tinyshakespeare", "dataset must be one of"),
    ("severities=0,6", "severities must be in 1..5"),
    ("eval_examples=0", "eval_examples must be at least 1"),
    ("resnet_widths=", "resnet_widths must be one or more positive ints"),
])
def test_bad_robustness_values_are_one_line_errors_before_any_work(capsys, tmp_path, override,
                                                                    message):
    assert main(["run", "robustness", "--set", override, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_export_savedmodel_takes_a_data_dir(monkeypatch):
    from tfkit.export import cli as export_cli

    seen = {}
    monkeypatch.setattr(export_cli, "export_savedmodel",
                        lambda source, out, data_dir=None: seen.update(data_dir=data_dir) or 0)
    assert main(["export", "savedmodel", "run", "--out", "sm/1", "--data-dir", "data"]) == 0
    assert seen == {"data_dir": "data"}


def test_an_unwritable_path_is_a_one_line_error(monkeypatch, capsys):
    from tfkit.export import cli as export_cli

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/sm/1")

    monkeypatch.setattr(export_cli, "export_tflite", denied)
    assert main(["export", "tflite", "run", "--out", "/sm/1"]) == 2
    assert capsys.readouterr().err.strip() == "tfkit: error: [Errno 13] Permission denied: '/sm/1'"


def test_ctrl_c_is_one_line_that_says_how_to_resume(monkeypatch, capsys):
    from tfkit import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_run", interrupted)
    assert main(["run", "promot", "--out", "x"]) == 130  # was a TF traceback
    err = capsys.readouterr().err.strip()
    assert err == ("tfkit: interrupted; run the same command again (the same --out): it "
                   "resumes from the last finished stage and checkpoint")


@pytest.mark.parametrize("level", [None, "0"])
def test_cli_hides_tensorflows_import_time_errors_unless_asked(level):
    # TF 2.14 logs three harmless "Unable to register cuDNN/cuFFT/cuBLAS factory" errors when
    # it loads; the CLI turns TF's C++ log down to fatal unless TF_CPP_MIN_LOG_LEVEL is set.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    code = ("import os, sys; from tfkit.cli import main; code = main(['run', 'robustness', "
            "'--quick', '--print-config']); import tensorflow; "
            "print('level', os.environ['TF_CPP_MIN_LOG_LEVEL'], file=sys.stderr); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"level {level or '3'}" in out.stderr
    if level is None:
        assert "Unable to register" not in out.stderr, out.stderr[-2000:]


def test_cli_drops_tensorflows_retracing_warnings_only(caplog):
    import logging

    main(["list"])
    tf_log = logging.getLogger("tensorflow")
    with caplog.at_level("WARNING", logger="tensorflow"):
        tf_log.warning("5 out of the last 5 calls to <function f> triggered tf.function "
                       "retracing. Tracing is expensive ...")
        tf_log.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
