"""FedMD: paper CNNs, the TFF process (local and over gRPC workers), faults, resume, demo.

One module so that TensorFlow Federated is imported once (~20 s).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.helpers import run_model_saving_test
from tfkit.backend import set_seed
from tfkit.config import ConfigError
from tfkit.errors import TfkitError
from tfkit.federated import runtime
from tfkit.federated.fedmd import (
    PAPER_CNNS,
    FedMDCNN,
    Party,
    WorkerError,
    alignment_indices,
    build_fedmd_process,
    client_arrays,
    digits_split,
    paper_cnn,
    paper_cnns,
    run_program,
)
from tfkit.federated.fedmd.stages import build_consensus_computation

ALIGNMENT = 200  # alignment samples per round in these tests


def test_paper_cnns_shapes_and_serialization():
    assert len(PAPER_CNNS) == 10
    assert PAPER_CNNS[2] == ((128, 512), 0.2) and PAPER_CNNS[9] == ((128, 128, 192), 0.3)
    x = np.random.default_rng(0).random((2, 28, 28)).astype("float32")
    two, three = paper_cnn(0, width=0.05), paper_cnn(5, width=0.05)
    assert two(x).shape == (2, 16) and three(x).shape == (2, 16)
    # 2-layer: 28 -> 28 (same) -> 28 (pool s1) -> 13 (3x3 s2); 3-layer: 28 -> 14 -> 7 -> 3.
    assert two.layers[-2].output_shape[-1] == 13 * 13 * two.filters[1]
    assert three.layers[-2].output_shape[-1] == 3 * 3 * three.filters[2]
    assert two.layers[-1].use_bias is False and two.losses  # dense without bias, L2
    cfg = three.get_config()
    assert FedMDCNN.from_config(cfg).count_params() == three.count_params()
    run_model_saving_test(three, x)
    with pytest.raises(ValueError, match="2 or 3 entries"):
        FedMDCNN((8,), 0.1, num_classes=4)


def test_alignment_subsets_are_fresh_and_shared():
    a1, a1_again, a2 = (alignment_indices(1000, 100, 0, r) for r in (1, 1, 2))
    np.testing.assert_array_equal(a1, a1_again)
    assert len(np.unique(a1)) == 100 and not np.array_equal(a1, a2)


@pytest.fixture(scope="module")
def scenario():
    return digits_split(num_parties=3, samples_per_class=3, seed=0)


@pytest.mark.parametrize("mode", ["batch", "moving"])
def test_digest_batch_norm_modes(mode):
    """"moving" digests with the statistics that produced the logits: at the party's own
    logits the MAE is zero and the moving statistics stay; "batch" (Keras fit) changes both."""
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 16, 16), dtype=np.float32), rng.integers(0, 5, 40)
    model = FedMDCNN((4, 6), 0.0, num_classes=5, input_shape=(16, 16), bn_momentum=0.5)
    party = Party("p", model, x, y, private_batch_size=8, digest_batch_norm=mode)
    party.train_private(2)  # moving statistics away from their initial values
    stats = [v.numpy().copy() for v in model.non_trainable_variables]
    mae = party.digest(x, party.logits(x))
    kept = all(np.array_equal(a, v.numpy()) for a, v in zip(stats, model.non_trainable_variables,
                                                          strict=True))
    assert (mae < 1e-5 and kept) if mode == "moving" else (mae > 0.01 and not kept)
    assert all(m.trainable for m in model.layers)  # the layers' flags are restored
    with pytest.raises(ValueError, match="digest_batch_norm"):
        Party("p", model, x, y, digest_batch_norm="frozen")


def test_moving_mode_finds_sync_batch_normalization():
    """A user model with `SyncBatchNormalization` (multi-GPU BatchNorm) digests on its moving
    statistics in "moving" mode, as with plain BatchNormalization."""
    from tfkit.backend import keras

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8), dtype=np.float32), rng.integers(0, 3, 40)
    model = keras.Sequential([
        keras.Input((8, 8)), keras.layers.Reshape((8, 8, 1)), keras.layers.Conv2D(4, 3),
        keras.layers.experimental.SyncBatchNormalization(momentum=0.5),
        keras.layers.Flatten(), keras.layers.Dense(3)])
    party = Party("p", model, x, y, private_batch_size=8, digest_batch_norm="moving")
    party.train_private(2)  # moving statistics away from their initial values
    stats = [v.numpy().copy() for v in model.non_trainable_variables]
    assert party.digest(x, party.logits(x)) < 1e-5
    for before, v in zip(stats, model.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(before, v.numpy())


def test_micro_batch_digest_matches_whole_batch_step():
    """With moving BN statistics (and no dropout), accumulating the gradients of micro-batches
    gives the whole batch's update; with batch statistics it is refused."""
    rng = np.random.default_rng(0)
    x, y = rng.random((100, 16, 16), dtype=np.float32), rng.integers(0, 5, 100)
    target = rng.normal(size=(100, 5)).astype(np.float32)
    weights, maes = [], []
    for micro in (None, 7):  # 7 divides neither the batch (32) nor the last one (4)
        set_seed(0)
        model = FedMDCNN((4, 6), 0.0, num_classes=5, input_shape=(16, 16), bn_momentum=0.5)
        party = Party("p", model, x, y, digest_batch_size=32, digest_batch_norm="moving",
                      digest_micro_batch_size=micro)
        party.train_private(1)  # moving statistics away from their initial values
        before = model.get_weights()
        maes.append(party.digest(x, target, epochs=2))  # 8 Adam steps
        weights.append(model.get_weights())
        assert max(np.abs(a - b).max() for a, b in zip(before, weights[-1], strict=True)) > 1e-3
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert maes[0] == pytest.approx(maes[1], abs=1e-5)
    with pytest.raises(ValueError, match="digest_micro_batch_size needs"):
        Party("p", model, x, y, digest_micro_batch_size=8)  # "batch" statistics


