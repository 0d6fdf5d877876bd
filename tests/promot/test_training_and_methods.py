import numpy as np
import pytest

from tests.promot.conftest import tiny_gpt2_preset
from tfkit.backend import tf
from tfkit.promot import (
    PromptedLM,
    TuningConfig,
    answer_loss,
    copy_lm,
    lm_arrays,
    make_optimizer,
    promot,
    promot_multitask,
    sample_episode,
    train_lm,
    tune_prompt,
)
from tfkit.promot.pipeline import load_preset

CFG = TuningConfig(prompt_tokens=4, prompt_steps=3, model_steps=3, batch_size=4)


def _data(tasks, tok, name="entail", count=16, length=16):
    rng = np.random.default_rng(0)
    episodes = [sample_episode(tasks[name], 0, rng) for _ in range(count)]
    return lm_arrays(episodes, tok, length, loss_on="query")


def test_answer_loss_ignores_unweighted_tokens():
    logits = tf.random.normal([1, 3, 5])
    y = tf.constant([[1, 2, 3]])
    a = answer_loss(logits, y, tf.constant([[0.0, 1.0, 0.0]]))
    noisy = tf.concat([tf.random.normal([1, 1, 5]), logits[:, 1:2], tf.random.normal([1, 1, 5])],
                      axis=1)
    np.testing.assert_allclose(a.numpy(), answer_loss(noisy, y, [[0.0, 1.0, 0.0]]).numpy(),
                               rtol=1e-6)


def test_make_optimizer_schedules():
    var = tf.Variable(1.0)
    constant = make_optimizer("adam", 1e-3, 20, schedule="constant")
    cosine = make_optimizer("adam", 1e-3, 20)
    for optimizer in (constant, cosine):
        for _ in range(20):
            optimizer.apply_gradients([(tf.constant(1.0), var)])
    assert abs(float(constant.learning_rate) - 1e-3) < 1e-9
    assert 1e-4 <= float(cosine.learning_rate) < 1.2e-4  # decayed to 10 % at the last step
    with pytest.raises(ValueError, match="schedule"):
        make_optimizer("adam", 1e-3, 20, schedule="linear")


def test_train_lm_resumes_to_the_same_weights(tiny_lm, world_tasks_tokenizer, tmp_path):
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    lm_a = tiny_lm(tok.vocabulary_size)
    lm_b = copy_lm(lm_a)

    def fit(lm, steps, folder):
        return train_lm(lm, lm.trainable_variables, data, steps=steps, batch_size=4,
                        optimizer=make_optimizer("adam", 1e-2, 6), checkpoint_dir=folder,
                        checkpoint_every=1, log_every=1)

    fit(lm_a, 6, tmp_path / "a")
    fit(lm_b, 3, tmp_path / "b")  # interrupted after 3 steps ...
    history = fit(lm_b, 6, tmp_path / "b")  # ... and resumed
    assert len(history) == 6
    for wa, wb in zip(lm_a.get_weights(), lm_b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-5)


class _CtrlC(dict):
    """Training arrays that raise KeyboardInterrupt when step `after` + 1 draws its batch."""

    def __init__(self, arrays, after):
        super().__init__(arrays)
        self.batches, self.after = 0, after

    def __getitem__(self, key):
        if key == "y":  # read once per step
            self.batches += 1
            if self.batches > self.after:
                raise KeyboardInterrupt
        return super().__getitem__(key)


