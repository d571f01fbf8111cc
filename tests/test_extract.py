"""Answer extraction and grading: the shipped response set, the report's numbers, the CLI."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from promptmill.cli import main
from promptmill.errors import InputError
from promptmill.extract import (
    GradeReport,
    extract_choice,
    extract_math,
    grade,
    is_equivalent,
    normalise_math,
    pass_at_k,
)
from promptmill.extraction.equivalence import _VerifyWorker
from promptmill.extraction.labelled import Scores, as_results, read_cases, score

DATA = Path(__file__).parent / "data"
CASES = read_cases(DATA / "extraction_cases.jsonl")
HELD_OUT = DATA / "extraction_heldout.jsonl"
FRESH = DATA / "extraction_heldout2.jsonl"
THIRD = DATA / "extraction_heldout3.jsonl"
FOURTH = DATA / "extraction_heldout4.jsonl"
FIFTH = DATA / "extraction_heldout5.jsonl"
SIXTH = DATA / "extraction_heldout6.jsonl"
SEVENTH = DATA / "extraction_heldout7.jsonl"
EIGHTH = DATA / "extraction_heldout8.jsonl"
NINTH = DATA / "extraction_heldout9.jsonl"
TENTH = DATA / "extraction_heldout10.jsonl"
ELEVENTH = DATA / "extraction_heldout11.jsonl"
TWELFTH = DATA / "extraction_heldout12.jsonl"
THIRTEENTH = DATA / "extraction_heldout13.jsonl"
FOURTEENTH = DATA / "extraction_heldout14.jsonl"
FIFTEENTH = DATA / "extraction_heldout15.jsonl"
SIXTEENTH = DATA / "extraction_heldout16.jsonl"
SEVENTEENTH = DATA / "extraction_heldout17.jsonl"
EIGHTEENTH = DATA / "extraction_heldout18.jsonl"
NINETEENTH = DATA / "extraction_heldout19.jsonl"
# Each held-out split as committed before the extractor changes it measures (a2ec2d0, 326968b,
# dbd6715, 064c06c, 7705414, 807d4fc, 727ef6d, e3b433e, eeb5ffd, 4a3a53c, 646d593, 68f12fa,
# ee88429, 54c7a50, 371c97c, 87e7943, f4c2520, 5967229, ebbe9ea).
# A case may change only to fix its label, in a commit that says so; then its digest changes.
SPLIT_SHA256 = {
    HELD_OUT: "db5f5997736d1eeb4d34447f77de3bc5c57d3b06337b5f82fe9bbc73cfcbd5e9",
    FRESH: "4e1fe15a11f707655a9a7fd54b120ca663e4765ae679c23b8eb494a2c87eb193",
    THIRD: "f04a6f33341be84ecb03339e8d665b1772fe003d424eb4d305e535b2d59c51b6",
    FOURTH: "269420a539deb70c72ead06f576cbc897ca9f1c5e36bf52ff9818b0988a2bdad",
    FIFTH: "ed3090c06696716b952b4c48aab01fb805aea69dba18f4b6e679ec950e320c3a",
    SIXTH: "2300ccb7301920de05a5ce2ecd65f721d9698f5d9cb2a2a24db440c4d9e13df9",
    SEVENTH: "ed09bf155a54f4870c7843bb96ea184ec3e43a435838e38375d9146411010f1b",
    EIGHTH: "fd4c06f25f6a6b59599a2ac2af92816b1b5bf5d37a4a24b015871c50906e0d07",
    NINTH: "97fc7a9083350f0e07adc1cd79181318f0c0f3e4417fbdeae92244e58aecd8dc",
    TENTH: "ac97ad5a196ecdb91eb88eabe42fd470edd13648dc5cac6b442688476a24146f",
    ELEVENTH: "0558c3fbfdd67f817b0d824778eecd1d7b921b7398395dac38dfb713d339a61c",
    TWELFTH: "5a4148dc7f7e0d6bfbefb2dc4ea823693998c941c67922ab447629ce087bb832",
    THIRTEENTH: "2885959dcddc33b32f5dc08aaa9108935cd554ff122a8fa802cab008ba00cf0f",
    FOURTEENTH: "16c524fad486a50f83bc0a4defea2836308e874e248bbec8a412bb3ef59258bd",
    FIFTEENTH: "2e3267f958462dc92ddc614634581030004326a61049bfc79a9221954f6ac560",
    SIXTEENTH: "34543a7f7770a15578a914ef712d51f60cb66dbe24e4468d340e9d195074d84f",
    SEVENTEENTH: "66d9d969c1b9d90d2d73d051108998901dd02629526c10e1ecd4896dfd33b691",
    EIGHTEENTH: "499870d4c8a64aa87e5111001561e76338851e4af96df2ebf99920141dcb5781",
    NINETEENTH: "d965651a4a14b3a632f146c12382330a615e7b9f321c867609522181f9fd52e5",
}
FAMILIES = ("easy", "restated", "structured", "final", "no_single", "math_final")
# The first three splits are spent: their misses were studied and the rules behind them fixed
# (rounds grader17b and, for the third, grader17c), so they now guard like the training split,
# held to its floors (99.5% overall, 98% per family; all measured 100% then). The fourth was
# the fresh one (90.0% when first measured after those rounds) until round grader17d read its
# misses and fixed the rules behind them: spent now, it measured 98.75% after that round
# (families 96.6-100%), and its floors are those figures, a guard against regressions.
# The fifth (95.5% when first measured, math_final 80%) was spent in round grader17e: 99.75%
# after it (math_final 98.75%, the rest 100%); its floors leave room for one math-verify
# timeout on a loaded machine, nothing more.
# The sixth (89.5% when first measured, math_final 66.7%) was spent in round grader17f: 99.0%
# after it (restated 54/55, no_single 53/55, math_final 80/81, the rest 100%); its floors are
# those figures.
# The seventh (94.75% when first measured, no_single 89.1%, math_final 88.75%) was spent in
# round grader17g: 100% after it; its floors leave room for two misses overall (a math-verify
# timeout on a loaded machine), one per family.
# The eighth (91.25% when first measured, restated 83.6%, math_final 80.0%) was spent in round
# grader17h: 96.5% after it (restated 48/55, math_final 76/80, structured, final and no_single
# 54/55, easy 100%); its floors are those figures.
# The ninth (93.6% when first measured, restated 88.3%, math_final 86.2%) was spent in round
# grader17i: 100% after it; its floors leave room for two misses overall (a math-verify
# timeout on a loaded machine), one per family.
# The tenth (95.25% when first measured, no_single 90.9%, math_final 87.5%) was spent in round
# grader17j: 100% after it; its floors leave room for two misses overall (a math-verify
# timeout on a loaded machine), one per family.
# The eleventh (93.75% when first measured, no_single 80.0%, restated 90.9%) was spent in round
# grader17k: 97.75% after it (final 53/55, no_single 50/55, math_final 78/80, the rest 100%);
# its floors are those figures (98.0% after round grader17l, no_single 51/55; 98.5% after
# grader17m, no_single 53/55).
# The twelfth (96.25% when first measured, restated 92.7%, math_final 91.2%) was spent in round
# grader17l: 100% after it; its floors leave room for two misses overall (a math-verify
# timeout on a loaded machine), one per family.
# The thirteenth (95.75% when first measured, no_single 85.5%, math_final 93.8%) was spent in
# round grader17m: 99.5% after it (restated 54/55, math_final 79/80, the rest 100%); its
# floors leave room for one more miss overall (a math-verify timeout on a loaded machine).
# The fourteenth (96.75% when first measured, restated 92.7%, math_final 90.0%) was spent in
# round grader17n: 100% after it; its floors (99.5%, 98% per family) leave room for two misses
# overall (a math-verify timeout on a loaded machine), one per family.
# The fifteenth (96.25% when first measured), sixteenth (97.5%; mostly templated) and
# seventeenth (89.2%, math_final 70.0%) were spent together in round grader18: 100%, 99.75%
# and 99.5% after it (held-out-17: restated 54/55, math_final 79/80); their floors leave room
# for two misses overall, one per family, beyond those figures.
# The eighteenth (86.75% when first measured after round grader18, restated 78.2%) was spent
# in round grader19: 94.5% after it (restated 48/55, math_final 69/80, no_single 52/55,
# structured 54/55, easy and final 100%); its floors are a miss below those figures.
# The nineteenth (90.25% when first measured after round grader18, 91.25% after grader19,
# restated 74.5%) was spent in round grader20: 96.75% after it (restated 51/55, math_final
# 74/80, structured 53/55, no_single 54/55, easy and final 100%); floors a miss below.
# (overall floor, per-family floor) for each split:
FLOORS = {HELD_OUT: (0.995, 0.98), FRESH: (0.995, 0.98), THIRD: (0.995, 0.98),
          FOURTH: (0.985, 0.96), FIFTH: (0.995, 0.98), SIXTH: (0.99, 0.96),
          SEVENTH: (0.995, 0.98), EIGHTH: (0.965, 0.87), NINTH: (0.995, 0.98),
          TENTH: (0.995, 0.98), ELEVENTH: (0.98, 0.9), TWELFTH: (0.995, 0.98),
          THIRTEENTH: (0.9925, 0.975), FOURTEENTH: (0.995, 0.98), FIFTEENTH: (0.995, 0.98),
          SIXTEENTH: (0.99, 0.975), SEVENTEENTH: (0.99, 0.96), EIGHTEENTH: (0.94, 0.85),
          NINETEENTH: (0.965, 0.9)}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CAPITALS = ["London", "Berlin", "Paris", "Madrid"]


# -- the labelled splits ---------------------------------------------------------------------


def _figures(name: str, scores: Scores) -> str:
    families = ", ".join(
        f"{family} {scores.family_accuracy(family):.1%}" for family in sorted(scores.total)
    )
    misses = "\n".join(
        f"  {m['id']} ({m['family']}): want {m['expected']!r}, got {m['got']!r} by {m['method']}"
        for m in scores.misses
    )
    return f"{name}: {scores.accuracy:.1%} of {sum(scores.total.values())} ({families})\n{misses}"


def test_training_split_is_large_and_covers_every_family() -> None:
    kinds = Counter(case["type"] for case in CASES)
    families = Counter(case.get("family", "original") for case in CASES)
    assert len(CASES) >= 700
    assert 0.4 <= kinds["mcq"] / len(CASES) <= 0.6
    assert len({case["id"] for case in CASES}) == len(CASES)
    assert all(families[family] >= 40 for family in FAMILIES)
    assert sum(case["finish_reason"] == "length" for case in CASES) >= 10
    assert sum(case["expected"] is None for case in CASES) >= 50
    assert max(len(case["choices"] or []) for case in CASES) >= 12


def test_training_split_is_read_as_a_grader_reads_it() -> None:
    scores = score(CASES)
    print("\n" + _figures("training split", scores))
    assert scores.accuracy >= 0.995, _figures("training split", scores)
    for family in FAMILIES:
        assert scores.family_accuracy(family) >= 0.98, _figures("training split", scores)


@pytest.mark.parametrize("split", list(FLOORS), ids=lambda path: path.stem)
def test_held_out_split_is_unchanged_since_it_was_written(split: Path) -> None:
    assert hashlib.sha256(split.read_bytes()).hexdigest() == SPLIT_SHA256[split]


@pytest.mark.parametrize("split", list(FLOORS), ids=lambda path: path.stem)
def test_held_out_split_is_read_as_a_grader_reads_it(split: Path) -> None:
    # Written before the extractor was read; the first three tuned on since (tests/data/README.md).
    cases = read_cases(split)
    assert len(cases) >= 300 and all(case["family"] in FAMILIES for case in cases)
    assert all(sum(c["family"] == family for c in cases) >= 50 for family in FAMILIES)
    scores = score(cases)
    print("\n" + _figures(split.stem, scores))
    overall, per_family = FLOORS[split]
    assert scores.accuracy >= overall, _figures(split.stem, scores)
    for family in FAMILIES:
        assert scores.family_accuracy(family) >= per_family, _figures(split.stem, scores)


def test_grading_the_training_split_agrees_with_its_correct_labels() -> None:
    report = grade(as_results(CASES))
    graded = [row.extractions[0].correct for row in report.rows]
    agree = sum(g == case["correct"] for g, case in zip(graded, CASES, strict=True))
    assert agree / len(CASES) >= 0.995
    assert report.to_dict()["accuracy"] == pytest.approx(sum(graded) / len(CASES))


# -- extraction, one behaviour at a time ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reasoning...\n\nThe answer is (B).", 1),
        ("Answer: B", 1),
        ("so the answer is b)", 1),
        ("After all that:\n\n**B**", 1),
        ("B.", 1),
        ("Option B", 1),
        ("I choose B", 1),
        ("Paris is on the Seine. The answer is Paris.", 2),
        ("The answer is (A). Wait, London is in England. The answer is (C).", 2),
        ("A city is a capital when... A quick check shows the answer is D.", 3),
        ("$\\boxed{C}$", 2),
        ('{"answer": "B", "why": "..."}', 1),
        ("Let's check whether the answer is A: no. The answer is C.", 2),
        ("The answer is a bit subtle, but it is none of the above.", None),
        ("I cannot determine the answer from the information given.", None),
        ("The answer is E.", None),  # only four options
    ],
)
def test_extract_choice(text: str, expected: int | None) -> None:
    assert extract_choice(text, CAPITALS) == expected


def test_truncated_choice_needs_an_explicit_statement() -> None:
    cut = "Option A: London is in the UK. Option B: Berlin is in Germany. Option C"
    assert extract_choice(cut, CAPITALS, truncated=True) is None
    assert (
        extract_choice("The answer is (C). Now let me also explain", CAPITALS, truncated=True) == 2
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("First \\boxed{3}, then corrected: \\boxed{4}", "4"),
        ("\\fbox{7}", "7"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        (
            "Final Answer: The final answer is $\\dfrac{3}{4}$. I hope it is correct.",
            "\\frac{3}{4}",
        ),
        ("9 * 2 = <<9*2=18>>18\n#### 18", "18"),
        ("Answer: 1,000", "1000"),
        ("The answer is 42 apples.", "42"),
        ("The answer is $x = 3$.", "3"),  # the committed right-hand side
        ("It fell to -5 degrees.", "-5"),
        ("The answer is $25\\%$.", "25%"),
        ("The answer is 10 \\text{ cm}.", "10"),
        ("I cannot determine this without the 2 missing values.", None),
    ],
)
def test_extract_math(text: str, expected: str | None) -> None:
    assert extract_math(text) == expected


def test_truncated_math_without_a_final_answer_is_none() -> None:
    assert extract_math("Each costs 12, so 3 of them cost 36, then", truncated=True) is None
    assert extract_math("Each costs 12, so 3 of them cost 36, then") == "36"


@pytest.mark.parametrize(
    ("pred", "gold", "same"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("x=3", "3", True),
        ("1,000", "1000", True),
        ("25%", "0.25", True),
        ("2\\sqrt{3}", "\\sqrt{12}", True),
        ("\\boxed{7}", "7", True),
        ("3", "-3", False),
        ("\\pi", "3.14", False),
        (None, "3", False),
    ],
)
def test_is_equivalent(pred: str | None, gold: str, same: bool) -> None:
    assert is_equivalent(pred, gold) is same


def test_normalise_math_drops_wrappers_units_and_thousands_commas() -> None:
    assert normalise_math("$\\dfrac{1}{2}$") == "\\frac{1}{2}"
    assert normalise_math("\\$1,250") == "1250"
    assert normalise_math("54 \\text{ cm}^2") == "54"
    assert normalise_math("\\left( 1, 2 \\right)") == "( 1, 2 )"


# -- pathological input never hangs or raises ----------------------------------------------

PATHOLOGICAL = [
    "9^{9^{9^{9}}}",
    "(" * 300 + "1",
    "\\frac{" * 200 + "1" + "}" * 200,
    "10^{10^{10}}",
    "\\boxed{" * 5000,
    "answer" + " " * 20000 + "x",
]


@pytest.mark.parametrize("text", PATHOLOGICAL)
def test_pathological_math_is_wrong_not_an_error(text: str) -> None:
    started = time.monotonic()
    rows = [{"answer_correct": "5", "responses": [{"text": f"\\boxed{{{text}}}"}, {"text": text}]}]
    report = grade(rows, timeout=1)
    assert not any(e.correct for e in report.rows[0].extractions)
    assert is_equivalent(text, "5", timeout=1) is False
    assert time.monotonic() - started < 20


def test_timeouts_do_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert is_equivalent("9^{9^{9^{9}}}", "5", timeout=1) is False
    assert not [r for r in caplog.records if "Timeout during" in r.getMessage()]


def test_grading_off_the_main_thread_is_bounded_and_right() -> None:
    results: dict[str, Any] = {}

    def work() -> None:
        results["same"] = is_equivalent("\\frac{1}{2}", "0.5")
        started = time.monotonic()
        results["tower"] = is_equivalent("9^{9^{9^{9}}}", "5", timeout=1)
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert results["same"] is True
    assert results["tower"] is False
    assert results["seconds"] < 15


def test_a_stuck_worker_is_killed_and_counts_as_wrong() -> None:
    stuck = _VerifyWorker(
        code="import time; print('ready', flush=True); time.sleep(600)", slack=0.5
    )
    started = time.monotonic()
    try:
        assert stuck.verify("1", "1", 1) is False
        assert time.monotonic() - started < 10
        assert stuck._process is None  # killed; the next comparison starts a new child
    finally:
        stuck.close()


def test_a_worker_that_dies_counts_as_wrong() -> None:
    dying = _VerifyWorker(code="print('ready', flush=True)", slack=0.5)
    try:
        assert dying.verify("1", "1", 1) is False
    finally:
        dying.close()


def test_importing_extract_and_cli_loads_no_heavy_modules() -> None:
    code = (
        "import sys, promptmill.cli, promptmill.extract; "
        "print(sorted(m for m in ('math_verify', 'sympy', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.replace("'", '"'))
    assert "math_verify" not in loaded and "sympy" not in loaded


# -- the report's numbers ---------------------------------------------------------------------


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """The fraction of k-subsets of n samples (c correct) holding at least one correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_brute_force(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k))