def _parties(scenario, flaky: int | None = None, flaky_cls: type | None = None,
             **party_kwargs):
    """Three tiny heterogeneous parties, pretrained for one epoch on the public digits; party
    `flaky` is a `flaky_cls` (default `_FlakyParty`)."""
    set_seed(0)
    parties = []
    models = paper_cnns(3, 10, scenario.input_shape, 0.05)
    for i, (cid, model) in enumerate(zip(scenario.party_ids, models, strict=True)):
        x, y = client_arrays(scenario.private, cid)
        cls = (flaky_cls or _FlakyParty) if i == flaky else Party
        party = cls(cid, model, x, y, private_batch_size=5, seed=i, **party_kwargs)
        party.fit_labels(scenario.public_x[:300], scenario.public_y[:300], 1, 64)
        party.train_private(3)
        party.logits(scenario.test_x[:2])  # traces the step now, not under a deadline
        parties.append(party)
    return parties


def _process(scenario, parties, **kwargs):
    return build_fedmd_process(parties, scenario.public_x, alignment_size=ALIGNMENT,
                               revisit_epochs=1,
                               test_data=(scenario.test_x, scenario.test_y), **kwargs)


class _CountingProcess:
    """A stand-in FedMD process (no TFF context needed): `next` counts rounds."""

    def __init__(self):
        self.parties = [_StateParty()]

    def initialize(self):
        return {"round": np.int32(0)}

    def next(self, state):
        self.parties[0].weights += 1.0
        metrics = {"accuracy": np.array([0.5], np.float32), "seconds": 0.0, "participated": [1]}
        return {"round": np.int32(state["round"] + 1)}, metrics


class _StateParty:
    def __init__(self):
        self.weights = np.zeros(2, np.float32)

    def get_state(self):
        return {"model": [self.weights.copy()]}

    def set_state(self, state):
        self.weights = np.asarray(state["model"][0]).copy()


def test_run_program_refuses_fewer_rounds_than_saved(tmp_path):
    assert len(run_program(_CountingProcess(), 3, tmp_path, log=lambda m: None)) == 3
    process = _CountingProcess()
    resumed = run_program(process, 4, tmp_path, log=lambda m: None)  # resumes: 1 more round
    assert [r["round"] for r in resumed] == [1, 2, 3, 4] and process.parties[0].weights[0] == 4
    with pytest.raises(ConfigError, match="round 4, more than rounds=2"):
        run_program(_CountingProcess(), 2, tmp_path, log=lambda m: None)


def test_consensus_computation_weighted_mean_and_broadcast():
    comp = build_consensus_computation(4, 3)
    assert str(comp.type_signature) == ("(<logits={float32[4,3]}@CLIENTS,weights={float32}"
                                        "@CLIENTS> -> float32[4,3]@CLIENTS)")
    logits = [np.full((4, 3), v, np.float32) for v in (1.0, 2.0, 6.0)]
    with runtime.local_context():
        out = np.asarray(comp(logits, [1.0, 1.0, 2.0]))
    np.testing.assert_allclose(out, np.full((4, 3), 3.75))


