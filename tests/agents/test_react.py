"""The agent's pieces without TensorFlow models: parsing, search, the state machine, feedback."""

import dataclasses

import pytest

from tfkit.agents import (
    AgentConfig,
    BM25Search,
    CachedSearch,
    CallableLM,
    Document,
    FunctionSearch,
    OfflineJudge,
    OfflineRater,
    ReActAgent,
)
from tfkit.agents.autoeval import evaluate_answers, judge_prompt, paired_difference, question_set_se
from tfkit.agents.ranker import parse_ranking, ranking_prompt, unresolved_words
from tfkit.agents.react import ParseError, citations, parse_action
from tfkit.agents.rest import improve
from tfkit.agents.world import (
    ScriptedTeacher,
    build_knowledge_base,
    load_csv_questions,
    make_questions,
    parse_fact,
    render_documents,
    split_entities,
)
from tfkit.errors import TfkitError


@pytest.fixture(scope="module")
def world():
    kb = build_knowledge_base(0, people=40, cities=16, countries=6, companies=12)
    search = BM25Search(render_documents(kb, 0))
    train, held = split_entities(kb, 0)
    qs = make_questions(kb, train, 24, (2, 3), 1, "train", search)
    test = make_questions(kb, held, 12, (2, 3, 4), 2, "test", search)
    return kb, search, [dataclasses.asdict(q) for q in qs], [dataclasses.asdict(q) for q in test]


def test_parse_action_accepts_calls_and_rejects_the_rest():
    a = parse_action('Search ( thoughts = " x " , query = " capital of Brev " )', "decision")
    assert a.name == "Search" and a.args["query"] == "capital of Brev"
    assert parse_action("Summary(links=[1, 2], text=\"t [link_id=1]\")", "summarize").args[
        "links"] == [1, 2]
    for bad, step in [("Search(query='x')", "decision"),  # missing thoughts
                      ("Answer(text='x')", "decision"),  # wrong step
                      ("__import__('os').system('ls')", "decision"),  # not a plain call
                      ("Summary(links=['a'], text='t')", "summarize"),
                      ("Search(thoughts=1+1, query='q')", "decision"),
                      ("Search(thoughts='a', query='q'", "decision")]:
        with pytest.raises(ParseError):
            parse_action(bad, step)
    assert citations("x [ link_id = 3 ] y [link_id=12]") == [3, 12]


@pytest.mark.parametrize("depth", [1000, 5000])
def test_deeply_nested_or_huge_model_outputs_are_parse_errors(depth):
    # 1000: parses, literal_eval fails, and describing the node recursed; 5000: ast.parse itself
    for bad in ['Search(thoughts=' + "-" * depth + '1, query="x")',
                'Search(thoughts="a"' + ' + "a"' * depth + ', query="x")']:
        with pytest.raises(ParseError):
            parse_action(bad, "decision")
    with pytest.raises(ParseError, match="too long"):
        parse_action('Search(thoughts="' + "a" * 30_000 + '", query="x")', "decision")


def test_bm25_ranks_matching_fact_first_and_cache_serves_repeats():
    docs = [Document("a", "the capital of Brev is Ume Vale ."),
            Document("b", "the mayor of Ume Vale is Belo Tram ."),
            Document("c", "Belo Tram once visited Brev .")]
    search = CachedSearch(BM25Search(docs))
    assert search("capital of Brev", 1)[0].source == "a"
    assert search.lookup("Capital of  Brev", 1)[1] is True and search.hits == 1
    assert FunctionSearch(lambda q: ["one", ("s", "two")])("q")[1].source == "s"


def test_dev_test_questions_use_held_out_entities_and_need_two_searches(world):
    kb, search, train, test = world
    starts = {q["question"].rsplit(" of ", 1)[1][:-2] for q in test}
    train_starts = {q["question"].rsplit(" of ", 1)[1][:-2] for q in train}
    assert not starts & train_starts
    for q in test:  # the outermost fact (its noun and the answer) is never in one search
        noun = q["question"].split()[3]
        hits = search(q["question"], 3)
        assert not any(parse_fact(h.text) and parse_fact(h.text)[0] == noun
                       and parse_fact(h.text)[2] == q["answers"][0] for h in hits)
    assert {q["hops"] for q in test} <= {2, 3, 4} and min(q["hops"] for q in test) == 2


def test_clean_teacher_solves_the_world_and_noise_hurts(world):
    kb, search, train, _ = world
    clean = ReActAgent(ScriptedTeacher(0.0), search, AgentConfig(num_samples=2)).run(train)
    noisy = ReActAgent(ScriptedTeacher(0.5), search, AgentConfig(num_samples=2)).run(train)
    clean_m, noisy_m = dict(evaluate_answers(clean)), dict(evaluate_answers(noisy))
    assert clean_m["accuracy"] == 100.0 and clean_m["citation_validity"] == 1.0
    assert noisy_m["accuracy"] < 90.0
    t = clean[0]
    kinds = [s["step"] for s in t["steps"]]
    assert kinds[:3] == ["decision", "summarize", "decision"]
    assert kinds[-3:] == ["answer", "relevance", "grounding"]
    assert t["searches"] == t["hops"]


