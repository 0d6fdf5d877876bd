"""KV-cache sampling, scoring, fine-tuning on output tokens, and the LanguageModel adapters."""

import numpy as np
import pytest

from tfkit.agents import KerasLM, KVCacheSampler, WordTokenizer
from tfkit.agents.lm import CallableLM, LanguageModel
from tfkit.agents.rest import ModelSpec, encode_examples, finetune
from tfkit.backend import keras, tf
from tfkit.models import DecoderLM

WORDS = "hello world foo bar baz Search ( ) = \" query thoughts Terminate"


@pytest.fixture
def tiny():
    tok = WordTokenizer.fit([WORDS])
    model = DecoderLM(tok.vocabulary_size, 48, 2, 16, 2, 32)
    return tok, model


def test_tokenizer_round_trip_and_unknown_words():
    tok = WordTokenizer.fit(['Search(query="capital of Brev")'])
    assert tok.decode(tok.encode('Search(query="capital of Brev")')) == \
        'Search ( query = " capital of Brev " )'
    assert tok.decode(tok.encode("Zq")) == "Z q"  # unknown word -> characters
    assert WordTokenizer.from_json(tok.to_json()).vocabulary == tok.vocabulary


@pytest.mark.parametrize("jit_compile", [True, False])
def test_greedy_kv_cache_decoding_matches_full_forward_passes_with_left_padding(tiny,
                                                                               jit_compile):
    tok, model = tiny
    sampler = KVCacheSampler(model, eos_id=-1, jit_compile=jit_compile)
    prompt = tok.encode("hello world foo bar")
    padded = np.array([[0, 0, 0] + prompt, [0] * 3 + prompt], np.int32)
    tokens, logprob, count = sampler(padded, 6, 0.0)
    seq, expected_lp = list(prompt), 0.0
    for _ in range(6):
        logits = model(np.array([seq]))[0, -1].numpy().astype(np.float64)
        nxt = int(logits.argmax())
        expected_lp += logits[nxt] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        seq.append(nxt)
    assert tokens.numpy()[0].tolist() == seq[len(prompt):] == tokens.numpy()[1].tolist()
    np.testing.assert_allclose(logprob.numpy()[0], expected_lp, rtol=1e-4)
    assert count.numpy().tolist() == [6, 6]


def test_sampling_stops_at_eos_and_is_seeded(tiny):
    tok, model = tiny
    lm = KerasLM(model, tok)
    a = lm.generate(["hello world", "foo"], num_samples=3, temperature=1.0, max_new_tokens=5,
                    seed=3)
    b = lm.generate(["hello world", "foo"], num_samples=3, temperature=1.0, max_new_tokens=5,
                    seed=3)
    assert [[s.text for s in row] for row in a] == [[s.text for s in row] for row in b]
    assert len(a) == 2 and all(len(row) == 3 for row in a)
    assert isinstance(lm, LanguageModel)
    ids = np.array([tok.encode("hello world")], np.int32)
    eos = int(tf.argmax(model(ids)[0, -1]))  # make the greedy next token the end token
    tokens, _, count = KVCacheSampler(model, eos_id=eos)(ids, 5, 0.0)
    assert int(count[0]) == 1 and tokens.numpy()[0, 1:].tolist() == [0] * 4


def test_inverse_cdf_sample_follows_the_softmax_and_never_draws_impossible_tokens():
    from tfkit.agents.sampling import inverse_cdf_sample

    vocab, draws = 70, 20000  # 70: the last block of 32 is padded
    probs = np.random.default_rng(0).dirichlet(np.ones(vocab) * 0.5)
    probs[[3, 40, 69]] = 0.0  # impossible tokens, one in the padded last block
    with np.errstate(divide="ignore"):  # log(0) = -inf: probability zero
        logits = np.log(probs / probs.sum()).astype(np.float32)[None].repeat(draws, 0)
    uniform = tf.random.stateless_uniform([draws], seed=[1, 2])
    eager = inverse_cdf_sample(tf.constant(logits), uniform).numpy()
    xla = tf.function(inverse_cdf_sample, jit_compile=True)(tf.constant(logits), uniform)
    assert (eager == xla.numpy()).all()
    freq = np.bincount(eager, minlength=vocab) / draws
    assert freq[[3, 40, 69]].sum() == 0
    np.testing.assert_allclose(freq, probs / probs.sum(), atol=0.01)  # 3 std at p = 0.5: 0.011


