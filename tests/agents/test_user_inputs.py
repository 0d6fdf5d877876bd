"""A user's own LLM, search function and files: odd but plausible inputs give clear errors."""

import pytest

from tfkit.agents import (
    AgentConfig,
    BM25Search,
    CallableLM,
    FunctionSearch,
    ReActAgent,
    Sample,
)
from tfkit.agents.world.build import load_documents
from tfkit.agents.world.questions import load_csv_questions
from tfkit.errors import TfkitError

SEARCH = 'Search(thoughts="t", query="capital of Brev")'


def test_callable_lm_cuts_at_stop_and_names_a_reply_that_is_not_text():
    reply = "\n" + SEARCH + "\nmore"
    [[s]] = CallableLM(lambda p, t, n, s: reply).generate(["x"], stop=("\n",))
    assert s.text == ""  # as an API applying stop="\n" itself would return
    lm = CallableLM(lambda p, t, n, s: reply, score_fn=lambda p, c: -len(c),
                    strip_leading_whitespace=True)
    [[s]] = lm.generate(["x"], stop=("\n",))
    assert s.text == SEARCH and s.logprob == -len(SEARCH)  # opt-in: not cut to ""
    [[b]] = CallableLM(lambda p, t, n, s: SEARCH.encode()).generate(["x"])
    assert b.text == SEARCH
    for reply in (None, {"text": SEARCH}, 3):
        with pytest.raises(TypeError, match="generate_fn must return the continuation"):
            CallableLM(lambda p, t, n, s, r=reply: r).generate(["x"])
    with pytest.raises(TypeError, match="log-probability must be a number"):
        CallableLM(lambda p, t, n, s: (SEARCH, "high")).generate(["x"])


def test_function_search_refuses_non_lists_and_bad_items_and_skips_repeats():
    for result in (None, "Paris is the capital of France.", {"text": "x"}):
        with pytest.raises(TypeError, match="must return a list of results"):
            FunctionSearch(lambda q, r=result: r)("capital")
    for item in (1, None, ("a", "b", "c"), {"snippet": "x"}, {"text": None}):
        with pytest.raises(TypeError, match="result 0 for query 'capital' must be a str"):
            FunctionSearch(lambda q, i=item: [i])("capital")
    s = FunctionSearch(lambda q: ["a", "a", ("w", "a"), "b", "c", "d"])("capital", k=3)
    assert [x.text for x in s] == ["a", "b", "c"] and s[1].source == "result:3"
    assert FunctionSearch(lambda q: [])("capital") == []


def test_bm25_takes_plain_strings_and_names_other_documents():
    s = BM25Search(["the capital of Brev is Ume Vale .", "Nar is a city ."])
    assert s("capital of Brev", 1)[0].source == "doc:0"
    with pytest.raises(TypeError, match="document 1 must be a Document or a str"):
        BM25Search(["a", 2])
    with pytest.raises(TfkitError, match="non-empty list"):
        BM25Search("one long string")


class _Broken:
    def __init__(self, outs):
        self.outs = outs

    def generate(self, prompts, **kwargs):
        return self.outs

    def score(self, prompts, continuations):
        return [0.0] * len(prompts)


def test_agent_names_a_language_model_that_breaks_the_interface():
    search = FunctionSearch(lambda q: ["x"])
    questions = [{"question": "q1"}, {"question": "q2"}]
    with pytest.raises(ValueError, match=r"_Broken.generate must return one list of samples "
                                         r"per prompt \(2\), got 1 rows"):
        ReActAgent(_Broken([[Sample(SEARCH)]]), search).run(questions)
    with pytest.raises(TypeError, match="lists of tfkit.agents.Sample, got str"):
        ReActAgent(_Broken([[SEARCH], [SEARCH]]), search).run(questions)
    # fewer samples than asked is fine (a failed step when none)
    [t1, t2] = ReActAgent(_Broken([[], []]), search, AgentConfig(max_retries=0)).run(questions)
    assert t1["answer"] == "" and t1["failures"] == 4  # every step failed


def test_agent_config_refuses_bad_values_and_takes_one_stop_string():
    assert AgentConfig(stop="END").stop == ("END",)  # not ("E", "N", "D")
    assert AgentConfig(stop=["\n"]).stop == ("\n",)
    for kwargs, message in [({"num_samples": 0}, "num_samples"), ({"top_k": 0}, "top_k"),
                            ({"max_searches": 0}, "max_searches"),
                            ({"max_new_tokens": 0}, "max_new_tokens"),
                            ({"max_retries": -1}, "max_retries"),
                            ({"temperature": -1.0}, "temperature"),
                            ({"temperature": float("nan")}, "temperature"),
                            ({"stop": ("",)}, "stop")]:
        with pytest.raises(ValueError, match=f"AgentConfig.{message}"):
            AgentConfig(**kwargs)