def test_pass_at_k_is_stable_for_large_n() -> None:
    value = pass_at_k(1000, 3, 100)
    assert 0 < value < 1
    assert value == pytest.approx(1 - (900 * 899 * 898) / (1000 * 999 * 998))


def _mcq_row(uid: str, texts: list[str], *, category: str = "geo", **extra: Any) -> dict[str, Any]:
    return {
        "unique_id": uid,
        "question": "What is the capital of France?",
        "choices": CAPITALS,
        "choice_index_correct": 2,
        "answer_correct": "Paris",
        "category": category,
        "responses": [{"text": t, "finish_reason": "stop"} for t in texts],
        "status": "done",
        **extra,
    }


def _math_row(
    uid: str, gold: str, texts: list[str], *, category: str = "algebra"
) -> dict[str, Any]:
    return {
        "unique_id": uid,
        "question": "...",
        "choices": None,
        "choice_index_correct": None,
        "answer_correct": gold,
        "category": category,
        "responses": [{"text": t, "finish_reason": "stop"} for t in texts],
        "status": "done",
    }


def test_pass_at_k_keys_are_one_powers_of_two_and_k() -> None:
    def keys(k: int) -> list[str]:
        return list(grade([_mcq_row("q", ["Answer: C"] * k)]).to_dict()["pass_at_k"])

    assert keys(1) == ["1"]
    assert keys(4) == ["1", "2", "4"]
    assert keys(6) == ["1", "2", "4", "6"]
    assert keys(8) == ["1", "2", "4", "8"]