def test_samples_depend_on_the_seed_but_not_on_xla(tiny):
    tok, model = tiny
    ids = np.array([[0, 0] + tok.encode("hello world"), tok.encode("foo bar baz query")],
                   np.int32)
    xla = KVCacheSampler(model, eos_id=-1, jit_compile=True)
    graph = KVCacheSampler(model, eos_id=-1, jit_compile=False)
    a = xla(ids, 12, 1.0, seed=3)[0].numpy()
    assert (a == xla(ids, 12, 1.0, seed=3)[0].numpy()).all()
    assert (a == graph(ids, 12, 1.0, seed=3)[0].numpy()).all()
    assert (a != xla(ids, 12, 1.0, seed=4)[0].numpy()).any()


def test_score_matches_sampled_logprob(tiny):
    tok, model = tiny
    lm = KerasLM(model, tok)
    ids = np.array([tok.encode("hello world")], np.int32)
    tokens, logprob, _ = KVCacheSampler(model, eos_id=-1)(ids, 4, 0.0)
    cont = tok.decode(tokens.numpy()[0])
    eos_lp = np.log(tf.nn.softmax(model(np.array([ids[0].tolist() + tokens.numpy()[0].tolist()])
                                        )[0, -1]).numpy()[tok.eos_id])
    assert lm.score(["hello world"], [cont])[0] == pytest.approx(
        float(logprob[0]) + eos_lp, rel=1e-4)


def test_loss_is_on_output_tokens_only_and_finetuning_learns(tmp_path):
    examples = [{"prompt": f"decide ( {w} ) > > >", "output": f'Search ( query = " {w} " )'}
                for w in ["hello", "world", "foo", "bar", "baz"]] * 8
    tok = WordTokenizer.fit([e["prompt"] + " " + e["output"] for e in examples])
    x, y, w = encode_examples(examples[:1], tok, 32)
    n_out = len(tok.encode(examples[0]["output"])) + 1
    assert w.sum() == n_out and y[0][w[0] > 0][-1] == tok.eos_id
    model, history = finetune(examples, tok, ModelSpec(1, 32, 2, 64), sequence_length=32,
                              epochs=25, directory=tmp_path / "ckpt", batch_size=8,
                              learning_rate=1e-2)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    out = KerasLM(model, tok).generate(["decide ( foo ) > > >"], temperature=0.0,
                                       max_new_tokens=12)
    assert out[0][0].text == 'Search ( query = " foo " )'
    # resuming a finished run trains nothing more
    _, again = finetune(examples, tok, ModelSpec(1, 32, 2, 64), sequence_length=32, epochs=25,
                        directory=tmp_path / "ckpt", batch_size=8)
    # (fit_resumable reports the finished epochs' history, or nothing in older versions)
    assert again in ({}, history)


def test_encode_examples_truncates_outputs_longer_than_the_sequence():
    tok = WordTokenizer.fit(["p q r a b c d e f g h i j"])
    examples = [{"prompt": "p q r", "output": "a b c d e f g h"},  # 8 tokens + <eos> > 8
                {"prompt": "p q r", "output": "a b"},
                {"prompt": "", "output": "c d"}]
    x, y, w = encode_examples(examples, tok, 8)
    out = tok.encode("a b c d e f g h")
    assert x.shape == (3, 8) and x[0, 0] == tok.encode("r")[0]  # the last prompt token
    assert y[0].tolist() == out and w[0].sum() == 8  # the output's start, every token weighted
    assert x[1, :4].tolist() == tok.encode("p q r a")
    assert w[1].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]  # a b <eos>
    assert y[2, :2].tolist() == tok.encode("d") + [tok.eos_id] and w[2].sum() == 2


def test_smoothed_loss_is_cross_entropy_at_zero_penalises_certainty_and_serializes():
    from tfkit.agents.rest.finetune import SmoothedTokenLoss

    labels = tf.constant([[1, 0]])
    logits = tf.constant([[[0.0, 9.0, 0.0], [2.0, 1.0, 0.0]]])
    plain = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(SmoothedTokenLoss(0.0).call(labels, logits), plain, rtol=1e-6)
    # a near-certain right prediction costs more under smoothing than a softer one
    smooth = SmoothedTokenLoss(0.1).call(labels, logits).numpy()
    assert smooth[0, 0] > plain.numpy()[0, 0] + 0.1
    softer = SmoothedTokenLoss(0.1).call(labels, tf.constant([[[0.0, 4.0, 0.0],
                                                                [2.0, 1.0, 0.0]]]))
    assert softer.numpy()[0, 0] < smooth[0, 0]
    # a model compiled with it can be saved and loaded (its compile config names the class)
    again = keras.losses.deserialize(keras.losses.serialize(SmoothedTokenLoss(0.2)))
    assert isinstance(again, SmoothedTokenLoss) and again.label_smoothing == 0.2


