"""FedMD on a user's own models and data: plausible mistakes give clear errors, not deep TF
tracebacks or silently wrong numbers."""

from __future__ import annotations

import numpy as np
import pytest

from tfkit.backend import keras, tf
from tfkit.config import ConfigError
from tfkit.errors import TfkitError
from tfkit.federated import runtime
from tfkit.federated.fedmd import (
    Party,
    build_fedmd_process,
    client_arrays,
    make_client_data,
    run_program,
)

RNG = np.random.default_rng(0)
X = RNG.random((10, 16, 16), np.float32)
Y = np.arange(10) % 5


def _mlp(classes: int = 10, activation: str | None = None, with_input: bool = True):
    head = [keras.Input((16, 16))] if with_input else []
    return keras.Sequential(head + [keras.layers.Flatten(),
                                    keras.layers.Dense(classes, activation=activation)])


def test_party_rejects_models_it_cannot_use():
    with pytest.raises(ValueError, match="softmax"):
        Party("p", _mlp(activation="softmax"), X, Y)  # would average probabilities silently
    with pytest.raises(ValueError, match="softmax"):  # tf.nn.softmax is named softmax_v2
        Party("p", _mlp(activation=tf.nn.softmax), X, Y)
    nested = keras.Sequential([keras.Input((16, 16)), keras.layers.Flatten(),
                               keras.Sequential([keras.layers.Dense(10),
                                                 keras.layers.Softmax()])])
    with pytest.raises(ValueError, match="softmax"):  # a head that is a model of its own
        Party("p", nested, X, Y)
    with pytest.raises(ValueError, match="no fixed input shape.*wrap it"):
        Party("p", _mlp(with_input=False), X, Y)

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.body = _mlp(with_input=False)

        def call(self, x):
            return self.body(x)

    net = Net()
    net.build((None, 16, 16))  # built, but subclassed: no input_shape to check against
    with pytest.raises(ValueError, match="no fixed input shape.*wrap it"):
        Party("p", net, X, Y)
    inputs = keras.Input((16, 16))  # the advice in the message works
    assert Party("p", keras.Model(inputs, net(inputs)), X, Y).num_classes == 10
    built = _mlp(with_input=False)
    built.build((None, 16, 16))  # a Sequential built with a shape is a graph network
    assert Party("p", built, X, Y).num_classes == 10


def test_party_checks_labels_shapes_and_empty_data():
    party = Party("p", _mlp(5), X, Y)
    with pytest.raises(ValueError, match=r"labels 0\.\.9.*outputs 5 class scores"):
        party.fit_labels(X, np.arange(10), epochs=1, batch_size=4)  # was InvalidArgumentError
    with pytest.raises(ValueError, match=r"labels 0\.\.9.*outputs 5"):
        party.accuracy(X, np.arange(10))
    with pytest.raises(ValueError, match="no private examples"):
        Party("p", _mlp(), X[:0], Y[:0])  # was "range() arg 3 must not be zero" when training
    with pytest.raises(ValueError, match="one integer label per image"):
        Party("p", _mlp(), X, Y[:5])  # was an IndexError while training
    with pytest.raises(ValueError, match="one integer label per image"):
        Party("p", _mlp(), X, np.eye(10)[Y])  # one-hot labels
    with pytest.raises(ValueError, match=r"shape \(10, 8, 8\).*\(N, 16, 16\)"):
        Party("p", _mlp(), RNG.random((10, 8, 8)), Y)
    with pytest.raises(ValueError, match="consensus has shape"):
        party.digest(X, np.zeros((10, 3), np.float32))
    assert party.logits(X[:0]).shape == (0, 5)


def test_empty_client_gives_empty_arrays():
    data = make_client_data([(X, Y), (X[:0], Y[:0])])
    x, y = client_arrays(data, "party1")  # was "need at least one array to concatenate"
    assert x.shape == (0, 16, 16) and y.shape == (0,) and y.dtype == np.int64


