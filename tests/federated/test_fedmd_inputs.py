"""FedMD on a user's own models and data: plausible mistakes give clear errors, not deep TF
tracebacks or silently wrong numbers."""

from __future__ import annotations

import os
import threading

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


def test_party_rejects_models_that_are_not_one_image_input_to_one_logits_output():
    inputs = keras.Input((16, 16))
    flat = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(10)(flat)
    with pytest.raises(ValueError, match="softmax"):  # a TF-op layer: was accepted
        Party("p", keras.Model(inputs, tf.nn.softmax(logits)), X, Y)
    with pytest.raises(ValueError, match="softmax"):
        Party("p", keras.Model(inputs, keras.layers.Lambda(tf.nn.softmax)(logits)), X, Y)
    other = keras.Input((16, 16))  # was a TypeError from tf.TensorSpec
    two_in = keras.Model([inputs, other], keras.layers.Dense(10)(
        keras.layers.Concatenate()([flat, keras.layers.Flatten()(other)])))
    with pytest.raises(ValueError, match="takes 2 inputs"):
        Party("p", two_in, X, Y)
    with pytest.raises(ValueError, match=r"one \[batch, classes\] tensor"):  # was KeyError: -1
        Party("p", keras.Model(inputs, {"logits": logits}), X, Y)
    with pytest.raises(ValueError, match=r"one \[batch, classes\] tensor"):  # was a TypeError
        Party("p", keras.Model(inputs, [logits, keras.layers.Dense(3)(flat)]), X, Y)
    per_row = keras.Sequential([keras.Input((16, 16)), keras.layers.Dense(10)])  # (N, 16, 10)
    with pytest.raises(ValueError, match=r"outputs shape \(None, 16, 10\).*Flatten"):
        Party("p", per_row, X, Y)  # was an InvalidArgumentError deep in training
    assert Party("p", keras.Model([inputs], logits), X, Y).num_classes == 10  # [input] is fine


def test_party_takes_a_model_that_computes_in_another_float_type():
    model = keras.Sequential([keras.Input((16, 16)), keras.layers.Flatten(),
                              keras.layers.Dense(10, dtype="float64",
                                                 kernel_regularizer="l2")])
    party = Party("p", model, X.astype(np.float64), Y)  # was a float32/float64 TypeError
    assert np.isfinite(party.train_private(1))
    assert party.logits(X).dtype == np.float32
    assert np.isfinite(party.digest(X, party.logits(X)))
    micro = Party("p", model, X.astype(np.float64), Y, digest_batch_norm="moving",
                  digest_micro_batch_size=4)  # was a float64 * float32 TypeError
    assert np.isfinite(micro.digest(X, micro.logits(X)))


