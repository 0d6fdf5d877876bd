import numpy as np

from tfkit.backend import tf
from tfkit.models import ViT
from tfkit.sparsity.on_device import compare_on_device, prune_and_finetune, speedup_summary
from tfkit.sparsity.tflite import to_tflite


def test_block_pruning_reaches_target_and_shrinks_tflite():
    model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
                intermediate_dim=64, channels=1, activation="relu", top_k=8)
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 64)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    pruned = prune_and_finetune(model, train, epochs=2, sparsity=0.75)
    block = pruned.get_layer("block_0")
    kernel = block.feed_forward.intermediate_dense.kernel.numpy()  # [16, 64]
    assert abs((kernel == 0).mean() - 0.75) < 0.05
    blocks = (kernel.reshape(4, 4, 64) == 0).all(axis=1) | (kernel.reshape(4, 4, 64) != 0).all(1)
    assert blocks.all()  # whole (4, 1) blocks are zero or kept
    assert np.count_nonzero(model.get_layer("block_0").feed_forward.intermediate_dense
                            .kernel.numpy() == 0) == 0  # the original is untouched
    assert len(to_tflite(pruned, sparse_weights=True)) < len(to_tflite(pruned))
    out = compare_on_device({"dense": model, "both": pruned}, x[:8], y[:8],
                            sparse_weights=("both",), latency_runs=4)
    assert [v["name"] for v in out["variants"]] == ["dense", "dense", "both", "both"]
    assert all(v.get("max_abs_diff", 0) <= 1e-4 for v in out["variants"])
    summary = speedup_summary(out["variants"])
    assert summary["speedup"] == summary["dense_ms"] / summary["sparse_ms"]


def test_prune_neurons_drops_the_laziest_and_keeps_the_function():
    from tfkit.sparsity.on_device import prune_neurons_and_finetune
    from tfkit.sparsity.pruning import neuron_importance, prune_neurons

    model = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
                intermediate_dim=64, channels=1, activation="relu")
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    lazy = rng.permutation(64)[:48]  # these neurons contribute nothing: zero rows of V
    for block in model.blocks:
        ff = block.feed_forward
        ff.intermediate_dense.bias.assign(np.ones(64, "float32"))  # the others always fire
        v = ff.output_dense.kernel.numpy()
        v[lazy] = 0.0
        ff.output_dense.kernel.assign(v)
    scores = neuron_importance(model, x)
    assert all((s[lazy] == 0).all() and (np.delete(s, lazy) > 0).all() for s in scores)
    narrow = prune_neurons(model, 0.25, x)
    assert narrow.get_config()["intermediate_dim"] == 16
    assert narrow.blocks[1].feed_forward.output_dense.kernel.shape == (16, 16)
    np.testing.assert_allclose(narrow(x).numpy(), model(x).numpy(), atol=1e-5)
    assert len(to_tflite(narrow, batch_size=1)) < len(to_tflite(model, batch_size=1))
    train = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 10, 32))).batch(16)
    tuned = prune_neurons_and_finetune(model, train, epochs=1, sparsity=0.5, probe_batches=1)
    assert tuned.get_config()["intermediate_dim"] == 32


def test_prune_and_finetune_counts_the_steps_of_a_dataset_of_unknown_size(monkeypatch):
    # a filtered (or generator) dataset has cardinality UNKNOWN (-2): the schedule must still
    # reach the target at 70 % of the real steps, not at step 1
    import tfkit.sparsity.on_device as on_device

    seen, real = [], on_device.prune_mlps

    def spy(model, sparsity, begin_step, end_step, block_size):
        seen.append(end_step)
        return real(model, sparsity, begin_step=begin_step, end_step=end_step,
                    block_size=block_size)

    monkeypatch.setattr(on_device, "prune_mlps", spy)
    model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=8, num_heads=2,
                intermediate_dim=16, channels=1, activation="relu", num_classes=3)
    x, y = np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 3
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # 5 batches an epoch
    for data in (train, train.filter(lambda a, b: True)):
        prune_and_finetune(model, data, epochs=2, sparsity=0.5)
    assert seen == [7, 7]  # 70 % of 10 steps, with and without a known size