def test_process_checks_public_and_test_data_up_front():
    parties = [Party("p", _mlp(), X, Y)]
    with pytest.raises(ValueError, match="public_x have shape"):  # was: every party failing
        build_fedmd_process(parties, RNG.random((20, 8, 8)))        # round 1, logged
    with pytest.raises(ValueError, match="test_data"):
        build_fedmd_process(parties, X, test_data=(X, np.full(10, 12)))
    with pytest.raises(ValueError, match="party_weights"):  # was a NaN consensus
        build_fedmd_process(parties, X, party_weights=[float("nan")])


class _Process:
    """A FedMD-like process over parties with plain numpy weights (no TFF context needed)."""

    def __init__(self, *sizes: int):
        self.parties = [_WeightsParty(n) for n in sizes]

    def initialize(self):
        return {"round": np.int32(0)}

    def next(self, state):
        for p in self.parties:
            p.weights += 1.0
        metrics = {"accuracy": np.array([0.5], np.float32), "seconds": 0.0, "participated": [1]}
        return {"round": np.int32(state["round"] + 1)}, metrics


class _WeightsParty:
    def __init__(self, n: int):
        self.weights = np.zeros(n, np.float32)

    def get_state(self):
        return {"model": [self.weights.copy()]}

    def set_state(self, state):
        self.weights = np.asarray(state["model"][0]).copy()


@pytest.mark.parametrize("sizes", [(3,), (2, 2)], ids=["other-weight-shape", "more-parties"])
def test_run_program_refuses_the_state_of_another_federation(tmp_path, sizes):
    run_program(_Process(2), 2, tmp_path, log=lambda m: None)
    other = _Process(*sizes)
    with pytest.raises(ConfigError, match="another federation"):
        run_program(other, 3, tmp_path, log=lambda m: None)
    assert all(not p.weights.any() for p in other.parties)  # nothing half-restored
    resumed = run_program(_Process(2), 3, tmp_path, log=lambda m: None)  # the same: resumes
    assert [r["round"] for r in resumed] == [1, 2, 3]


def test_unreachable_or_malformed_workers_fail_clearly():
    from tfkit.experiments import fedmd

    with pytest.raises(runtime.WorkerNotReadyError, match="tfkit fedmd worker") as e:
        runtime.wait_for_workers([f"127.0.0.1:{runtime.free_port()}"], timeout=1.0)
    assert isinstance(e.value, TfkitError)  # the CLI prints it as one line
    with pytest.raises(ValueError, match="host:port"):
        runtime.wait_for_workers(["10.0.0.5"])
    with pytest.raises(ConfigError, match="host:port"):  # before hours of transfer learning
        fedmd.EXPERIMENT.config("quick", ["workers=10.0.0.5,10.0.0.6"])
    assert fedmd.EXPERIMENT.config("quick", ["workers=a:1, b:2"]).worker_addresses == \
        ["a:1", "b:2"]
    with pytest.raises(ConfigError, match="rounds and alignment_size must be >= 1"):
        fedmd.EXPERIMENT.config("quick", ["rounds=0"])  # was an IndexError after training


def test_unanswered_workers_stop_the_run_before_transfer_learning(tmp_path, monkeypatch):
    from tfkit.experiments import fedmd, run_experiment

    calls = []

    def no_worker(addresses, timeout=60.0):
        calls.append(list(addresses))
        raise runtime.WorkerNotReadyError("no TFF worker answered")

    monkeypatch.setattr(runtime, "wait_for_workers", no_worker)
    config = fedmd.EXPERIMENT.config("demo", ["workers=127.0.0.1:9"])
    with pytest.raises(runtime.WorkerNotReadyError):  # was: after transfer and upper bound
        run_experiment(fedmd.EXPERIMENT, config, tmp_path, log=None)
    assert calls == [["127.0.0.1:9"]]
    assert not list(tmp_path.glob("stages/transfer*"))