def test_callable_lm_truncates_at_stop_and_scores():
    lm = CallableLM(lambda p, t, n, s: ("Pass()\nmore", -1.5), score_fn=lambda p, c: -2.0)
    [[s]] = lm.generate(["x"], stop=("\n",))
    assert s.text == "Pass()" and s.logprob == -1.5 and lm.score(["x"], ["y"]) == [-2.0]


def _toy_gpt2(keras_nlp):
    """A 1-layer GPT-2 over a toy byte-level BPE; (KerasNLPLM, tokenizer)."""
    from tfkit.agents.lm import KerasNLPLM

    # The end token must not be id 0, GPT-2's padding id.
    vocab = {"!": 0, "air": 1, "\u0120air": 2, "plane": 3, "\u0120at": 4, "port": 5,
             "<|endoftext|>": 6}
    merges = ["\u0120 a", "\u0120 t", "a i", "p l", "n e", "\u0120a t", "p o", "r t", "ai r",
              "pl a", "po rt", "\u0120ai r", "pla ne"]
    tokenizer = keras_nlp.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    backbone = keras_nlp.models.GPT2Backbone(vocabulary_size=7, num_layers=1, num_heads=2,
                                             hidden_dim=8, intermediate_dim=16,
                                             max_sequence_length=32)
    lm = KerasNLPLM(keras_nlp.models.GPT2CausalLM(
        backbone=backbone,
        preprocessor=keras_nlp.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16)))
    return lm, tokenizer


def test_keras_nlp_causal_lm_adapter_generates_and_scores():
    keras_nlp = pytest.importorskip("keras_nlp")
    lm, tokenizer = _toy_gpt2(keras_nlp)
    rows = lm.generate(["airplane at", "air"], num_samples=3, temperature=1.0,
                       max_new_tokens=4, seed=1)
    assert [len(r) for r in rows] == [3, 3]
    samples = [s for r in rows for s in r]
    assert any(s.text for s in samples)  # it really generates past the prompt
    assert all(len(tokenizer(s.text)) <= 4 for s in samples)
    s = next(s for s in rows[0] if s.text)
    assert lm.score(["airplane at"], [s.text])[0] == pytest.approx(s.logprob, rel=1e-5)


def test_keras_nlp_adapter_decodes_greedily_at_temperature_zero():
    keras_nlp = pytest.importorskip("keras_nlp")
    lm, tokenizer = _toy_gpt2(keras_nlp)  # LLMJudge and LLMRanker ask for temperature 0
    [[first]] = lm.generate(["airplane at"], temperature=0.0, max_new_tokens=4)
    compiled = lm.causal_lm.generate_function
    [[again]] = lm.generate(["airplane at"], temperature=0.0, max_new_tokens=4)
    assert lm.causal_lm.generate_function is compiled  # not recompiled for the same sampler
    assert first == again and np.isfinite(first.logprob)
    assert first.text  # RandomSampler(temperature=0) drew token 7 of 7: nothing came out
    ids = [6, *tokenizer("airplane at").numpy().tolist()]  # after the start token, id 6
    for token in tokenizer(first.text).numpy().tolist():  # each token is the argmax
        logits = lm.causal_lm({"token_ids": np.array([ids]),
                               "padding_mask": np.ones([1, len(ids)], bool)})
        assert token == int(np.argmax(logits[0, -1])) and 0 <= token < 7
        ids.append(token)


def test_keras_nlp_adapter_tokenizes_each_prompt_once(monkeypatch):
    keras_nlp = pytest.importorskip("keras_nlp")
    lm, tokenizer = _toy_gpt2(keras_nlp)
    tokenize, calls = tokenizer.tokenize, []

    def counting(inputs, *args, **kwargs):
        calls.append(inputs)
        return tokenize(inputs, *args, **kwargs)

    monkeypatch.setattr(tokenizer, "tokenize", counting)
    rows = lm.generate(["airplane at"], num_samples=3, temperature=1.0, max_new_tokens=4, seed=1)
    # was 5: for the length cap, again for max_length, and once more per sample when scoring
    assert sum(isinstance(c, str) and c == "airplane at" for c in calls) == 1
    for s in rows[0]:  # the same samples and scores as the public `score` gives
        assert lm.score(["airplane at"], [s.text])[0] == pytest.approx(s.logprob, rel=1e-5)
        assert s.num_tokens == max(1, len(tokenize(s.text)))


