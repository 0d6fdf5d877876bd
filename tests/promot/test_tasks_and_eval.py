import warnings
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from tfkit.promot import (
    PRETRAIN_TASKS,
    bleu,
    encode_episode,
    evaluate_icl,
    format_specialization,
    lm_arrays,
    make_world,
    normalized_score,
    own_format_rate,
    prompt_text,
    sample_episode,
    task_score,
)


def test_world_is_seeded_and_every_task_tokenizes(world_tasks_tokenizer):
    world, tasks, tok = world_tasks_tokenizer
    assert make_world(0) == world and make_world(1) != world
    assert len(PRETRAIN_TASKS) >= 8 and {"entail", "translate"} <= set(tasks)
    rng = np.random.default_rng(0)
    for task in tasks.values():
        episode = sample_episode(task, 4, rng)
        ids = tok.encode(prompt_text(episode) + " " + episode[-1][1])
        assert tok.unk_id not in ids, task.name
        assert task.in_format(episode[-1][1]), task.name


def test_episode_state_is_hidden_in_context(world_tasks_tokenizer):
    _, tasks, _ = world_tasks_tokenizer
    rng = np.random.default_rng(0)
    # per-episode label words: the same item gets different labels in different episodes
    labels = {sample_episode(tasks["label_map"], 3, rng)[0][1] for _ in range(30)}
    assert len(labels) > 4
    # within an episode the mapping is consistent: the query's answer words appear in the shots
    for _ in range(10):
        episode = sample_episode(tasks["word_map"], 1, rng)
        assert set(episode[1][1].split()) <= set(episode[0][1].split())


def test_loss_mask_covers_answers_only(world_tasks_tokenizer):
    _, tasks, tok = world_tasks_tokenizer
    episode = [("compute 1 plus 2 equals", "3"), ("compute 4 plus 5 equals", "9")]
    ids, weights = encode_episode(tok, episode, loss_on="query")
    assert tok.decode([i for i, w in zip(ids, weights, strict=True) if w]) == "9 |"
    arrays = lm_arrays([episode], tok, 20, loss_on="all")
    trained = arrays["y"][0][arrays["w"][0] > 0]
    assert tok.decode(trained.tolist()) == "3 | 9 |"


def test_metrics():
    assert bleu("a b c", "a b c") == 1.0
    assert 0 < bleu("a b x", "a b c") < 1 and bleu("", "a") == 0 and bleu("x y", "a b") == 0
    assert bleu("a", "a b c") < bleu("a b", "a b c")  # brevity penalty


def test_format_specialization_and_normalization(world_tasks_tokenizer):
    _, tasks, _ = world_tasks_tokenizer
    always_true = lambda prompts: ["True"] * len(prompts)  # noqa: E731
    scores = dict(evaluate_icl(always_true, {n: tasks[n] for n in PRETRAIN_TASKS},
                               tasks["entail"], shots=1, num_queries=8))
    assert scores["format_specialization"] == 100.0
    assert scores["sentiment"] == 0.0
    assert normalized_score(tasks["sentiment"], 50.0) == 0.0
    outputs = {"fact_qa": [("x", "y")], "word_map": [("a b", "c d")]}
    assert format_specialization(tasks["entail"], outputs, tasks) == 0.0
    # an answer that starts in the target's format counts, even if more words follow
    entail = tasks["entail"]
    assert entail.starts_in_format("True ripa") and not entail.in_format("True ripa")
    rambling = {"fact_qa": [("True ripa", "y"), ("ripa True", "y")]}
    assert format_specialization(entail, rambling, tasks) == 50.0
    # outputs of a task answered in the target's own format do not count as specialization
    foreign = tasks["translate"]
    outputs = {"word_map": [("a b", tasks["word_map"].example(
        np.random.default_rng(0), {"x": sorted(foreign.answer_vocab)[0]})[1])],
               "fact_qa": [(sorted(foreign.answer_vocab)[0], "y")]}
    assert format_specialization(foreign, outputs, tasks) == 100.0
    assert task_score(tasks["fact_qa"], [("a", "a"), ("a", "b")]) == 50.0


def test_own_format_rate_separates_forgetting_from_specialization(world_tasks_tokenizer):
    _, tasks, _ = world_tasks_tokenizer
    forgotten = {"arithmetic": [("1 8", "9"), ("4", "4")], "sentiment": [("negative", "positive")]}
    assert own_format_rate(forgotten, tasks) == 100.0  # wrong answers, right format
    specialized = {"arithmetic": [("True", "9"), ("4", "4")], "sentiment": [("", "positive")]}
    assert abs(own_format_rate(specialized, tasks) - 100.0 / 3) < 1e-9
    assert own_format_rate({}, tasks) == 0.0


class _CharTokenizer:
    """One token per character: pseudo-words split into several pieces, as BPE splits them."""

    pad_id = 0

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i)