def test_relevance_check_revises_an_earlier_finding_only_when_it_sees_the_past(world):
    kb, search, train, _ = world
    teacher = ScriptedTeacher(0.0)
    past = ("[(\"capital of Brev\", \"the capital of Brev is Ume Vale [link_id=1]\"), "
            "(\"mayor of Ume Vale\", \"the mayor of Ume Vale is Belo Tram [link_id=4]\")]")
    blind = 'check_relevance(question="q", answer="Ume Vale [link_id=1]") >>>'
    seeing = f'check_relevance(question="q", past={past}, answer="Ume Vale [link_id=1]") >>>'
    right = seeing.replace("Ume Vale [link_id=1]\") >>>", "Belo Tram [link_id=4]\") >>>")
    assert teacher.generate([blind])[0][0].text == "Pass()"
    assert teacher.generate([seeing])[0][0].text == 'Revise(text="Belo Tram [link_id=4]")'
    assert teacher.generate([right])[0][0].text == "Pass()"
    # in the agent: the prompt carries the past, and noisy answers get revised
    config = AgentConfig(num_samples=2, relevance_sees_past=True)
    noisy = ReActAgent(ScriptedTeacher(0.5, seed=3), search, config).run(train)
    checks = [st for t in noisy for st in t["steps"] if st["step"] == "relevance"]
    assert all("past=[" in st["prompt"] for st in checks)
    assert any(st["samples"][st["chosen"]]["text"].startswith("Revise") for st in checks)
    off = ReActAgent(ScriptedTeacher(0.5, seed=3), search, AgentConfig(num_samples=2)).run(train)
    assert not any("past=[" in st["prompt"] for t in off for st in t["steps"]
                   if st["step"] == "relevance")


def test_rater_targets_beat_perplexity_targets(world):
    kb, search, train, _ = world
    trajs = ReActAgent(ScriptedTeacher(0.4, seed=1), search, AgentConfig()).run(train)
    ranked = improve([dict(t) for t in trajs], OfflineRater(), "ranker")
    plain = improve([dict(t) for t in trajs], OfflineRater(), "perplexity")
    teacher = ScriptedTeacher(0.0)

    def agreement(examples):  # how often the target equals the clean teacher's output
        hits = [teacher.generate([e["prompt"]])[0][0].text == e["output"] for e in examples]
        return sum(hits) / len(hits)

    assert agreement(ranked) > agreement(plain) + 0.05  # 0.93 vs 0.86 at these seeds


def test_improve_skips_an_unparsed_sample_ranked_first():
    class Backwards:  # e.g. an LLM ranker that prefers the malformed output
        def rank(self, step):
            return [2, 1, 0]

    samples = [{"text": "Pass()", "action": {"name": "Pass", "args": {}}},
               {"text": "Revise(text='x')", "action": {"name": "Revise", "args": {"text": "x"}}},
               {"text": "Pass(", "action": None}]
    trajectory = {"qid": "q", "steps": [{"step": "grounding", "prompt": "p", "chosen": 0,
                                         "samples": samples}]}
    [example] = improve([trajectory], Backwards())
    assert example["output"] == "Revise(text='x')" and trajectory["steps"][0]["target"] == 1


def test_budget_exhaustion_forces_an_answer_and_parse_failures_are_recorded():
    search = BM25Search([Document("a", "the capital of Brev is Ume Vale .")])
    always_search = CallableLM(lambda p, t, n, s: (
        'Search(thoughts="t", query="capital of Brev")' if p.startswith("decide") else
        'Summary(links=[1], text="the capital of Brev is Ume Vale [link_id=1]")'
        if p.startswith("summarize") else "not a call"))
    [t] = ReActAgent(always_search, search, AgentConfig(num_samples=2, max_searches=3)).run(
        [{"question": "what is the capital of Brev ?", "answers": ["Ume Vale"]}])
    assert t["budget_exhausted"] and t["searches"] == 3 and t["cache_hits"] == 2
    assert any(s.get("forced") for s in t["steps"])
    assert t["failures"] == 3 and t["answer"] == ""  # answer + two checks failed after retry
    assert dict(evaluate_answers([t]))["parse_failure_rate"] > 0


def test_offline_judge_and_ranking_parser():
    judge = OfflineJudge()
    assert judge("q", "Ume Vale [link_id=3]", ["ume vale"])
    assert not judge("q", "Ume Vale or Kesh Mere", ["Ume Vale"])
    assert not judge("q", "unknown", ["Ume Vale"]) and not judge("q", "Ume", ["Ume Vale"])
    assert parse_ranking("Ranking: #2 > #3 > #1", 4) == [1, 2, 0, 3]
    assert parse_ranking("Answer: #2", 2) == [1, 0] and parse_ranking("no idea", 3) is None
    assert "Ranking: #X > #Y" in ranking_prompt("decide() >>>", ["a", "b", "c"])
    assert unresolved_words("what is the country of the capital of Brev ?",
                            [("capital of Brev", "the capital of Brev is Ume Vale")]) == {
                                "country"}