def test_csv_with_a_byte_order_mark_quotes_and_blank_lines(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('\ufeffQuestion,Answer\n\n"Who wrote ""Hamlet"", the play?","Shakespeare|'
                    'W. S."\r\n\n', encoding="utf-8")
    [q] = load_csv_questions(path)
    assert q.question == 'Who wrote "Hamlet", the play?' and q.answers == ("Shakespeare", "W. S.")


@pytest.mark.parametrize("content, message", [
    (b"question,answer\n", "has no questions"),
    ("question,answer\ncaf\u00e9?,na\u00efve\n".encode("cp1252"), "is not UTF-8"),
])
def test_csv_without_questions_or_not_utf8_is_named(tmp_path, content, message):
    path = tmp_path / "q.csv"
    path.write_bytes(content)
    with pytest.raises(TfkitError, match=message):
        load_csv_questions(path)
    with pytest.raises(TfkitError, match="does not exist"):
        load_csv_questions(tmp_path)  # a folder


def test_documents_file_byte_order_mark_and_empty(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("\ufeffBrev is a country .\r\n\r\nUme is a city .\n", encoding="utf-8")
    assert [d.text for d in load_documents(path)] == ["Brev is a country .", "Ume is a city ."]
    path.write_text("\n  \n")
    with pytest.raises(TfkitError, match="docs.txt has no documents"):
        load_documents(path)


def test_evaluating_no_questions_is_an_error_not_zero_accuracy():
    from tfkit.agents.rest import evaluate_policy

    lm = CallableLM(lambda p, t, n, s: SEARCH)
    with pytest.raises(ValueError, match="at least one question"):
        evaluate_policy(lm, FunctionSearch(lambda q: []), [], runs=2)


def test_references_given_as_one_string_are_not_split_into_letters():
    from tfkit.agents.rest import evaluate_policy

    lm = CallableLM(lambda p, t, n, s: {
        "d": 'Terminate(thoughts="t")', "a": 'Answer(text="Paris")'}.get(p[0], "Pass()"))
    search = FunctionSearch(lambda q: [])
    one = evaluate_policy(lm, search, [{"question": "capital?", "answers": "Paris"}], runs=1)
    assert one["accuracy_mean"] == 100.0  # was 0: "Paris" judged as "P", "a", "r", ...
    with pytest.raises(ValueError, match="needs 'answers'.*name it 'answers'"):
        evaluate_policy(lm, search, [{"question": "capital?", "answer": "Paris"}], runs=1)
    with pytest.raises(TypeError, match="question 0 must be a dict with a str 'question'"):
        ReActAgent(lm, search).run(["capital?"])


def test_keras_nlp_adapter_keeps_the_end_of_a_prompt_longer_than_the_model():
    keras_nlp = pytest.importorskip("keras_nlp")
    from tests.agents.test_models import _toy_gpt2

    lm, tokenizer = _toy_gpt2(keras_nlp)  # 32 positions
    prompt = "airplane at" + " at" * 40  # 43 tokens: an XLA slice error before
    [[s]] = lm.generate([prompt], temperature=1.0, max_new_tokens=4, seed=1)
    assert len(tokenizer(s.text)) <= 4
    long = "airplane" + " at" * 40
    kept, ids = lm._keep_end_ids(long, lm._ids(long), 28)
    assert kept == " at" * 28 and ids == lm._ids(kept)  # the end ("airplane" is cut)
    assert lm.score([prompt], ["plane"])[0] < 0
    with pytest.raises(TfkitError, match="leaves no room for a prompt"):
        lm.generate(["air"], max_new_tokens=31)


def test_keras_lm_names_a_model_that_is_not_a_decoder_lm():
    from tfkit.agents import KerasLM, WordTokenizer
    from tfkit.backend import keras

    model = keras.Sequential([keras.layers.Embedding(10, 4), keras.layers.Dense(10)])
    with pytest.raises(TypeError, match="needs a tfkit.models.DecoderLM.*got Sequential"):
        KerasLM(model, WordTokenizer.fit(["a b"]))


def test_a_token_cut_inside_a_multibyte_character_decodes():
    from tfkit.agents.lm import _as_str

    assert _as_str("Zürich".encode()[:2]) == "Z"  # "ü" cut in half: dropped, not a crash


def _terminate_and_answer(answer="Bob"):
    return CallableLM(lambda p, t, n, s: {
        "d": 'Terminate(thoughts="t")', "a": f'Answer(text="{answer}")'}.get(p[0], "Pass()"))


def test_questions_loaded_from_a_csv_go_straight_into_the_agent_and_evaluation(tmp_path):
    from tfkit.agents.rest import evaluate_policy

    path = tmp_path / "bamboogle.csv"
    path.write_text("question,answer\nWho?,Bob|Robert\n", encoding="utf-8")
    questions = load_csv_questions(path)  # Question records, not dicts
    search = FunctionSearch(lambda q: [])
    # was: "question 0 needs 'answers'" for a Question that has them
    result = evaluate_policy(_terminate_and_answer(), search, questions, runs=1)
    assert result["accuracy_mean"] == 100.0
    [t] = ReActAgent(_terminate_and_answer(), search).run(questions)
    assert t["qid"] == "csv-0" and t["answers"] == ("Bob", "Robert") and t["answer"] == "Bob"


def test_evaluate_policy_refuses_fewer_than_one_run():
    from tfkit.agents.rest import evaluate_policy

    with pytest.raises(ValueError, match="runs must be"):  # was: KeyError 'accuracy'
        evaluate_policy(_terminate_and_answer(), FunctionSearch(lambda q: []),
                        [{"question": "Who?", "answers": ["Bob"]}], runs=0)


def test_bm25_takes_a_mapping_of_ids_to_texts():
    # was: the mapping's keys indexed as the documents, so nothing was ever found
    s = BM25Search({"wiki:brev": "the capital of Brev is Ume Vale .", "wiki:nar": "Nar ."})
    [hit] = s("capital of Brev", 1)
    assert hit.source == "wiki:brev" and hit.text.startswith("the capital")


def test_a_plain_search_function_returning_strings_is_named():
    lm = CallableLM(lambda p, t, n, s: SEARCH)
    agent = ReActAgent(lm, lambda query, k: ["Ume Vale is the capital of Brev ."][:k])
    with pytest.raises(TypeError, match="list of Snippet.*FunctionSearch"):  # was: 'str' object
        agent.run([{"question": "capital of Brev?"}])  # has no attribute 'text'


def test_agent_config_names_a_temperature_that_is_not_a_number():
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        AgentConfig(temperature="0.5")  # was: TypeError "'<=' not supported"


def test_csv_with_two_answer_columns_is_named_not_half_read(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question,Answer,answer\nWho?,Bob,Robert\n", encoding="utf-8")
    with pytest.raises(TfkitError, match="q.csv has 2 'answer' columns"):  # was: 'Bob' dropped
        load_csv_questions(path)


def test_a_very_negative_logprob_is_an_infinite_perplexity_not_a_crash():
    # e.g. summed token logprobs of an API that reports -9999.0 for an unlikely token
    assert Sample("Pass()", -9999.0, 1).perplexity == float("inf")
    lm = CallableLM(lambda p, t, n, s: ('Terminate(thoughts="t")', -9999.0))
    [t] = ReActAgent(lm, BM25Search(["a"]), AgentConfig(num_samples=2)).run([{"question": "q"}])
    assert t["steps"][0]["chosen"] == 0  # was: OverflowError from math.exp


def test_function_search_skips_blank_results_and_names_a_non_list():
    s = FunctionSearch(lambda q: ["", "  ", "Paris is in France.", "\n", "Lyon too."])
    assert [x.text for x in s("q", 3)] == ["Paris is in France.", "Lyon too."]
    with pytest.raises(TypeError, match="FunctionSearch: the search function must return a "
                                        "list.*got int"):
        FunctionSearch(lambda q: 5)("q")


def test_llm_judge_and_ranker_take_a_reply_with_no_samples_as_a_failed_step():
    from tfkit.agents import LLMJudge, LLMRanker

    class NoSamples:  # the interface allows fewer samples than asked; none is a failed step
        def generate(self, prompts, num_samples=1, **kwargs):
            return [[] for _ in prompts]

        def score(self, prompts, continuations):
            return [0.0] * len(prompts)

    assert LLMJudge(NoSamples())("capital?", "Paris", ["Paris"]) is False  # was: IndexError
    step = {"step": "answer", "prompt": "answer(...) >>>",
            "state": {"question": "q", "past": [], "links": {}, "answer": ""},
            "samples": [{"text": 'Answer(text="x")', "perplexity": 1.0, "action": None}] * 2}
    assert sorted(LLMRanker(NoSamples()).rank(step)) == [0, 1]  # the fallback ranks


def test_keras_nlp_adapter_generates_nothing_for_no_prompts():
    keras_nlp = pytest.importorskip("keras_nlp")
    from tests.agents.test_models import _toy_gpt2

    lm, _ = _toy_gpt2(keras_nlp)
    assert lm.generate([], num_samples=2, max_new_tokens=4) == []  # was: max() of nothing
    assert lm.score([], []) == []


def test_a_document_is_one_line_even_with_a_form_feed_or_unicode_line_separator(tmp_path):
    # web text often holds U+2028 / U+0085 / \f inside a paragraph; str.splitlines splits there
    path = tmp_path / "docs.txt"
    path.write_text("Brev is\u2028a country .\fIt is small .\nUme\x85is a city .\r\nLast .\r",
                    encoding="utf-8", newline="")
    assert [d.text for d in load_documents(path)] == [
        "Brev is\u2028a country .\fIt is small .", "Ume\x85is a city .", "Last ."]