def test_majority_vote_ties_go_to_the_earliest_answer() -> None:
    first_wrong = grade([_mcq_row("q", ["Answer: A", "Answer: C", "Answer: C", "Answer: A"])])
    first_right = grade([_mcq_row("q", ["Answer: C", "Answer: A", "Answer: A", "Answer: C"])])
    assert first_wrong.rows[0].majority == "A"
    assert first_wrong.to_dict()["majority_accuracy"] == 0.0
    assert first_right.rows[0].majority == "C"
    assert first_right.to_dict()["majority_accuracy"] == 1.0


def test_failed_extractions_do_not_vote() -> None:
    texts = ["I cannot determine this.", "I cannot determine this.", "Answer: A"]
    report = grade([_mcq_row("q", texts)])
    assert report.rows[0].majority == "A"
    assert report.to_dict()["extraction_failure_rate"] == pytest.approx(2 / 3)


def test_equivalent_math_answers_vote_together() -> None:
    # two wrong answers that are the same number outvote one right answer
    report = grade([_math_row("q", "3", ["\\boxed{3}", "\\boxed{0.5}", "\\boxed{\\frac{1}{2}}"])])
    assert report.rows[0].majority_correct is False
    assert report.rows[0].majority == "0.5"
    # and equivalent right answers count as one answer too
    report = grade([_math_row("q", "0.5", ["\\boxed{4}", "\\boxed{1/2}", "\\boxed{0.50}"])])
    assert report.rows[0].majority_correct is True