def test_setup_sizes_answers_and_examples_in_tokens(world_tasks_tokenizer):
    """The word tokenizer keeps the recorded sizes (4 new tokens, 16/32-token examples); a
    tokenizer with several pieces per word gets room for every answer and its `|`."""
    from tfkit.promot.pipeline import Setup

    _, tasks, tok = world_tasks_tokenizer
    config = SimpleNamespace(seed=0, finetune_examples=50)
    words = Setup(config, tasks, tok)
    assert words.max_new_tokens == 4
    assert [words.finetune_arrays("translate", k)["x"].shape[1] for k in (0, 1)] == [16, 32]
    chars = Setup(config, tasks, _CharTokenizer())
    assert chars.max_new_tokens > 12  # e.g. " zago taru tezo" is 15 characters
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is cut
        arrays = chars.finetune_arrays("translate", 1)
    answer_tokens = arrays["w"].sum(axis=1)  # each row's whole answer and its `|` are trained
    rng = np.random.default_rng([0, 2, 1, zlib.crc32(b"translate")])
    episodes = [sample_episode(tasks["translate"], 1, rng) for _ in range(50)]
    expected = [len(f" {e[-1][1]} |") for e in episodes]
    np.testing.assert_array_equal(answer_tokens, expected)


def test_lm_arrays_warns_when_a_lone_query_is_cut(world_tasks_tokenizer):
    _, tasks, tok = world_tasks_tokenizer
    episode = sample_episode(tasks["translate"], 0, np.random.default_rng(0))
    with pytest.warns(UserWarning, match="1 of 1 episodes do not fit length=4"):
        lm_arrays([episode], tok, 4)


def test_icl_prompts_longer_than_the_model_are_a_clear_error(world_tasks_tokenizer, tiny_lm):
    from tfkit.layers import SoftPrompt
    from tfkit.promot import PromptedLM, make_predict_fn

    _, tasks, tok = world_tasks_tokenizer
    lm = tiny_lm(tok.vocabulary_size, sequence_length=24)
    mine = {"sentiment": tasks["sentiment"], "count": tasks["count"]}
    predict = make_predict_fn(PromptedLM(lm), tok)
    assert len(dict(evaluate_icl(predict, mine, tasks["entail"], shots=1, num_queries=2))) == 4
    with pytest.raises(ValueError, match="positions.*24.*fewer shots"):  # 4-shot: ~40 tokens
        dict(evaluate_icl(predict, mine, tasks["entail"], shots=4, num_queries=2))
    shifted = make_predict_fn(PromptedLM(lm, SoftPrompt(20, positions="shifted")), tok)
    with pytest.raises(ValueError, match="positions.*4 .*shifted"):
        shifted(["review a b c verdict"])
    with pytest.raises(ValueError, match="no tokens"):
        predict(["sentiment", ""])


def test_evaluate_icl_rejects_empty_inputs(world_tasks_tokenizer):
    _, tasks, _ = world_tasks_tokenizer

    def predict(prompts):
        return ["positive"] * len(prompts)

    with pytest.raises(ValueError, match="no tasks"):
        dict(evaluate_icl(predict, {}, tasks["entail"], shots=1))  # was: a NaN average
    with pytest.raises(ValueError, match="num_queries"):
        dict(evaluate_icl(predict, {"sentiment": tasks["sentiment"]}, tasks["entail"], shots=1,
                          num_queries=0))  # was: a score of 0 from no queries
    with pytest.raises(ValueError, match="shots"):
        dict(evaluate_icl(predict, {"sentiment": tasks["sentiment"]}, tasks["entail"], shots=-1))


def test_user_task_with_an_unknown_metric_is_rejected(world_tasks_tokenizer):
    from tfkit.promot import Task

    def example(rng, state):
        return "input", "answer"

    with pytest.raises(ValueError, match="metric"):  # was: silently scored as exact match
        Task("mine", "BLEU", 0.0, frozenset({"answer"}), lambda rng: None, example)
    with pytest.raises(ValueError, match="chance"):  # was: ZeroDivisionError when normalized
        Task("mine", "accuracy", 1.0, frozenset({"answer"}), lambda rng: None, example)


def test_user_task_answer_words_are_words_not_letters():
    from tfkit.promot import Task

    def example(rng, state):
        return "is it", "yes"

    # was: "yes no" taken as a string, so "es" and "o" counted as answers in the format
    with pytest.raises(ValueError, match="answer_vocab.*not a str"):
        Task("mine", "accuracy", 0.5, "yes no", lambda rng: None, example)
    task = Task("mine", "accuracy", 0.5, ["yes", "no"], lambda rng: None, example)
    assert task.answer_vocab == frozenset({"yes", "no"}) and hash(task)  # a list is fine
    assert task.in_format("yes") and not task.in_format("es")