def test_keras_nlp_adapter_scores_after_the_start_token_as_it_generates():
    keras_nlp = pytest.importorskip("keras_nlp")
    lm, tokenizer = _toy_gpt2(keras_nlp)  # GPT-2 generates after its start token (id 6)
    [[s]] = lm.generate(["air"], temperature=1.0, max_new_tokens=3, seed=2)
    ids = [6, *tokenizer("air").numpy().tolist()]
    expected = 0.0
    for token in tokenizer(s.text).numpy().tolist():
        logits = lm.causal_lm({"token_ids": np.array([ids]),
                               "padding_mask": np.ones([1, len(ids)], bool)})
        expected += float(tf.nn.log_softmax(logits[0, -1])[token])
        ids.append(token)
    assert s.text and s.logprob == pytest.approx(expected, rel=1e-4)
    # an empty prompt is scored after the start token alone (was: a TF gather error)
    assert np.isfinite(lm.score([""], ["airplane"])[0])
    [[empty]] = lm.generate([""], temperature=1.0, max_new_tokens=3, seed=2)
    assert np.isfinite(empty.logprob)


def test_keras_nlp_adapter_reads_the_start_token_off_generate_preprocess():
    """keras-nlp 0.8.2's generate_preprocess adds the start token even when the preprocessor
    says add_start_token=False: scoring follows what generation does, not the flag."""
    keras_nlp = pytest.importorskip("keras_nlp")
    lm, _ = _toy_gpt2(keras_nlp)
    lm.causal_lm.preprocessor.add_start_token = False
    packed = lm.causal_lm.preprocessor.generate_preprocess([""], sequence_length=4)
    assert packed["token_ids"].numpy()[0, 0] == 6  # still there
    assert lm._start_ids() == [6]
    assert np.isfinite(lm.score([""], ["airplane"])[0])


def test_finetuning_loss_is_float32_under_mixed_float16(tmp_path):
    """Under mixed_float16 (the GPU default) the logits are float16; the per-token losses were
    summed in float16 too: rounded (6.5 for 6.40) and inf once a batch's output tokens x loss
    passed 65,504 (here 96 examples x 121 output tokens x ~6.4), recorded as `final_loss`."""
    words = [f"w{i}" for i in range(600)]
    tok = WordTokenizer.fit([" ".join(words)])
    rng = np.random.default_rng(0)
    examples = [{"prompt": "w1 w2", "output": " ".join(rng.choice(words, 120))}
                for _ in range(96)]
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, history = finetune(examples, tok, ModelSpec(1, 8, 2, 16), sequence_length=128,
                                  epochs=1, directory=tmp_path, batch_size=96,
                                  learning_rate=1e-3)
    finally:
        keras.mixed_precision.set_global_policy(old)
    assert model(np.zeros([1, 4], np.int32)).dtype == tf.float16  # really mixed
    assert np.isfinite(history["loss"][0])
    assert history["loss"][0] == pytest.approx(np.log(tok.vocabulary_size), rel=0.02)


def test_logprob_covers_only_the_text_kept_before_a_custom_stop(tiny):
    tok, model = tiny
    lm = KerasLM(model, tok, jit_compile=False)
    for seed in range(20):  # a sample of 8 tokens, none of them <pad>/<unk> (dropped in text)
        kw = dict(temperature=1.0, max_new_tokens=8, seed=seed)
        [[full]] = lm.generate(["hello world"], **kw)
        words = full.text.split()
        if len(words) == full.num_tokens == 8:
            break
    assert len(words) == 8
    [[cut]] = lm.generate(["hello world"], stop=(" ".join(words[2:]),), **kw)
    assert cut.text == " ".join(words[:2]) + " " and cut.num_tokens == 2
    ids = tok.encode("hello world") + tok.encode(cut.text)
    logp = tf.nn.log_softmax(model(np.array([ids]))[0]).numpy()
    expected = sum(logp[i - 1, ids[i]] for i in range(len(ids) - 2, len(ids)))
    assert cut.logprob == pytest.approx(float(expected), rel=1e-4)  # was: all 8 tokens'


def test_no_seed_draws_fresh_samples_per_call_and_a_seed_repeats_them(tiny):
    tok, model = tiny
    lm = KerasLM(model, tok, jit_compile=False)
    kw = dict(num_samples=4, temperature=1.0, max_new_tokens=6)

    def texts(**more):
        return [s.text for row in lm.generate(["hello world"], **kw, **more) for s in row]

    assert texts() != texts()  # was: seed=None drew the same samples every call
    assert texts(seed=7) == texts(seed=7)