def test_offline_judge_hedges_with_apostrophes_and_hedge_words_inside_the_reference():
    judge = OfflineJudge()
    assert not judge("q", "I can't tell, Paris", ["Paris"])
    assert not judge("q", "Paris, I don't know", ["Paris"])
    assert judge("q", "Trick or Treat", ["Trick or Treat"])
    assert judge("q", "Nothing Compares 2 U [link_id=1]", ["Nothing Compares 2 U"])
    assert not judge("q", "Trick or Treat or Halloween", ["Trick or Treat"])
    assert judge("q", "Trick or Treat", ["Treat", "Trick or Treat"])


def test_question_set_se_and_paired_difference():
    # one run per question: the binomial standard error (with n - 1) of 3 right out of 4
    assert question_set_se([100, 100, 100, 0]) == pytest.approx(25.0)
    before, after = [0, 0, 100, 100, 50, 50], [100, 0, 100, 100, 50, 50]
    diff, se = paired_difference(before, after)
    assert diff == pytest.approx(100 / 6)
    assert se == pytest.approx(question_set_se([100, 0, 0, 0, 0, 0]))
    # the same shift on every question: no pairing noise at all, far below the unpaired SE
    assert paired_difference([0, 100, 50, 0], [10, 110, 60, 10]) == (10.0, 0.0)
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2 questions"):
        question_set_se([50])


def test_parse_fact_reads_all_paraphrases():
    assert parse_fact("Ume Vale is the capital of Brev .") == ("capital", "Brev", "Ume Vale")
    assert parse_fact("Brev has Ume Vale as capital .") == ("capital", "Brev", "Ume Vale")
    assert parse_fact("Belo Tram once visited Brev .") is None


def test_csv_loader(tmp_path):
    path = tmp_path / "bamboogle.csv"
    path.write_text("Question,Answer\nWho founded X?,Ada|Ada L.\n")
    [q] = load_csv_questions(path)
    assert q.answers == ("Ada", "Ada L.")


@pytest.mark.parametrize("row", ["Who founded Y?", "Who founded Y?,", "Who founded Y?, | "])
def test_csv_loader_names_a_row_without_an_answer(tmp_path, row):
    path = tmp_path / "bamboogle.csv"
    path.write_text(f"Question,Answer\nWho founded X?,Ada\n{row}\n")
    with pytest.raises(TfkitError, match="line 3: question 'Who founded Y\\?' has no answer"):
        load_csv_questions(path)


def test_judges_read_one_reference_string_as_one_reference():
    judge = OfflineJudge()  # as evaluate_policy already did for a question's 'answers'
    assert judge("q", "Ume Vale", "Ume Vale") and not judge("q", "e", "Ume Vale")
    assert "Reference answer: Ume Vale\n" in judge_prompt("q", "x", "Ume Vale")


def test_a_repeated_keyword_is_a_parse_error_naming_it():
    # Python refuses `f(query="a", query="b")`; the parser kept the last value
    with pytest.raises(ParseError, match="repeated keyword 'query'"):
        parse_action('Search(thoughts="t", query="a", query="b")', "decision")


@pytest.mark.parametrize("links", ["[True]", "[1, False]"])
def test_a_bool_link_is_refused_not_read_as_link_1(links):
    with pytest.raises(ParseError, match="links must be a list of integers"):
        parse_action(f'Summary(links={links}, text="x [link_id=1]")', "summarize")


def test_a_nan_logprob_ranks_last_whatever_the_sample_order():
    from tfkit.agents.lm import Sample

    assert Sample("x", float("nan"), 2).perplexity == float("inf")
    for replies in (['Terminate(thoughts="nan")', 'Terminate(thoughts="ok")'],
                    ['Terminate(thoughts="ok")', 'Terminate(thoughts="nan")']):
        queue = list(replies)

        def reply(p, t, n, s, queue=queue):
            if p.startswith("decide"):
                text = queue.pop(0)
                return text, float("nan") if "nan" in text else -1.0
            return 'Answer(text="x")', -1.0

        [t] = ReActAgent(CallableLM(reply), BM25Search([Document("a", "x")]),
                         AgentConfig(num_samples=2, self_checks=False)).run([{"question": "q"}])
        step = t["steps"][0]
        assert step["samples"][step["chosen"]]["text"] == 'Terminate(thoughts="ok")'
    pas = {"name": "Pass", "args": {}}
    for ppl, best in (([float("nan"), 1.5], 1), ([1.5, float("nan")], 0)):
        step = {"step": "grounding", "state": {"answer": "x", "links": {}, "past": []},
                "samples": [{"text": "Pass()", "action": pas, "perplexity": p} for p in ppl]}
        assert OfflineRater().rank(step)[0] == best