def test_simulation_and_two_workers_agree_and_resume(scenario, tmp_path):
    logits = [np.random.default_rng(i).normal(size=(200, 10)).astype(np.float32)
              for i in range(3)]
    consensus = build_consensus_computation(200, 10)
    parties = _parties(scenario)
    process = _process(scenario, parties)
    assert "metrics=<accuracy=float32[3]" in str(process.next.type_signature)
    with runtime.local_context():
        local = run_program(process, 2, tmp_path / "local", log=lambda m: None)
        local_consensus = np.asarray(consensus(logits, [1.0, 2.0, 3.0]))
    assert [r["round"] for r in local] == [1, 2]
    assert all(r["participated"] == [1, 1, 1] for r in local)
    assert local[0]["bytes_up"] == 3 * 200 * 10 * 4 == local[0]["bytes_down"]
    assert local[0]["fedavg_bytes_up"] > local[0]["bytes_up"]

    workers = [runtime.start_worker(), runtime.start_worker()]
    try:
        parties = _parties(scenario)
        process = _process(scenario, parties)
        with runtime.remote_context([w.address for w in workers]):
            remote_consensus = np.asarray(consensus(logits, [1.0, 2.0, 3.0]))
            # one round, then a "crash": a new program on the same state directory resumes
            first = run_program(process, 1, tmp_path / "remote", log=lambda m: None)
            resumed_parties = _parties(scenario)  # fresh models: state must come from disk
            logs: list[str] = []
            both = run_program(_process(scenario, resumed_parties), 2, tmp_path / "remote",
                               log=logs.append)
    finally:
        for w in workers:
            w.stop()
    # The federated stage is bitwise identical on one local worker and on two remote ones.
    np.testing.assert_array_equal(remote_consensus, local_consensus)
    np.testing.assert_allclose(local_consensus, np.average(logits, axis=0, weights=[1, 2, 3]),
                               atol=1e-6)
    assert any("resumed from the checkpoint of round 1" in m for m in logs)
    assert both[0] == first[0] and [r["round"] for r in both] == [1, 2]
    # Party-side training on CPU is not bitwise reproducible across runs (multi-threaded
    # kernels) unless tf.config.experimental.enable_op_determinism() is on; a few test
    # examples may flip.
    for remote_round, local_round in zip(both, local, strict=True):
        np.testing.assert_allclose(remote_round["accuracy"], local_round["accuracy"], atol=0.05)


def test_parallel_and_serial_parties_give_identical_results(scenario):
    """Parties run at once in threads give bitwise the serial run's weights and accuracies
    (each party's shuffling and dropout streams are its own), micro-batched digest included."""
    runs = []
    for parallel in (1, 3, 1):  # the second serial run: serial is reproducible at all
        parties = _parties(scenario, digest_batch_norm="moving", digest_micro_batch_size=16)
        process = _process(scenario, parties, max_parallel_parties=parallel)
        with runtime.local_context():
            state = process.initialize()
            accuracy = []
            for _ in range(2):
                state, metrics = process.next(state)
                accuracy.append(np.asarray(metrics["accuracy"]))
        runs.append((accuracy, [w for p in parties for w in p.model.get_weights()]))
    for accuracy, weights in runs[1:]:
        np.testing.assert_array_equal(accuracy, runs[0][0])
        for a, b in zip(weights, runs[0][1], strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="max_parallel_parties"):
        _process(scenario, parties, max_parallel_parties=0)


class _FlakyParty(Party):
    """Raises in round 1's communicate stage and is late in round 2's."""

    rounds_seen = 0

    def logits(self, x):
        if len(x) == ALIGNMENT:  # the communicate stage (evaluation uses the test set)
            self.rounds_seen += 1
            if self.rounds_seen == 1:
                raise RuntimeError("disk full")
            if self.rounds_seen == 2:
                time.sleep(4.0)
        return super().logits(x)


