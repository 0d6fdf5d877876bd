"""KerasLM / KVCacheSampler edge cases: float16, filler rows, replicas, no room."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfkit.agents import KerasLM, KVCacheSampler, WordTokenizer
from tfkit.backend import keras
from tfkit.errors import TfkitError
from tfkit.models import DecoderLM

WORDS = "hello world foo bar baz Search ( ) = \" query thoughts Terminate"
PROMPTS = ["hello world", "foo", "bar baz query"]  # 3 rows: not a power of two


@pytest.fixture
def tiny():
    tok = WordTokenizer.fit([WORDS])
    return tok, DecoderLM(tok.vocabulary_size, 32, 2, 16, 2, 32)


@pytest.fixture
def mixed_float16():
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def test_left_padded_sampling_is_finite_under_mixed_float16(mixed_float16):
    # Two blocks: the second block's keys/values at pad positions come from the first block's
    # pad rows, whose every key is masked. Also needs TransformerBlock's float16-safe mask
    # (tfkit/layers/transformer_block.py) for the prefill.
    tok = WordTokenizer.fit([WORDS])
    model = DecoderLM(tok.vocabulary_size, 32, 2, 16, 2, 32)
    ids = np.array([[0, 0, 0] + tok.encode("hello world"), tok.encode("foo bar baz hello world")],
                   np.int32)
    _, logprob, _ = KVCacheSampler(model, eos_id=-1, jit_compile=False)(ids, 6, 1.0, seed=1)
    assert np.isfinite(logprob.numpy()).all()
    rows = KerasLM(model, tok, jit_compile=False).generate(["hello", "foo bar baz query"],
                                                           temperature=1.0, max_new_tokens=6,
                                                           seed=1)
    assert all(s.text and np.isfinite(s.logprob) for row in rows for s in row)


def test_filler_rows_do_not_change_the_samples(tiny):
    tok, model = tiny  # jit pads the 3 rows to 4 with a filler row
    texts = [[[s.text for s in row] for row in KerasLM(model, tok, jit_compile=jit).generate(
        PROMPTS, temperature=1.0, max_new_tokens=6, seed=4)] for jit in (False, True)]
    assert texts[0] == texts[1]


def test_no_room_for_the_prompt_is_a_clear_error(tiny):
    tok, model = tiny
    with pytest.raises(TfkitError, match="no room"):
        KerasLM(model, tok).generate(["hello"], max_new_tokens=32)
    with pytest.raises(TfkitError, match="does not fit"):
        KerasLM(model, tok).score(["hello"], [" ".join(["foo"] * 31)])


_REPLICAS = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfkit.agents import KerasLM, WordTokenizer
from tfkit.backend import set_seed
from tfkit.models import DecoderLM
set_seed(0)
tok = WordTokenizer.fit([{words!r}])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = DecoderLM(tok.vocabulary_size, 32, 2, 16, 2, 32)
out = {{}}
for name, strat in (("one", None), ("two", strategy)):
    rows = KerasLM(model, tok, strategy=strat, jit_compile=False).generate(
        {prompts!r}, num_samples=2, temperature=1.0, max_new_tokens=6, seed=4)
    out[name] = [[s.text for s in row] for row in rows]
print("RESULT", json.dumps(out))
"""


def test_decoding_split_across_two_replicas_gives_the_unsplit_samples():
    # Logical devices must be set before TensorFlow starts, hence a fresh process.
    script = textwrap.dedent(_REPLICAS.format(words=WORDS, prompts=PROMPTS))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-2000:]
    out = json.loads(lines[0][len("RESULT "):])
    assert out["two"] == out["one"]
    assert len({text for row in out["two"] for text in row}) > 1  # shards draw differently



def test_an_empty_prompt_is_a_clear_error_not_a_wrong_score(tiny):
    tok, model = tiny  # a WordTokenizer puts no start token before a prompt
    lm = KerasLM(model, tok, jit_compile=False)
    with pytest.raises(TfkitError, match="prompt 1 .* empty prompt"):  # was: a wrong score
        lm.score(["hello", ""], ["foo", "foo"])
    with pytest.raises(TfkitError, match="empty prompt"):  # was: a TF slice error
        lm.generate(["  "], max_new_tokens=4)