def _model_under(policy: str, scale: float = 2.0 ** -23) -> keras.Model:  # exact in float16
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.Sequential([keras.Input((16, 16)), keras.layers.Flatten(),
                                 keras.layers.Dense(8), keras.layers.Rescaling(scale),
                                 keras.layers.Dense(5)])
        rng = np.random.default_rng(0)  # the same weights under either policy
        model.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in model.get_weights()])
        return model
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_party_scales_its_loss_as_keras_fit_does():
    """Under mixed_float16 the backward pass runs in float16, where values below 6e-8 are 0:
    below the Rescaling(2**-23) each image's gradients are ~1e-9, the first layer's (summed over
    images and pixels 0..255) ~8e-7, above Adam's epsilon. `model.fit` scales the loss
    (LossScaleOptimizer); the party did not, and its first layer never moved. Now it moves as
    the float32 model's does; the loss scales are part of the party state."""
    pixels = X * 255  # floats are used as they are
    target = RNG.normal(size=(10, 5)).astype(np.float32)
    moves = {}
    for policy in ("float32", "mixed_float16"):
        party = Party("p", _model_under(policy), pixels, Y)
        first = party.model.get_weights()[0].copy()
        party.train_private(1)
        trained = party.model.get_weights()[0].copy()
        party.digest(pixels, target)
        moves[policy] = [np.median(np.abs(trained - first)),
                         np.median(np.abs(party.model.get_weights()[0] - trained))]
    assert min(moves["float32"]) > 5e-5  # both steps move the first layer
    np.testing.assert_allclose(moves["mixed_float16"], moves["float32"], rtol=0.2)  # were 0, 0
    assert party.loss_scaling and party.model.compute_dtype == "float16"
    state = party.get_state()
    resumed = Party("p", _model_under("mixed_float16"), pixels, Y, digest_batch_norm="moving",
                    digest_micro_batch_size=4)
    resumed.class_optimizer.dynamic_counter.assign(7)
    resumed.set_state(state)
    assert int(resumed.class_optimizer.dynamic_counter) == 1  # one step since the start
    assert float(resumed.digest_optimizer.loss_scale) == float(party.digest_optimizer.loss_scale)
    before = resumed.model.get_weights()[0].copy()
    assert np.isfinite(resumed.digest(pixels, target))  # scaled micro-batch gradients
    assert np.median(np.abs(resumed.model.get_weights()[0] - before)) > 5e-5
    plain = Party("p", _mlp(5), X, Y)
    assert not plain.loss_scaling and "loss_scale" not in plain.get_state()
    with pytest.raises(ValueError, match="loss scale"):
        plain.set_state({**plain.get_state(), "loss_scale": state["loss_scale"]})


def test_party_gives_a_model_that_scales_its_own_pixels_the_pixels():
    """A uint8 Input (given [0, 1] floats, Keras' cast made every pixel 0) or a first
    Rescaling(1/255) (scaled twice) reads 0..255: the party's steps hand it those."""
    pixels = (X * 255).round().astype(np.uint8)
    dense = keras.layers.Dense(10, kernel_initializer="ones")

    def scores(model):
        return Party("p", model, pixels, Y).logits(pixels)

    unit = keras.Sequential([keras.Input((16, 16)), keras.layers.Flatten(), dense])
    want = unit(pixels.astype(np.float32) / 255.0).numpy()
    u8_in = keras.Input((16, 16), dtype="uint8")
    u8 = keras.Model(u8_in, dense(keras.layers.Flatten()(
        keras.layers.Rescaling(1 / 255)(u8_in))))
    rescaling = keras.Sequential([keras.Input((16, 16)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.Flatten(), dense])
    for model in (u8, rescaling):
        np.testing.assert_allclose(scores(model), want, rtol=1e-5)


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
    with pytest.raises(ValueError, match="integer class labels"):  # was truncated to 5
        Party("p", _mlp(), X, Y + 0.5)
    assert Party("p", _mlp(), X, Y.astype(np.float32)).y_private.dtype == np.int64
    assert Party("p", _mlp(), X, Y > 2).y_private.dtype == np.int64  # bool: 2 classes
    with pytest.raises(ValueError, match="party0's labels must be integer"):  # was truncated
        make_client_data([(X, Y + 0.5)])
    with pytest.raises(ValueError, match="dtype int64: give uint8"):  # was used unscaled beside
        Party("p", _mlp(), (X * 255).astype(np.int64), Y)  # scaled uint8 images
    with pytest.raises(ValueError, match="dtype int64"):
        party.logits((X * 255).astype(np.int64))
    with pytest.raises(ValueError, match="consensus has shape"):
        party.digest(X, np.zeros((10, 3), np.float32))
    assert party.logits(X[:0]).shape == (0, 5)


def test_empty_client_gives_empty_arrays():
    data = make_client_data([(X, Y), (X[:0], Y[:0])])
    x, y = client_arrays(data, "party1")  # was "need at least one array to concatenate"
    assert x.shape == (0, 16, 16) and y.shape == (0,) and y.dtype == np.int64


def test_client_arrays_reads_a_users_own_client_data():
    import collections

    import tensorflow_federated as tff

    pairs = tff.simulation.datasets.ClientData.from_clients_and_tf_fn(
        ["a"], lambda cid: tf.data.Dataset.from_tensor_slices((X, Y)))
    x, y = client_arrays(pairs, "a")  # was a TypeError (tuple indices must be integers)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    named = tff.simulation.datasets.TestClientData(
        {"a": collections.OrderedDict(pixels=X, label=Y)})
    with pytest.raises(ValueError, match=r"\['pixels', 'label'\].*x_key"):  # was KeyError: 'x'
        client_arrays(named, "a")
    np.testing.assert_array_equal(client_arrays(named, "a", x_key="pixels", y_key="label")[1], Y)
    with pytest.raises(ValueError, match="party0 has 10 images but 5 labels"):
        make_client_data([(X, Y[:5])])  # was "Dimensions 10 and 5 are not compatible"