def test_per_category_and_overall_numbers() -> None:
    rows = [
        _mcq_row("g1", ["Answer: C", "Answer: A"], category="geography"),
        _mcq_row("g2", ["Answer: B", "Answer: B"], category="geography"),
        _math_row("m1", "\\frac{1}{2}", ["\\boxed{0.5}", "#### 1/2"], category="algebra"),
    ]
    report = grade(rows).to_dict()
    assert report["rows"] == 3 and report["responses"] == 6 and report["failed_rows"] == 0
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["pass_at_k"] == pytest.approx({"1": 0.5, "2": 2 / 3})
    assert report["majority_accuracy"] == pytest.approx(2 / 3)  # g1 ties: C came first
    geography = report["per_category"]["geography"]
    assert geography == {
        "accuracy": 0.25,
        "pass_at_k": pytest.approx({"1": 0.25, "2": 0.5}),
        "majority_accuracy": 0.5,
        "rows": 2,
        "responses": 4,
    }
    assert report["per_category"]["algebra"]["accuracy"] == 1.0
    assert report["by_type"]["mcq"] == {"rows": 2, "responses": 4, "accuracy": 0.25}
    assert report["by_type"]["math"] == {"rows": 1, "responses": 2, "accuracy": 1.0}


def test_failed_rows_count_as_wrong_for_their_missing_responses() -> None:
    rows = [
        _mcq_row("full", ["Answer: C"] * 4),
        _mcq_row("partial", ["Answer: C"], status="failed", error="HTTP 500"),
        _mcq_row("none", [], status="failed", error="HTTP 500"),
    ]
    report = grade(rows)
    numbers = report.to_dict()
    assert report.k == 4
    assert numbers["failed_rows"] == 2
    assert numbers["responses"] == 5
    assert numbers["accuracy"] == pytest.approx(5 / 12)
    assert numbers["pass_at_k"]["1"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert numbers["pass_at_k"]["4"] == pytest.approx(2 / 3)
    assert numbers["majority_accuracy"] == pytest.approx(2 / 3)
    assert numbers["extraction_failure_rate"] == 0.0


@pytest.mark.parametrize(
    ("gold", "expected"), [("B", "B"), (1, "B"), ("Berlin", "B"), ("1", "B"), ("(d)", "D")]
)
def test_gold_field_may_hold_a_letter_an_index_or_the_option_text(gold: Any, expected: str) -> None:
    row = _mcq_row("q", ["Answer: B"], my_gold=gold)
    assert grade([row], gold_field="my_gold").rows[0].gold == expected


def test_type_auto_picks_per_row_and_type_can_be_forced() -> None:
    rows = [_mcq_row("q", ["Answer: C"]), _math_row("m", "7", ["\\boxed{7}"])]
    assert [r.type for r in grade(rows).rows] == ["mcq", "math"]
    forced = grade([_mcq_row("q", ["The answer is Paris"])], type="math")
    assert forced.rows[0].type == "math" and forced.rows[0].gold == "Paris"


def test_grade_returns_a_report_with_per_row_results() -> None:
    report = grade([_math_row("m", "7", ["\\boxed{7}", "no idea"])])
    assert isinstance(report, GradeReport)
    row = report.rows[0]
    assert (row.unique_id, row.category, row.gold, row.correct) == ("m", "algebra", "7", 1)
    assert [e.to_dict() for e in row.extractions] == [
        {"response_index": 0, "extracted": "7", "correct": True, "method": "boxed",
         "uncertain": False},
        {"response_index": 1, "extracted": None, "correct": False, "method": "none",
         "uncertain": True},
    ]


# -- bad input ------------------------------------------------------------------------------


def test_row_without_gold_names_the_row_and_the_fix() -> None:
    row = _math_row("m", "", ["\\boxed{7}"])
    with pytest.raises(InputError, match=r"row 1: no gold answer .*--gold-field"):
        grade([row])


def test_forcing_mcq_on_a_row_without_choices_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no 'choices' list; use --type math"):
        grade([_math_row("m", "7", ["\\boxed{7}"])], type="mcq")


def test_gold_index_outside_the_choices_is_an_input_error() -> None:
    with pytest.raises(InputError, match="outside the 4 choices"):
        grade([_mcq_row("q", ["Answer: B"], choice_index_correct=7)])


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    rows = [
        {
            **_mcq_row("q1", ["The answer is (C).", "Answer: A", "Paris. The answer is Paris."]),
            "usage": {"prompt_tokens": 10, "completion_tokens": 30},
            "model": "openai!gpt-4o-mini,temperature=0.7",
            "attempts": 1,
            "error": None,
        },
        {
            **_math_row(
                "q2", "\\frac{3}{4}", ["So \\boxed{0.75}", "#### 3/4", "The answer is 1/2"]
            ),
            "usage": {"prompt_tokens": 10, "completion_tokens": 30},
            "model": "openai!gpt-4o-mini,temperature=0.7",
            "attempts": 1,
            "error": None,
        },
        {
            **_math_row("q3", "4", []),
            "status": "failed",
            "error": "HTTP 500 from the server",
            "attempts": 8,
        },
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_cli_extract_end_to_end(results_file: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(results_file.read_bytes()).hexdigest()
    out, report_path = tmp_path / "extractions.jsonl", tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "promptmill", "extract", str(results_file),
         "--out", str(out), "--report", str(report_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "pass@1" in run.stdout and "majority" in run.stdout

    report = json.loads(report_path.read_text(encoding="utf-8"))
    required = {"accuracy", "pass_at_k", "majority_accuracy", "extraction_failure_rate"}
    assert required | {"per_category", "rows", "responses", "failed_rows"} <= set(report)
    assert report["rows"] == 3 and report["responses"] == 6 and report["failed_rows"] == 1
    assert report["accuracy"] == pytest.approx(4 / 9)
    assert report["pass_at_k"] == pytest.approx({"1": 4 / 9, "2": 2 / 3, "3": 2 / 3})
    assert report["majority_accuracy"] == pytest.approx(2 / 3)
    assert set(report["per_category"]) == {"geo", "algebra"}

    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["unique_id"] for row in lines] == ["q1", "q2", "q3"]
    assert lines[0]["responses"][0]["text"] == "The answer is (C)."  # the row's own fields
    assert [e["extracted"] for e in lines[0]["extractions"]] == ["C", "A", "C"]
    assert [e["correct"] for e in lines[1]["extractions"]] == [True, True, False]
    assert set(lines[1]["extractions"][0]) == {
        "response_index", "extracted", "correct", "method", "uncertain"
    }
    assert lines[2]["extractions"] == []
    assert hashlib.sha256(results_file.read_bytes()).hexdigest() == before


def test_cli_refuses_to_write_over_the_results_file(
    results_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = results_file.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", str(results_file), "--out", str(results_file)])
    assert exit_info.value.code == 2
    assert "is the results file itself" in capsys.readouterr().err
    assert results_file.read_bytes() == before


def test_cli_names_the_file_and_line_of_a_bad_json_line(
    results_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(results_file.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"{bad}, line 4: not valid JSON" in err and "fix or delete that line" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_cli_names_the_line_of_a_row_without_gold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.jsonl"
    rows = [_math_row("m1", "7", ["\\boxed{7}"]), _math_row("m2", "", ["\\boxed{7}"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"{path}, line 2: no gold answer in field 'answer_correct'" in err
    assert "--gold-field" in err