def test_failing_and_late_parties_are_left_out(scenario, tmp_path):
    parties = _parties(scenario, flaky=1)
    logs: list[str] = []
    process = _process(scenario, parties, deadline_s=3.0, log=logs.append)
    with runtime.local_context():
        history = run_program(process, 3, tmp_path, log=logs.append)
    assert [r["participated"] for r in history] == [[1, 0, 1], [1, 0, 1], [1, 1, 1]]
    assert history[0]["bytes_up"] == 2 * 200 * 10 * 4
    assert any("party1 failed" in m and "disk full" in m for m in logs)
    assert any("deadline" in m for m in logs)


class _HangingParty(Party):
    """Does not answer its first communicate call until the test sets `release` (40 s at most,
    so that a regression fails the test instead of hanging it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.calls = 0

    def logits(self, x):
        if len(x) == ALIGNMENT:  # the communicate stage (evaluation uses the test set)
            self.calls += 1
            if self.calls == 1:
                self.release.wait(40)
        return super().logits(x)


@pytest.mark.parametrize("max_parallel", [1, 2])
def test_party_that_never_answers_does_not_hold_the_round(scenario, max_parallel):
    parties = _parties(scenario, flaky=1, flaky_cls=_HangingParty)
    hanging = parties[1]
    logs: list[str] = []
    process = _process(scenario, parties, deadline_s=3.0, log=logs.append,
                       max_parallel_parties=max_parallel)
    with runtime.local_context():
        state, first = process.next(process.initialize())
        state, second = process.next(state)  # its round-1 call is still running
        hanging.release.set()
        for thread in threading.enumerate():  # its call ends; it may take part again
            if thread.name == f"tfkit-fedmd-{hanging.name}":
                thread.join(30)
        state, third = process.next(state)
    assert first["seconds"] < 20  # the round did not wait for the silent party
    assert [list(m["participated"]) for m in (first, second, third)] == [
        [1, 0, 1], [1, 0, 1], [1, 1, 1]]
    assert hanging.calls == 2  # not asked again while its first call was running
    assert any("party1 gave no answer within the deadline" in m for m in logs)
    assert any("party1 is still busy" in m for m in logs)


def test_every_party_failing_and_dead_worker_give_clear_errors(scenario, tmp_path):
    parties = _parties(scenario)
    process = _process(scenario, parties, deadline_s=1e-9, log=lambda m: None)
    with runtime.local_context(), pytest.raises(TfkitError, match="every party failed"):
        process.next(process.initialize())
    worker = runtime.start_worker()
    process = _process(scenario, parties, aggregate_timeout_s=10, log=lambda m: None)
    with runtime.remote_context([worker.address]):
        state = process.initialize()
        worker.process.kill()
        worker.process.wait()
        with pytest.raises(WorkerError, match="resume"):
            process.next(state)
    worker.stop()


def test_demo_preset_end_to_end_and_resume(tmp_path, monkeypatch):
    """The demo preset, run as 3 rounds and then continued to its 5 ("train 2 more rounds"),
    then re-run: every stage is reused. Fewer rounds than finished are refused; a folder made
    before the rounds stage was renamed is reused without running any round."""
    import dataclasses
    import json

    from tfkit.config import ConfigError
    from tfkit.experiments import fedmd, run_experiment

    config = fedmd.EXPERIMENT.config("demo")
    first = run_experiment(fedmd.EXPERIMENT, dataclasses.replace(config, rounds=3), tmp_path,
                           log=None)
    assert [r["round"] for r in first["rounds"]] == [1, 2, 3]
    logs: list[str] = []
    results = run_experiment(fedmd.EXPERIMENT, config, tmp_path, log=logs.append)
    assert any("continuing with rounds 3 -> 5" in m for m in logs)
    assert sum("done earlier" in m for m in logs) == 2  # transfer and upper bound reused
    assert any("resumed from the checkpoint of round 3" in m for m in logs)
    assert not any("round 2:" in m for m in logs)  # finished rounds are not trained again
    for key in ("rounds", "round0", "upper_bound", "mean_gain", "gap_to_upper_bound"):
        assert key in results
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3, 4, 5]
    assert results["rounds"][:3] == first["rounds"]
    assert results["final"] == results["rounds"][-1]["accuracy"] != first["final"]
    assert set(results["rounds"][0]) >= {"round", "accuracy", "bytes_up", "bytes_down",
                                         "seconds"}
    assert len(results["round0"]) == len(results["upper_bound"]) == config.num_parties
    assert (tmp_path / "report.md").exists() and (tmp_path / "accuracy.png").exists()
    logs.clear()  # parties at once give the same numbers: that field may change on a re-run
    again = run_experiment(fedmd.EXPERIMENT, dataclasses.replace(config, max_parallel_parties=2),
                           tmp_path, log=logs.append)
    assert sum("done earlier" in m for m in logs) == 3
    assert again["rounds"] == results["rounds"]
    with pytest.raises(ConfigError, match="seed"):  # other fields still refuse the directory
        run_experiment(fedmd.EXPERIMENT, dataclasses.replace(config, seed=1), tmp_path,
                       log=None)
    with pytest.raises(ConfigError, match="holds 5 finished FedMD rounds, more than rounds=4"):
        run_experiment(fedmd.EXPERIMENT, dataclasses.replace(config, rounds=4), tmp_path,
                       log=None)
    assert json.loads((tmp_path / "config.json").read_text())["rounds"] == 5  # still the folder's

    def no_rounds(*args):
        raise AssertionError("the rounds stage ran again")

    stages = tmp_path / "stages"  # the layout before the rename: one `fedmd` record
    (stages / "fedmd_to_round_5.json").rename(stages / "fedmd.json")
    (stages / "fedmd_to_round_3.json").unlink()
    monkeypatch.setattr(fedmd, "_fedmd", no_rounds)
    logs.clear()
    legacy = run_experiment(fedmd.EXPERIMENT, config, tmp_path, log=logs.append)
    assert any("old name" in m for m in logs)
    assert legacy["rounds"] == results["rounds"] and legacy["final"] == results["final"]
    with pytest.raises(ConfigError, match="holds 5 finished"):
        run_experiment(fedmd.EXPERIMENT, dataclasses.replace(config, rounds=2), tmp_path,
                       log=None)


def test_experiment_config_checks_weights_and_micro_batches():
    from tfkit.config import ConfigError
    from tfkit.experiments import fedmd

    quick = fedmd.EXPERIMENT.config("quick", ["party_weights=1,1,1,1,1,2,2,2,2,2",
                                              "digest_micro_batch_size=16"])
    assert quick.party_weights == (1, 1, 1, 1, 1, 2, 2, 2, 2, 2)
    with pytest.raises(ConfigError, match="party_weights must be 10 positive numbers"):
        fedmd.EXPERIMENT.config("quick", ["party_weights=1,2"])
    with pytest.raises(ConfigError, match="party_weights"):
        fedmd.EXPERIMENT.config("quick", ["party_weights=1,1,1,1,1,1,1,1,1,0"])
    with pytest.raises(ConfigError, match="needs digest_batch_norm=moving"):
        fedmd.EXPERIMENT.config("full", ["digest_micro_batch_size=16"])  # full: "batch"
    with pytest.raises(ConfigError, match="max_parallel_parties"):
        fedmd.EXPERIMENT.config("quick", ["max_parallel_parties=0"])
    assert fedmd.EXPERIMENT.config("quick", ["dropout_bits=8"]).dropout_bits == 8
    with pytest.raises(ConfigError, match="dropout_bits"):
        fedmd.EXPERIMENT.config("quick", ["dropout_bits=4"])


@pytest.mark.parametrize("dropout_bits", [None, 8])
def test_transfer_resumes_public_pretraining_after_its_last_epoch(tmp_path, monkeypatch,
                                                                  dropout_bits):
    """Ctrl-C during a party's public pretraining (minutes per epoch at the full run's width)
    loses only the running epoch: the re-run restores the party's state after the last
    finished epoch and trains the remaining ones, giving the uninterrupted weights (exactly
    with `dropout_bits`, whose mask generators are part of the saved state)."""
    import dataclasses

    from tfkit.experiments import fedmd
    from tfkit.federated.fedmd import Party
    from tfkit.runs import RunDir

    config = dataclasses.replace(fedmd.EXPERIMENT.config("demo"), num_parties=2,
                                 public_epochs=3, private_epochs=1, dropout_bits=dropout_bits)
    data = fedmd._scenario(config)
    fit_labels, public_epochs = Party.fit_labels, []

    def counted(self, x, y, epochs, batch_size, stop_after=None):
        if len(x) == len(data.public_x):
            if stop_after is not None and sum(public_epochs) + epochs > stop_after:
                raise KeyboardInterrupt
            public_epochs.append(epochs)
        return fit_labels(self, x, y, epochs, batch_size)

    def weights(folder):
        return [p.model.get_weights() for p in fedmd._parties(
            config, data, folder / "checkpoints" / "transfer", "public")]

    monkeypatch.setattr(Party, "fit_labels", counted)
    set_seed(config.seed)
    fedmd._transfer(config, data, RunDir(tmp_path / "straight", log=None))
    assert sum(public_epochs) == 2 * 3
    public_epochs.clear()
    monkeypatch.setattr(Party, "fit_labels", lambda *a: counted(*a, stop_after=2))
    set_seed(config.seed)
    with pytest.raises(KeyboardInterrupt):  # in party 0's third public epoch
        fedmd._transfer(config, data, RunDir(tmp_path / "cut", log=None))
    public_epochs.clear()
    monkeypatch.setattr(Party, "fit_labels", counted)
    logs: list[str] = []
    set_seed(config.seed)
    fedmd._transfer(config, data, RunDir(tmp_path / "cut", log=logs.append))
    assert sum(public_epochs) == 1 + 3  # party 0's last epoch, then party 1
    assert any("party" in m and "resumes public pretraining after epoch 2" in m for m in logs)
    # the same batches and optimizer state; Keras' dropout masks differ after a resume, the
    # bit masks' generators are restored
    for a, b in zip(weights(tmp_path / "straight"), weights(tmp_path / "cut"), strict=True):
        for wa, wb in zip(a, b, strict=True):
            np.testing.assert_allclose(wa, wb, atol=5e-3 if dropout_bits is None else 1e-6)
    assert not list((tmp_path / "cut").rglob("*_public_progress.npz"))  # removed when done


def test_transfer_and_upper_bound_give_the_same_numbers_with_parties_at_once(tmp_path,
                                                                           monkeypatch):
    """`max_parallel_parties` trains transfer learning and the pooled upper bound of several
    parties at once; every party's weights and accuracies are those of one at a time."""
    import dataclasses
    import threading

    from tfkit.experiments import fedmd
    from tfkit.runs import RunDir

    fit_labels, threads = Party.fit_labels, set()

    def recorded(self, *args):
        threads.add(threading.current_thread().name.split("_")[0])
        return fit_labels(self, *args)

    monkeypatch.setattr(Party, "fit_labels", recorded)
    results = []
    for k in (1, 3):
        config = dataclasses.replace(fedmd.EXPERIMENT.config("demo"), num_parties=3,
                                     public_epochs=2, private_epochs=2, upper_bound_epochs=2,
                                     max_parallel_parties=k)
        data = fedmd._scenario(config)
        run_dir = RunDir(tmp_path / str(k), log=None)
        set_seed(config.seed)
        transfer = fedmd._transfer(config, data, run_dir)
        bound = fedmd._upper_bound(config, data, run_dir)
        weights = [p.model.get_weights() for p in fedmd._parties(
            config, data, run_dir.checkpoint_dir("transfer"), "transfer")]
        results.append((transfer["round0"], bound, weights))
    assert threads == {"MainThread", "tfkit-fedmd-transfer", "tfkit-fedmd-upper-bound"}
    (round0_a, bound_a, weights_a), (round0_b, bound_b, weights_b) = results
    assert round0_a == round0_b and bound_a == bound_b
    for a, b in zip(weights_a, weights_b, strict=True):
        for wa, wb in zip(a, b, strict=True):
            np.testing.assert_array_equal(wa, wb)


def test_progress_files_written_before_the_whole_state_was_kept_still_resume(tmp_path):
    from tfkit.experiments import fedmd
    from tfkit.federated.fedmd import Party, paper_cnn

    x, y = np.random.default_rng(0).random((8, 28, 28), np.float32), np.arange(8) % 16
    party = Party("p0", paper_cnn(0, width=0.1), x, y, private_batch_size=4)
    party.train_private(1)
    state = party.get_state()
    old = tmp_path / "p0_public_progress.npz"  # the earlier layout: model_0, ..., rng
    np.savez(old, epoch=2, rng=np.array(state["rng"]), **{
        f"{key}_{i}": value for key in ("model", "class_optimizer", "digest_optimizer")
        for i, value in enumerate(state[key])})
    party.train_private(1)  # move away from the saved state
    assert fedmd._load_progress(old, party) == 2
    for a, b in zip(party.model.get_weights(), state["model"], strict=True):
        np.testing.assert_array_equal(a, b)