@pytest.mark.parametrize("interrupt_after", [4, 5])
def test_train_lm_resumed_reports_the_uninterrupted_history(tiny_lm, world_tasks_tokenizer,
                                                            tmp_path, interrupt_after):
    # log every 2 steps, checkpoint every 3: losses logged (and steps run) since the last
    # checkpoint must come back on resume, so the history matches an uninterrupted run's.
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    base = tiny_lm(tok.vocabulary_size)

    def fit(arrays, folder):
        lm = copy_lm(base)  # a fresh process: the model as built, then restored
        return train_lm(lm, lm.trainable_variables, arrays, steps=8, batch_size=4,
                        optimizer=make_optimizer("adam", 1e-2, 8), checkpoint_dir=folder,
                        checkpoint_every=3, log_every=2)

    reference = fit(data, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        fit(_CtrlC(data, interrupt_after), tmp_path / "b")
    resumed = fit(data, tmp_path / "b")
    assert len(resumed) == len(reference) == 4
    np.testing.assert_allclose(resumed, reference, rtol=1e-5)


def test_train_lm_history_survives_an_interrupt_right_after_a_checkpoint(
        tiny_lm, world_tasks_tokenizer, tmp_path, monkeypatch):
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    base = tiny_lm(tok.vocabulary_size)

    def fit(steps):
        lm = copy_lm(base)
        return train_lm(lm, lm.trainable_variables, data, steps=steps, batch_size=4,
                        optimizer=make_optimizer("adam", 1e-2, 6), checkpoint_dir=tmp_path,
                        checkpoint_every=2, log_every=1)

    original = tf.train.CheckpointManager.save

    def save_then_ctrl_c(manager, *args, **kwargs):
        path = original(manager, *args, **kwargs)
        if kwargs.get("checkpoint_number") == 4:
            raise KeyboardInterrupt  # Ctrl-C just after the weights of step 4 were written
        return path

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fit(6)
    monkeypatch.undo()
    assert len(fit(6)) == 6


def test_promot_stage1_freezes_model_stage2_freezes_prompt(tiny_lm, world_tasks_tokenizer,
                                                           tmp_path):
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    lm = tiny_lm(tok.vocabulary_size)
    before = [w.copy() for w in lm.get_weights()]
    prompt = tune_prompt(lm, data, CFG, tmp_path / "s1")
    for a, b in zip(before, lm.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # stage 1 leaves the LM untouched
    tuned = prompt.prompt.numpy().copy()
    prompt2 = promot(lm, data, CFG, tmp_path)  # stage 1 again (same folder layout) + stage 2
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, lm.get_weights(), strict=True))
    # stage 2 does not move the prompt: it equals the stage-1 result of the same run
    np.testing.assert_allclose(prompt2.prompt.numpy(), tuned, atol=1e-6)


def test_multitask_promot_gives_one_prompt_per_task(tiny_lm, world_tasks_tokenizer, tmp_path):
    _, tasks, tok = world_tasks_tokenizer
    lm = tiny_lm(tok.vocabulary_size)
    data = {"entail": _data(tasks, tok), "translate": _data(tasks, tok, "translate")}
    prompts = promot_multitask(lm, data, CFG, tmp_path)
    assert set(prompts) == {"entail", "translate"}
    assert np.abs(prompts["entail"].prompt.numpy() - prompts["translate"].prompt.numpy()).max() > 0


def test_promot_on_a_local_keras_nlp_preset(tmp_path, world_tasks_tokenizer):
    _, tasks, _ = world_tasks_tokenizer
    folder = tmp_path / "preset"
    folder.mkdir()
    backbone, tok = load_preset(tiny_gpt2_preset(folder))
    data = _data(tasks, tok, count=4, length=60)  # character-level BPE: ~40 tokens
    assert data["w"].sum() > 0
    before = [w.copy() for w in backbone.get_weights()]
    prompt = promot(backbone, data, CFG, tmp_path / "run", pad_id=tok.pad_id)
    changed = [np.abs(a - b).max() > 0 for a, b in zip(before, backbone.get_weights(),
                                                          strict=True)]
    assert sum(changed) > len(changed) // 2  # stage 2 tuned the backbone
    logits = PromptedLM(backbone, prompt, pad_id=tok.pad_id)(data["x"][:2])
    assert logits.shape[:2] == data["x"][:2].shape


def test_load_preset_takes_a_path_and_names_a_missing_folder(tmp_path):
    folder = tmp_path / "preset"
    folder.mkdir()
    tiny_gpt2_preset(folder)
    backbone, tok = load_preset(folder)  # a pathlib.Path, not only a str
    assert backbone.name and tok.pad_id == 0
    with pytest.raises(FileNotFoundError, match="no keras-nlp preset.*config.json"):
        load_preset(tmp_path / "missing")  # was: "Unknown preset identifier" + a list
    with pytest.raises(FileNotFoundError, match="no keras-nlp preset.*config.json"):
        load_preset(str(tmp_path))  # a folder without the preset files