def test_process_checks_public_and_test_data_up_front():
    parties = [Party("p", _mlp(), X, Y)]
    with pytest.raises(ValueError, match="public_x have shape"):  # was: every party failing
        build_fedmd_process(parties, RNG.random((20, 8, 8)))        # round 1, logged
    with pytest.raises(ValueError, match="test_data"):
        build_fedmd_process(parties, X, test_data=(X, np.full(10, 12)))
    with pytest.raises(ValueError, match="party_weights"):  # was a NaN consensus
        build_fedmd_process(parties, X, party_weights=[float("nan")])


def test_process_outside_a_tff_context_is_refused_without_starting_a_worker():
    import subprocess

    process = build_fedmd_process([Party("p", _mlp(), X, Y)], X, alignment_size=4)
    before = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True).stdout
    # was: TFF's default context started a worker_binary that outlived the process
    with pytest.raises(runtime.NoContextError, match=r"runtime\.local_context\(\)"):
        process.initialize()
    with pytest.raises(runtime.NoContextError, match="process.next"):
        process.next({"round": np.int32(0)})
    assert subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True).stdout == before
    with runtime.local_context():
        assert int(process.initialize()["round"]) == 0
        errors = []  # another thread does not see this thread's context

        def other_thread():
            try:
                process.initialize()
            except runtime.NoContextError as e:
                errors.append(e)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1 and "in the thread that calls it" in str(errors[0])


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
    def __init__(self, n: int, name: str | None = None):
        self.weights = np.zeros(n, np.float32)
        if name is not None:
            self.name = name

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


def test_run_program_takes_one_release_manager_not_in_a_list(tmp_path):
    import tensorflow_federated as tff

    memory = tff.program.MemoryReleaseManager()
    run_program(_Process(2), 2, tmp_path, memory, log=lambda m: None)  # was: not iterable
    assert sorted(memory.values()) == [1, 2]


def test_run_program_refuses_the_same_architectures_in_another_order(tmp_path):
    def process(*names):
        p = _Process(2, 2)
        p.parties = [_WeightsParty(2, n) for n in names]
        return p

    first = process("alice", "bob")
    first.parties[0].weights -= 5  # alice's state differs from bob's
    run_program(first, 1, tmp_path, log=lambda m: None)
    swapped = process("bob", "alice")
    with pytest.raises(ConfigError, match=r"parties \['alice', 'bob'\].*same order"):
        run_program(swapped, 2, tmp_path, log=lambda m: None)  # was: bob resumed alice's state
    assert all(not p.weights.any() for p in swapped.parties)
    same = process("alice", "bob")
    run_program(same, 2, tmp_path, log=lambda m: None)
    assert same.parties[0].weights[0] == -3 and same.parties[1].weights[0] == 2


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


def test_many_parties_trace_without_retracing_warnings(caplog):
    # TensorFlow keys its retracing warning by code object; ten parties' steps share theirs.
    x = np.random.default_rng(0).random((4, 4, 4), dtype=np.float32)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for i in range(8):
            model = keras.Sequential([keras.Input((4, 4)), keras.layers.Flatten(),
                                      keras.layers.Dense(16)])
            party = Party(f"p{i}", model, x, np.arange(4), private_batch_size=4)
            party.train_private(1)
            party.digest(x, np.zeros((4, 16), np.float32))
            party.logits(x)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
