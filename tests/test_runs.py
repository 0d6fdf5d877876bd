import contextlib

import numpy as np

from tfkit.runs import RunDir, markdown_table, read_json, write_json


def test_stage_runs_once_and_resumes(tmp_path):
    calls = []
    run = RunDir(tmp_path, log=None)
    assert run.stage("a", lambda: calls.append(1) or {"x": np.float32(1.5)}) == {"x": 1.5}
    again = RunDir(tmp_path, log=None)
    assert again.stage("a", lambda: calls.append(2) or {"x": 9}) == {"x": 1.5}
    assert calls == [1] and "a" in again.stage_seconds()


def test_interrupted_stage_reruns(tmp_path):
    run = RunDir(tmp_path, log=None)

    def boom():
        raise RuntimeError("crash")

    try:
        run.stage("b", boom)
    except RuntimeError:
        pass
    assert not run.is_done("b")
    assert run.stage("b", lambda: 7) == 7


def test_atomic_json_leaves_no_temp_files(tmp_path):
    write_json(tmp_path / "r.json", {"a": [1, 2], "nan": float("nan")})
    assert read_json(tmp_path / "r.json") == {"a": [1, 2], "nan": None}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_markdown_table():
    t = markdown_table([["a", 0.12345]], ["k", "v"], digits=2)
    assert "| a | 0.12 |" in t


def _tiny_fit_model():
    from tfkit.backend import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_fit_resumable_returns_the_whole_history_after_a_resume(tmp_path):
    import numpy as np

    from tfkit.training import fit_resumable

    x, y = np.ones((8, 3), np.float32), np.zeros(8, np.int64)
    said = []
    first = fit_resumable(_tiny_fit_model(), x, y=y, epochs=2, directory=tmp_path, verbose=0,
                          log=said.append)
    assert len(first["loss"]) == 2 and said == []  # a fresh fit: nothing to say
    # "Interrupted" after 2 of 4 epochs: the resumed fit reports all 4, and says it resumed.
    resumed = fit_resumable(_tiny_fit_model(), x, y=y, epochs=4, directory=tmp_path, verbose=0,
                            log=said.append)
    assert len(resumed["loss"]) == 4 and resumed["loss"][:2] == first["loss"]
    assert said == [f"resuming from {tmp_path} after epoch 2 of 4: training epochs 3-4"]
    done = fit_resumable(_tiny_fit_model(), x, y=y, epochs=4, directory=tmp_path, verbose=0,
                         log=said.append)
    assert done == resumed  # nothing left to train: the history, not {}
    assert said[-1].endswith("after epoch 4 of 4: nothing left to train")
    fewer = fit_resumable(_tiny_fit_model(), x, y=y, epochs=3, directory=tmp_path, verbose=0,
                          log=said.append)
    assert fewer == resumed and "more than epochs=3: nothing to train" in said[-1]


def test_fit_resumable_keeps_a_vector_metric_and_checkpoints(tmp_path):
    import numpy as np

    from tfkit.backend import keras
    from tfkit.training import fit_resumable

    x, y = np.ones((8, 3), np.float32), np.zeros(8, np.int64)
    model = _tiny_fit_model()
    f1 = keras.metrics.F1Score(average=None)  # one value per class: was a TypeError
    model.compile("adam", "mse", metrics=[f1])  # before any checkpoint was written
    out = fit_resumable(model, x, y=np.eye(2, dtype=np.float32)[y], epochs=1,
                        directory=tmp_path, verbose=0)
    assert len(out["f1_score"]) == 1 and len(out["f1_score"][0]) == 2
    assert (tmp_path / "epoch.json").exists()


def test_fit_resumable_resumes_from_the_checkpoint_even_if_epoch_json_lags(tmp_path):
    import json

    import numpy as np

    from tfkit.training import ResumableFit, fit_resumable

    x, y = np.ones((8, 3), np.float32), np.zeros(8, np.int64)
    fit_resumable(_tiny_fit_model(), x, y=y, epochs=3, directory=tmp_path, verbose=0)
    # Killed between saving checkpoint 3 and writing epoch.json: it still says 2.
    state = json.loads((tmp_path / "epoch.json").read_text())
    state["epoch"] = 2
    (tmp_path / "epoch.json").write_text(json.dumps(state))
    assert ResumableFit(tmp_path).restore(_tiny_fit_model()) == 3