def test_train_lm_names_bad_data_and_a_folder_of_another_run(tiny_lm, world_tasks_tokenizer,
                                                              tmp_path):
    _, tasks, tok = world_tasks_tokenizer
    lm = tiny_lm(tok.vocabulary_size, sequence_length=16)

    def fit(model, data, folder, batch_size=4):
        return train_lm(model, model.trainable_variables, data, steps=1, batch_size=batch_size,
                        optimizer=make_optimizer("adam", 1e-3, 1), checkpoint_dir=folder)

    with pytest.raises(ValueError, match="32 tokens.*16 positions"):  # was: a TF gather error
        fit(lm, _data(tasks, tok, length=32), tmp_path / "a")
    with pytest.raises(ValueError, match="no examples"):  # was: numpy's "high <= 0"
        fit(lm, _data(tasks, tok, count=0, length=16), tmp_path / "b")
    with pytest.raises(ValueError, match="'w'"):
        fit(lm, {k: v for k, v in _data(tasks, tok).items() if k != "w"}, tmp_path / "c")
    with pytest.raises(ValueError, match="batch_size"):  # was: silently no training
        fit(lm, _data(tasks, tok), tmp_path / "d", batch_size=0)
    fit(lm, _data(tasks, tok), tmp_path / "e")
    wider = tiny_lm(tok.vocabulary_size + 1, sequence_length=16)
    with pytest.raises(ValueError, match="another model.*checkpoint_dir"):
        fit(wider, _data(tasks, tok), tmp_path / "e")


def test_train_lm_rerun_after_ctrl_c_before_the_first_checkpoint(tiny_lm, world_tasks_tokenizer,
                                                                 tmp_path):
    # In a notebook the interrupted model object keeps its partly trained weights; calling
    # train_lm again must start from the weights it started with, not train on top of them.
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    lm_a = tiny_lm(tok.vocabulary_size)
    lm_b = copy_lm(lm_a)

    def fit(lm, arrays, folder):
        return train_lm(lm, lm.trainable_variables, arrays, steps=4, batch_size=4,
                        optimizer=make_optimizer("adam", 1e-2, 4), checkpoint_dir=folder,
                        checkpoint_every=200, log_every=1)

    reference = fit(lm_a, data, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        fit(lm_b, _CtrlC(data, 2), tmp_path / "b")
    np.testing.assert_allclose(fit(lm_b, data, tmp_path / "b"), reference, rtol=1e-5)
    for wa, wb in zip(lm_a.get_weights(), lm_b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-5)


def test_train_lm_takes_lists_and_a_tf_data_dataset_like_the_arrays(tiny_lm,
                                                                    world_tasks_tokenizer,
                                                                    tmp_path):
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    lm = tiny_lm(tok.vocabulary_size, sequence_length=16)
    start = lm.get_weights()

    def fit(arrays, folder):
        lm.set_weights(start)
        return train_lm(lm, lm.trainable_variables, arrays, steps=2, batch_size=4,
                        optimizer=make_optimizer("adam", 1e-2, 2), checkpoint_dir=folder,
                        log_every=1)

    reference = fit(data, tmp_path / "arrays")
    as_lists = {k: v.tolist() for k, v in data.items()}  # was: numpy's "only integer scalar"
    np.testing.assert_allclose(fit(as_lists, tmp_path / "lists"), reference, rtol=1e-5)
    rows = tf.data.Dataset.from_tensor_slices(data)  # was: "data lacks 'x', 'y', 'w'"
    np.testing.assert_allclose(fit(rows, tmp_path / "rows"), reference, rtol=1e-5)
    np.testing.assert_allclose(fit(rows.batch(5), tmp_path / "batches"), reference, rtol=1e-5)
    with pytest.raises(ValueError, match="infinite"):
        fit(rows.repeat(), tmp_path / "repeated")
    with pytest.raises(ValueError, match="'x', 'y' and 'w'"):
        fit(tf.data.Dataset.from_tensor_slices(data["x"]), tmp_path / "ids_only")


def test_train_lm_names_token_ids_outside_the_vocabulary(tiny_lm, world_tasks_tokenizer,
                                                         tmp_path):
    _, tasks, tok = world_tasks_tokenizer
    data = _data(tasks, tok)
    top = int(max(data["x"].max(), data["y"].max()))
    lm = tiny_lm(top, sequence_length=16)  # the tokenizer of a larger vocabulary
    with pytest.raises(ValueError, match=f"token ids up to {top}.*vocabulary of {top} "):
        train_lm(PromptedLM(lm), lm.trainable_variables, data, steps=1, batch_size=4,
                 optimizer=make_optimizer("adam", 1e-3, 1), checkpoint_dir=tmp_path)


def test_answer_loss_of_float16_logits_does_not_overflow():
    # a "mixed_float16" model's logits: 8000 answer tokens of loss ~12 sum past float16's 65504
    logits = tf.tile(tf.constant([[[0.0, 12.0]]], tf.float16), [1, 8000, 1])
    loss = answer_loss(logits, tf.zeros([1, 8000], tf.int32), tf.ones([1, 8000]))
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), 12.0, rtol=1e-3)