def test_a_file_given_as_the_run_directory_is_a_clear_error(tmp_path, capsys):
    from tfkit.cli import main

    (tmp_path / "notes.txt").write_text("mine")
    assert main(["run", "robustness", "--out", str(tmp_path / "notes.txt")]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_resumed_fit_sees_the_uninterrupted_shuffle_order(tmp_path):
    import numpy as np

    from tfkit.backend import keras, set_seed, tf
    from tfkit.training import fit_resumable

    def data():  # reshuffled each epoch, as ReST's fine-tuning data
        x = np.arange(16, dtype=np.float32).reshape(16, 1) / 16
        y = (np.arange(16) % 3).astype(np.float32).reshape(16, 1)
        return (tf.data.Dataset.from_tensor_slices((x, y))
                .shuffle(16, seed=0, reshuffle_each_iteration=True).batch(2))

    def model():
        set_seed(0)
        m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        m.compile(keras.optimizers.SGD(0.5), "mse")
        return m

    whole = model()
    fit_resumable(whole, data(), epochs=3, directory=tmp_path / "whole", verbose=0)
    fit_resumable(model(), data(), epochs=1, directory=tmp_path / "resumed", verbose=0)
    resumed = model()  # a new process after a Ctrl-C: epochs 2 and 3 still to train
    fit_resumable(resumed, data(), epochs=3, directory=tmp_path / "resumed", verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # was: epoch 2 trained in epoch 1's order


def test_resuming_with_a_model_of_other_shapes_is_a_clear_error(tmp_path):
    import numpy as np
    import pytest

    from tfkit.backend import keras
    from tfkit.errors import TfkitError
    from tfkit.training import fit_resumable

    x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    fit_resumable(_tiny_fit_model(), x, y=y, epochs=1, directory=tmp_path, verbose=0)
    wider = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    wider.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(TfkitError, match=f"does not fit this model.*delete {tmp_path}"):
        fit_resumable(wider, x, y=y, epochs=2, directory=tmp_path, verbose=0)


def _seeded_model():
    from tfkit.backend import keras

    keras.utils.set_random_seed(0)
    return _tiny_fit_model()


_X = np.linspace(0, 1, 24, dtype=np.float32).reshape(8, 3)
_Y = np.array([0, 1] * 4)


def _fit(directory, epochs=5, **kwargs):
    from tfkit.training import fit_resumable

    model = _seeded_model()
    history = fit_resumable(model, _X, y=_Y, epochs=epochs, directory=directory, verbose=0,
                            validation_data=(_X, _Y), validation_freq=2, **kwargs)
    return model, history


def _assert_same_fit(a, b):
    (model_a, hist_a), (model_b, hist_b) = a, b
    assert hist_a.keys() == hist_b.keys()
    for key in hist_a:
        np.testing.assert_allclose(hist_a[key], hist_b[key], rtol=1e-6, err_msg=key)
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)


@contextlib.contextmanager
def _killed_at_call(monkeypatch, target, name, n):
    """Makes the `n`-th call of `target.name` raise KeyboardInterrupt (a Ctrl-C inside it)."""
    import pytest

    original, calls = getattr(target, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    with pytest.raises(KeyboardInterrupt):
        yield
    monkeypatch.setattr(target, name, original)


def test_a_fit_killed_while_writing_its_epoch_3_state_resumes_like_a_straight_fit(
        tmp_path, monkeypatch):
    from tfkit import training
    from tfkit.backend import tf

    straight = _fit(tmp_path / "straight")
    # Ctrl-C while epoch 3's resume state is written: in its epoch.json, then in its checkpoint
    for i, (target, name) in enumerate([(training, "atomic_write_text"),
                                        (tf.train.CheckpointManager, "save")]):
        with _killed_at_call(monkeypatch, target, name, 3):
            _fit(tmp_path / str(i))
        _assert_same_fit(straight, _fit(tmp_path / str(i)))  # was: one epoch's logs missing


def test_a_fit_that_a_callback_stopped_stays_stopped_when_run_again(tmp_path):
    from tfkit.backend import keras

    def stopper():  # never improves by 10: stops after epoch 2, back to epoch 1's weights
        return keras.callbacks.EarlyStopping("loss", min_delta=10, patience=1,
                                             restore_best_weights=True)

    straight = _fit(tmp_path, callbacks=[stopper()])
    assert len(straight[1]["loss"]) == 2
    said = []
    again = _fit(tmp_path, callbacks=[stopper()], log=said.append)  # e.g. a later stage crashed
    _assert_same_fit(straight, again)  # was: trained epochs 3-5 on top of epoch 2's weights
    assert said == [f"{tmp_path} holds a fit that a callback stopped after epoch 2 of 5: "
                    "nothing left to train"]


def test_a_corrupt_stage_record_is_a_clear_error_naming_it(tmp_path):
    import pytest

    from tfkit.errors import TfkitError

    run = RunDir(tmp_path, log=None)
    run.stage("a", lambda: 1)
    record = tmp_path / "stages" / "a.json"
    for text in ('{"stage": "a", "seconds": 1.0, "res', '[1, 2]', '{"stage": "a"}'):
        record.write_text(text)  # truncated by a full disk, or edited by hand
        with pytest.raises(TfkitError, match=f"{record}.*delete it"):  # was a KeyError, ...
            run.stage("a", lambda: 2)
        with pytest.raises(TfkitError, match=f"{record}.*delete it"):
            run.stage_seconds()


def test_a_corrupt_epoch_json_is_a_clear_error_naming_it(tmp_path):
    import pytest

    from tfkit.errors import TfkitError

    _fit(tmp_path, epochs=1)
    (tmp_path / "epoch.json").write_text('{"epoch": 1, "hist')
    with pytest.raises(TfkitError,
                       match=f"{tmp_path / 'epoch.json'} is not valid JSON.*delete {tmp_path}"):
        _fit(tmp_path, epochs=2)


def test_a_resumed_fit_over_an_endless_dataset_continues_its_stream(tmp_path):
    from tfkit.backend import keras, set_seed, tf
    from tfkit.training import fit_resumable

    def data():  # one stream over all epochs (steps_per_epoch): Keras never restarts it
        x = np.arange(12, dtype=np.float32).reshape(12, 1) / 12
        return (tf.data.Dataset.from_tensor_slices((x, x * 2 - 1))
                .shuffle(12, seed=0, reshuffle_each_iteration=True).repeat().batch(2))

    def fit(directory, epochs):
        set_seed(0)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.5), "mse")
        history = fit_resumable(model, data(), epochs=epochs, steps_per_epoch=4,
                                directory=directory, verbose=0)
        return model, history

    straight = fit(tmp_path / "whole", 3)
    fit(tmp_path / "resumed", 1)  # then a Ctrl-C
    _assert_same_fit(straight, fit(tmp_path / "resumed", 3))  # was: epoch 2 saw batches 1-4


def test_a_resumed_fit_keeps_its_early_stopping_and_plateau_state(tmp_path, monkeypatch):
    """EarlyStopping and ReduceLROnPlateau continue their counts, best value and best weights:
    the resumed fit lowers its rate and stops at the epochs the straight one did."""
    from tfkit.backend import keras, tf

    def callbacks():  # never better by 10: the rate halves after epoch 3, stop after epoch 4
        return [keras.callbacks.EarlyStopping("loss", min_delta=10, patience=3,
                                              restore_best_weights=True),
                keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=2, min_delta=10)]

    straight = _fit(tmp_path / "straight", epochs=8, callbacks=callbacks())
    assert len(straight[1]["loss"]) == 4
    np.testing.assert_allclose(straight[1]["lr"], [0.1, 0.1, 0.1, 0.05])  # logged before the cut
    with _killed_at_call(monkeypatch, tf.train.CheckpointManager, "save", 3):  # after epoch 2
        _fit(tmp_path / "resumed", epochs=8, callbacks=callbacks())
    # was: both callbacks started afresh at epoch 3 (6 epochs, other weights)
    _assert_same_fit(straight, _fit(tmp_path / "resumed", epochs=8, callbacks=callbacks()))