def test_train_lm_scales_the_loss_of_a_float16_model(tmp_path):
    """Under `mixed_float16` a small gradient (here ~1e-9 at the embedding) rounds to zero in
    float16; with loss scaling, as `model.fit` does, it trains the variable."""
    from tfkit.backend import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((8,), dtype="int32"),
                                  keras.layers.Embedding(6, 4),
                                  keras.layers.Rescaling(1e-6),  # tiny gradients below it
                                  keras.layers.Dense(6)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    table = model.layers[0].embeddings
    before = table.numpy().copy()
    rng = np.random.default_rng(0)
    data = {"x": rng.integers(0, 6, (32, 8)), "y": rng.integers(0, 6, (32, 8)),
            "w": np.ones((32, 8), np.float32)}
    train_lm(model, [table], data, steps=1, batch_size=32,
             optimizer=make_optimizer("adam", 1e-3, 1, schedule="constant"),
             checkpoint_dir=tmp_path)
    assert np.abs(table.numpy() - before).max() > 0  # was: unchanged (a zero gradient)


_TWO_REPLICAS = """
import json, tempfile
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
from tfkit.backend import set_seed
from tfkit.models import DecoderLM
from tfkit.promot import (TuningConfig, WordTokenizer, lm_arrays, make_tasks, make_world, promot,
                          sample_episode)
world = make_world(0)
tasks, tok = make_tasks(world), WordTokenizer(world.vocabulary())
rng = np.random.default_rng(0)
data = lm_arrays([sample_episode(tasks["entail"], 0, rng) for _ in range(16)], tok, 16,
                 loss_on="query")
cfg = TuningConfig(prompt_tokens=4, prompt_steps=3, model_steps=3, batch_size=8)
def build():
    set_seed(0)
    return DecoderLM(vocabulary_size=tok.vocabulary_size, sequence_length=32, num_layers=1,
                     hidden_dim=16, num_heads=2, intermediate_dim=32)
def trained(lm):
    prompt = promot(lm, data, cfg, tempfile.mkdtemp())
    return [prompt.prompt.numpy().tolist()] + [w.tolist() for w in lm.get_weights()]
out = {"one": trained(build())}
with two.scope():
    lm = build()
    out["two"] = trained(lm)
out["variable"] = type(lm.weights[0]).__name__
lm = build()  # outside the scope
with two.scope():
    try:
        trained(lm)
        out["outside"] = "no error"
    except ValueError as e:
        out["outside"] = str(e)
print("RESULT", json.dumps(out))
"""


def test_promot_under_two_replicas_equals_one_replica(tmp_path):
    # a user's MirroredStrategy scope (two logical CPUs, so a fresh process): each step's batch
    # is split across the replicas, giving the same prompt and weights as one replica
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTEROP_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", _TWO_REPLICAS], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT "):])
    assert out["variable"] == "MirroredVariable"
    for a, b in zip(out["two"], out["one"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert "created outside its scope" in out["outside"]
