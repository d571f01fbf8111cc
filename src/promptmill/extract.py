"""Answer extraction: the final answer of each response, and ``grade`` over a results file.

Each response is reduced to one answer: a choice letter for multiple choice, a normalised
LaTeX string for math. The statement stated *last* wins, so a model that changes its mind
is graded on what it ended with; a truncated response (``finish_reason == "length"``) is
graded only on an explicit final-answer statement, never on a number or letter that merely
happened to be in its unfinished reasoning. Judging and the report's numbers live in
``promptmill.grading``; the names users need are re-exported here.

Each extraction names its ``method``. Multiple choice: ``boxed``, ``answer_statement``
("the answer is (B)", "I choose B"), ``option_text`` (the option restated in words),
``letter_is_correct`` ("B is correct"), ``bare`` (a line holding only the letter),
``letter_and_text`` ("B. Paris" alone on a line), ``first_line`` / ``last_line`` (the one
option a headline or the closing line names). Math: ``boxed`` (the last ``\boxed{}`` or
``\fbox{}``), ``final_answer``, ``gsm8k`` (``#### 42``), ``answer_statement``,
``last_statement`` (the value after the closing line's last "is" or "="), ``last_number``.
Nothing found: ``truncated``, ``refusal`` or ``none``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptmill.errors import InputError
from promptmill.grading import (
    DEFAULT_TIMEOUT,
    LETTERS,
    Extraction,
    GradeReport,
    RowGrade,
    majority_vote,
    math_equal,
    math_gold,
    mcq_gold,
    pass_at_k,
    read_results,
    row_responses,
    row_type,
    same_file,
    written_whole,
)

__all__ = [
    "Extraction",
    "GradeReport",
    "RowGrade",
    "extract_choice",
    "extract_math",
    "grade",
    "is_equivalent",
    "normalise_math",
    "pass_at_k",
]


# ---------------------------------------------------------------------------------------
# shared text helpers


def _closing_braces(text: str) -> dict[int, int]:
    """For each ``{`` that is closed, the index just past its ``}``; one pass, so nested
    unclosed boxes cost linear time, not a scan to the end per box."""
    closes: dict[int, int] = {}
    opened: list[int] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # \{ and \} are literal braces, not grouping
            continue
        if char == "{":
            opened.append(i)
        elif char == "}" and opened:
            closes[opened.pop()] = i + 1
        i += 1
    return closes


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed\s+(-?[\w.]+)")


def _boxed(text: str) -> list[tuple[int, int, str]]:
    """Every complete ``\\boxed{...}`` / ``\\fbox{...}`` as (start, end, content)."""
    closes = _closing_braces(text) if "\\boxed" in text or "\\fbox" in text else {}
    found = []
    for match in _BOXED.finditer(text):
        end = closes.get(match.end() - 1)
        if end is not None:  # an unclosed box: the response was cut inside it
            found.append((match.start(), end, text[match.end() : end - 1]))
    found += [(m.start(), m.end(), m.group(1)) for m in _BOXED_BARE.finditer(text)]
    return sorted(found)


def _squeeze(text: str) -> str:
    """Whitespace runs cut short, so no pattern can backtrack over a long one."""
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r"\n[ \n]*\n", "\n\n", text)


_REFUSAL = re.compile(
    r"\b(?:i(?:\s+(?:cannot|can't|can\s+not|am\s+unable\s+to|am\s+not\s+able\s+to|won't|will\s+not)"
    r"|'m\s+(?:unable|not\s+able)\s+to)\s+(?:determine|answer|solve|tell|say|decide|choose|pick|"
    r"provide|help|be\s+certain|be\s+sure)|cannot\s+be\s+(?:determined|answered)|"
    r"not\s+enough\s+information|insufficient\s+information|impossible\s+to\s+(?:determine|tell|say))",
    re.IGNORECASE,
)
# "Let's check whether the answer is B" states a hypothesis, not an answer.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|whether|suppose|supposing|assume|assuming|unless)\b[^.!?\n]*$",
    re.IGNORECASE,
)


def _hypothetical(text: str, start: int) -> bool:
    """Whether the statement at ``start`` sits in a clause that only entertains an answer."""
    return _HYPOTHETICAL.search(text[max(0, start - 120) : start]) is not None


def _no_answer_method(text: str, truncated: bool) -> str:
    """Why nothing was extracted: ``truncated``, ``refusal`` or ``none``."""
    if truncated:
        return "truncated"
    return "refusal" if _REFUSAL.search(text) else "none"


# ---------------------------------------------------------------------------------------
# multiple choice

_CHOICE_ANCHOR = re.compile(
    r"""
    (?:
        \b(?:(?:final|correct|right|best|my|the|most\s+likely|only)\s+)*answer(?:\s+choice)?
            \s*"?\s*(?:is|would\s+be|should\s+be|must\s+be|will\s+be|=|:|-|→|->)
      | \b(?:correct|right|best|final|my|closest|most\s+(?:likely|accurate|appropriate|plausible))
            \s+(?:(?:option|choice|pick|selection|one|match|fit)\s*)?(?:is|would\s+be|:|=|-)
      | \bi(?:\s+would|\s+will|'ll|'d|\s+shall)?\s+(?:choose|pick|select|go\s+with|opt\s+for)
      | \b(?:going|go|stick)\s+with
    )
    \s*(?:(?:therefore|thus|clearly|definitely|indeed|likely|probably|then|actually|still)\s+)?
    (?:(?:option|choice|answer|letter)\s+)?
    """,
    re.IGNORECASE | re.VERBOSE,
)
_LETTER_AT = re.compile(
    r"""\s*[:\-]?\s*(?P<open>[(\["'])?\s*(?P<letter>[A-Za-z])\s*(?P<close>[)\]"'])?(?![A-Za-z0-9])"""
)
_LETTER_IS_CORRECT = re.compile(
    r"(?<![A-Za-z])(?i:option\s+|choice\s+)?(?:\((?P<paren>[A-Za-z])\)|(?P<letter>[A-Z]))"
    r"\s+(?i:is|would\s+be|must\s+be|seems|looks|fits|appears)\s+(?i:the\s+|to\s+be\s+)?"
    r"(?i:correct|right|best|better|true|most\s+(?:likely|accurate|appropriate|plausible))\b"
    r"(?!\s+(?i:only|if|when|for|in))"
)
_THEREFORE_LETTER = re.compile(
    r"(?i:\b(?:therefore|thus|hence|so))\s*,?\s*(?i:option\s+|choice\s+)?"
    r"\(?([A-Z])\)?\s*[.!]?[ \t]*$",
    re.MULTILINE,
)
_BARE_LETTER_LINE = re.compile(
    r"^[ \t>#-]*(?i:(?:final\s+)?answer\s*:?\s*)?(?i:option|choice)?\s*[(\[]?([A-Za-z])[)\]]?"
    r"[.:)]?[ \t]*$",
    re.MULTILINE,
)
_LETTER_PREFIX_LINE = re.compile(r"^[ \t>#-]*[(\[]?([A-Z])[)\].:]\s+(.+?)[ \t]*$", re.MULTILINE)
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_CHOICE_MARKUP = re.compile(r"\*|`|\$|\\[()\[\]]")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def _clean_for_choice(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Text without markdown and LaTeX wrappers, each box turned into an answer statement;
    and where those statements are in it."""
    pieces: list[str] = []
    boxes: list[tuple[int, int]] = []
    length = last = 0
    for start, end, content in _boxed(text):
        if start < last:
            continue  # a box inside a box: the outer one already covers it
        plain = _strip_choice_markup(text[last:start])
        statement = _strip_choice_markup(f"\nAnswer: {content}\n")
        boxes.append((length + len(plain), length + len(plain) + len(statement)))
        pieces += [plain, statement]
        length += len(plain) + len(statement)
        last = end
    pieces.append(_strip_choice_markup(text[last:]))
    return "".join(pieces), boxes


def _strip_choice_markup(text: str) -> str:
    """Text without bold/code/math markers and ``\\text{}`` wrappers."""
    return _CHOICE_MARKUP.sub("", _TEXT_COMMAND.sub(r"\1", text))


def _normalise_option(text: str) -> str:
    """Lower-case words of an option or statement, so restated options can be matched."""
    text = _TEXT_COMMAND.sub(r"\1", text)
    text = re.sub(r"[*`$]|\\[()\[\]]", "", text).lower()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .,;:!?\"'")


def _option_texts(choices: Sequence[Any]) -> list[str]:
    """Each option's normalised text, without a leading ``A.`` / ``(A)`` the dataset may add."""
    texts = []
    for index, choice in enumerate(choices):
        text = str(choice)
        if index < len(LETTERS):
            text = re.sub(rf"^\s*\(?{LETTERS[index]}[).:]\s+", "", text)
        texts.append(_normalise_option(text))
    return texts


def _option_in(span: str, options: Sequence[str], *, at_start: bool = False) -> int | None:
    """The option whose text the span states (earliest mention; the longest on a tie)."""
    span = _normalise_option(span)
    best: tuple[int, int, int] | None = None
    for index, option in enumerate(options):
        if not option:
            continue
        found = re.search(rf"(?<![\w]){re.escape(option)}(?![\w])", span)
        if found is None or (at_start and found.start() != 0):
            continue
        key = (found.start(), -len(option), index)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def _letter_after(text: str, pos: int, count: int) -> int | None:
    """The choice index of a letter stated right at ``pos`` (after an answer anchor)."""
    match = _LETTER_AT.match(text, pos)
    if match is None:
        return None
    letter = match.group("letter")
    if letter.islower():
        # a lone lower-case letter is usually the article "a" or a word's first letter:
        # only trust it when wrapped or followed by punctuation / end of line
        wrapped = match.group("open") or match.group("close")
        after = text[match.end() : match.end() + 1]
        if not wrapped and after not in ("", "\n", ".", ",", ";", ":", "!"):
            return None
    index = LETTERS.index(letter.upper())
    return index if index < count else None


def _choice_candidates(text: str, options: Sequence[str]) -> list[tuple[int, int, str]]:
    """Every explicit answer statement as (position, choice index, method)."""
    count = len(options)
    found: list[tuple[int, int, str]] = []
    for match in _CHOICE_ANCHOR.finditer(text):
        if _hypothetical(text, match.start()):
            continue
        rest = text[match.end() : match.end() + 300].split("\n", 1)[0]
        # "The answer is A stone" where "A stone" is option C: the restated text wins
        index = _option_in(rest, options, at_start=True)
        method = "option_text"
        if index is None:
            index, method = _letter_after(text, match.end(), count), "answer_statement"
        if index is None:
            index, method = _option_in(rest, options), "option_text"
        if index is not None:
            found.append((match.end(), index, method))
    for match in _LETTER_IS_CORRECT.finditer(text):
        letter = (match.group("paren") or match.group("letter")).upper()
        if LETTERS.index(letter) < count and not _hypothetical(text, match.start()):
            found.append((match.start(), LETTERS.index(letter), "letter_is_correct"))
    for regex, method in ((_THEREFORE_LETTER, "answer_statement"), (_BARE_LETTER_LINE, "bare")):
        for match in regex.finditer(text):
            index = LETTERS.index(match.group(1).upper())
            if index < count:
                found.append((match.start(1), index, method))
    # "B. Paris" on a line of its own states an answer, unless the response lists the options
    prefixed = [
        (m.start(), LETTERS.index(m.group(1)), m.group(2))
        for m in _LETTER_PREFIX_LINE.finditer(text)
    ]
    if len({index for _, index, _ in prefixed}) == 1:
        for start, index, rest in prefixed:
            if index < count and _normalise_option(rest) == options[index]:
                found.append((start, index, "letter_and_text"))
    return found


def _named_options(line: str, options: Sequence[str]) -> set[int]:
    """The options a line names, by "(C)" or by their text."""
    named = {LETTERS.index(m.group(1)) for m in _PAREN_LETTER.finditer(line)}
    if not named:
        text = _normalise_option(line)
        named = {
            i
            for i, option in enumerate(options)
            if option and re.search(rf"(?<![\w]){re.escape(option)}(?![\w])", text)
        }
    return {i for i in named if i < len(options)}


def _choice_fallback(raw: str, text: str, options: Sequence[str]) -> tuple[int | None, str]:
    """Without an explicit statement: a headline answer, or the one option the end names."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    raw_lines = [line for line in raw.strip().splitlines() if line.strip()]
    if not lines:
        return None, "none"
    first = _LETTER_PREFIX_LINE.match(lines[0])
    listed = {m.group(1) for m in _LETTER_PREFIX_LINE.finditer(text)}
    if first and len(listed) == 1 and LETTERS.index(first.group(1)) < len(options):
        return LETTERS.index(first.group(1)), "first_line"
    # answer-first style: a bold first line is the headline, the rest explains the others
    headline = re.fullmatch(r"\s*(\*\*|__)(.+)\1[.:]?\s*", raw_lines[0]) if raw_lines else None
    if headline:
        named = _named_options(_strip_choice_markup(headline.group(2)), options)
        if len(named) == 1:
            return named.pop(), "first_line"
    if len(listed) > 1 and _LETTER_PREFIX_LINE.match(lines[-1]):
        return None, "none"  # it ends by listing the options, not by choosing one
    named = _named_options(lines[-1], options)
    if len(named) == 1:
        return named.pop(), "last_line"
    return None, "none"


def _extract_choice(text: str, choices: Sequence[Any], truncated: bool) -> tuple[int | None, str]:
    """The chosen option's index and the method that found it."""
    text = _squeeze(text)
    cleaned, boxes = _clean_for_choice(text)
    options = _option_texts(choices)
    candidates = _choice_candidates(cleaned, options)
    if candidates:
        # the last statement wins; on a tie, the first kind found (an explicit anchor)
        position, index, method = max(candidates, key=lambda c: c[0])
        boxed = any(start <= position < end for start, end in boxes)
        return index, "boxed" if boxed else method
    if truncated or _REFUSAL.search(cleaned):
        return None, _no_answer_method(cleaned, truncated)
    return _choice_fallback(text, cleaned, options)


def extract_choice(text: str, choices: Sequence[Any], *, truncated: bool = False) -> int | None:
    """The 0-based index of the option a response chose, or None if it states none."""
    return _extract_choice(text, choices, truncated)[0]


# ---------------------------------------------------------------------------------------
# math

_FINAL_ANSWER = re.compile(
    r"final\s+answer\s*(?:\*\*)?\s*(?:is|:|=|would\s+be|will\s+be)?\s*(?:is\b)?\s*:?", re.IGNORECASE
)
_GSM8K = re.compile(r"^[ \t]*####[ \t]*(?=\S)", re.MULTILINE)
_ANSWER_HEADING = re.compile(r"^[ \t#*]*answer[ \t*:]*$", re.IGNORECASE | re.MULTILINE)
_ANSWER_IS = re.compile(
    r"\banswer\s*(?:\*\*)?\s*(?:is\b|:|=|would\s+be|should\s+be|must\s+be|will\s+be)\s*"
    r"(?:(?:therefore|thus|then|simply|just|exactly)\s+)?:?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(
    r"\.(?:\s|$)|;|!|\?|,\s+(?=[A-Za-z]{2,})|\s+(?:because|since|which|as|so|for|and\s+(?:that|this|the))\b"
)
_MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
# "$40 * 0.25 = $10": a "$" just before a digit is a price, not the end of inline math
_CURRENCY_AFTER = re.compile(r"\d")
_INLINE_MATH = re.compile(r"\$([^$]+)\$(?!\d)|\\\((.+?)\\\)")
# first words of prose that can follow "the answer is" without being an answer
_PROSE_WORDS = (
    "a an the final not to that this it be is in of on at by if we i so because since which"
)
_STOPWORDS = frozenset(
    f"{_PROSE_WORDS} when clear obvious given found unknown undefined none".split()
)
_MAX_TRIED = 20  # anchors tried per kind, from the last: more is prose, not an answer
_MAX_ANSWER = 200  # characters: a longer "answer" is a runaway span or a pathological input
_CLOSING_VERB = re.compile(
    r"(?:\b(?:is|are|equals|gives|get|gets|has|have|be)\b|=)\s*", re.IGNORECASE
)
_LATEX_ATOM = r"\\(?:pi|sqrt\s*\{[^{}]+\}|sqrt\s*\d)"
_NUMBER = re.compile(
    r"\\[dt]?frac\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}"
    rf"|(?<![\w.\\])(?:(?<![\w)\]}}])-)?\$?(?:(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?)?{_LATEX_ATOM}"
    r"|(?<![\w.\\])(?:(?<![\w)\]}])-)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?"
)


def _math_span(text: str, start: int) -> str | None:
    """The answer stated right after an anchor: one math span, or the rest of the sentence."""
    rest = text[start : start + 600].lstrip(" \t*:_")
    if rest.startswith("\n"):
        rest = rest.lstrip().lstrip("*:_ \t")  # "### Final Answer" with the value below it
    for opening, closing in _MATH_DELIMITERS:
        if rest.startswith(opening):
            end = rest.find(closing, len(opening))
            if end > 0 and not (closing == "$" and _CURRENCY_AFTER.match(rest, end + 1)):
                return rest[len(opening) : end]
            if opening != "$":
                return None  # display math cut off before it closed
    line = rest.split("\n", 1)[0]
    inline = _INLINE_MATH.search(line)
    if inline and len(line[: inline.start()].split()) <= 3:
        return inline.group(1) or inline.group(2)
    return _SENTENCE_END.split(line, maxsplit=1)[0].replace("**", "")


def _plausible(answer: str) -> bool:
    """Whether a sentence fragment looks like an answer rather than more prose."""
    if not answer or len(answer) > _MAX_ANSWER:
        return False
    if re.search(r"[\d\\]", answer):
        return True
    words = answer.split()
    return len(words) <= 3 and words[0].lower().strip("*") not in _STOPWORDS


_UNICODE_MATH = {
    "π": "\\pi",
    "−": "-",
    "×": "\\times",
    "·": "\\cdot",
    "√": "\\sqrt",
    "∞": "\\infty",
}


def normalise_math(answer: str) -> str:
    """LaTeX answer in a canonical spelling: no wrappers, units, spacing or thousands commas."""
    text = re.sub(
        r"^(?:approximately|about|roughly|around|exactly|simply|just)\s+",
        "",
        _squeeze(answer).strip(),
    )
    boxed = _boxed(text)
    if boxed:
        text = boxed[-1][2]
    text = re.sub(r"^(\$\$?|\\\[|\\\()|(\$\$?|\\\]|\\\))$", "", text.strip()).strip()
    text = text.split("≈")[0].split("\\approx")[0].strip()  # the exact value comes first
    for symbol, latex in _UNICODE_MATH.items():
        text = text.replace(symbol, latex)
    # a closing remark, "5 (since x > 0)", but not an interval such as (5, \infty)
    text = re.sub(r"\s*\((?=[^()]*(?<![\\A-Za-z])[A-Za-z]{3,})[^()]*\)$", "", text)
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = re.sub(r"\\sqrt\s*(\d+|[A-Za-z](?![A-Za-z]))", r"\\sqrt{\1}", text)  # \sqrt50
    text = re.sub(r"\\(?:left|right)(?![A-Za-z])|\\displaystyle", "", text)
    text = re.sub(r"\\[,;:! ]|\\q?quad\b|~", " ", text)
    text = re.sub(r"\^\s*\{?\\circ\}?|\\circ|°", "", text)
    text = text.replace("\\%", "%").replace("\\$", "$")
    whole = re.fullmatch(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", text)
    if whole:
        text = whole.group(1)
    # units after a number: "10 \text{ cm}^2", "42 apples", "5 m/s"
    text = re.sub(
        r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{[^{}]*\}(?:\^\{?\d\}?)?(?:/\S+)?$", "", text
    )
    units = re.fullmatch(r"(\$?-?\$?\d[\d,]*(?:\.\d+)?%?)\s+(?!and\b|or\b)[A-Za-z][\w./^ ]*", text)
    if units:
        text = units.group(1)
    text = re.sub(r"^-?\$|^\$", lambda m: "-" if m.group(0).startswith("-") else "", text)
    text = text.replace("$", "")
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?", text):
        text = text.replace(",", "")
    text = re.sub(r"\s*=\s*", "=", text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(".").strip()
    return text


def _extract_math(text: str, truncated: bool) -> tuple[str | None, str]:
    """The final math answer of a response and the method that found it."""
    text = _squeeze(text)
    boxed = [content for _, _, content in _boxed(text) if content.strip()]
    if boxed:
        return normalise_math(boxed[-1]), "boxed"
    for regex, method in (
        (_FINAL_ANSWER, "final_answer"),
        (_ANSWER_HEADING, "final_answer"),
        (_GSM8K, "gsm8k"),
        (_ANSWER_IS, "answer_statement"),
    ):
        for match in list(regex.finditer(text))[-_MAX_TRIED:][::-1]:
            if method == "answer_statement" and _hypothetical(text, match.start()):
                continue
            span = _math_span(text, match.end())
            answer = normalise_math(span) if span else ""
            if _plausible(answer):
                return answer, method
    if truncated or _REFUSAL.search(text):
        return None, _no_answer_method(text, truncated)
    # an unmarked ending such as "So sin 60° = \\sqrt{3}/2." states its value after its last verb
    last_line = text.rstrip().rsplit("\n", 1)[-1]
    for match in list(_CLOSING_VERB.finditer(last_line))[-_MAX_TRIED:][::-1]:
        span = _math_span(last_line, match.end())
        answer = normalise_math(span) if span else ""
        # "is less than 7" goes on; "is 1/6", "is \\sqrt{3}/2", "is x = 3" is a value
        if _plausible(answer) and re.match(r"[-+$(\[\d.]|\\(?:pi|sqrt|frac)|[a-z]=", answer):
            return answer, "last_statement"
    numbers = _NUMBER.findall(text)
    if numbers and len(numbers[-1]) <= _MAX_ANSWER:
        return normalise_math(numbers[-1]), "last_number"
    return None, "none"


def extract_math(text: str, *, truncated: bool = False) -> str | None:
    """The final answer of a math response, LaTeX-normalised, or None if it states none."""
    return _extract_math(text, truncated)[0]


def is_equivalent(pred: str | None, gold: str | None, *, timeout: int = DEFAULT_TIMEOUT) -> bool:
    """Whether a math answer equals the gold answer by math-verify (``1/2`` = ``0.5``)."""
    if pred is None or gold is None:
        return False
    return math_equal(normalise_math(pred), normalise_math(gold), timeout=timeout)


def _grade_row(
    row: Mapping[str, Any],
    where: str,
    line: int,
    requested: str,
    gold_field: str | None,
    equivalent: Callable[[str, str], bool],
) -> RowGrade:
    """Extract and judge every response of one row."""
    kind = row_type(row, requested)
    responses = row_responses(row, where)
    extractions = []
    if kind == "mcq":
        choices = row["choices"] if isinstance(row.get("choices"), list) else []
        gold_index = mcq_gold(row, gold_field, where)
        gold = LETTERS[gold_index]
        for index, (text, truncated) in enumerate(responses):
            choice, method = _extract_choice(text, choices, truncated)
            letter = None if choice is None else LETTERS[choice]
            extractions.append(Extraction(index, letter, choice == gold_index, method))
        same: Callable[[str, str], bool] = str.__eq__
    else:
        gold = math_gold(row, gold_field, where, normalise_math)
        for index, (text, truncated) in enumerate(responses):
            answer, method = _extract_math(text, truncated)
            correct = answer is not None and equivalent(answer, gold)
            extractions.append(Extraction(index, answer, correct, method))
        same = equivalent
    majority, majority_correct = majority_vote(extractions, same)
    category = row.get("category")
    return RowGrade(
        line=line,
        unique_id=row.get("unique_id"),
        category=str(category) if category not in (None, "") else "(none)",
        type=kind,
        gold=gold,
        extractions=extractions,
        status_failed=row.get("status") == "failed",
        majority=majority,
        majority_correct=majority_correct,
    )


def grade(
    rows: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    *,
    type: str = "auto",  # noqa: A002  # the CLI's --type, by design
    gold_field: str | None = None,
    out: str | os.PathLike[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
) -> GradeReport:
    """Grade a results file (or its rows); write per-response extractions to ``out`` if given.

    ``type`` is ``mcq``, ``math`` or ``auto`` (by whether a row has choices). Gold answers
    come from the row's ``choice_index_correct`` / ``answer_correct`` or from ``gold_field``.
    ``out`` is written whole or not at all and may not be the results file itself.
    """
    if type not in ("auto", "mcq", "math"):
        raise InputError(f"type {type!r} is not one of auto, mcq, math")
    if isinstance(rows, (str, os.PathLike)):
        source = Path(rows)
        numbered: Iterable[tuple[int, str, Mapping[str, Any]]] = read_results(source)
    else:
        source = None
        numbered = ((i, f"row {i}", row) for i, row in enumerate(rows, 1))
    target = Path(out) if out is not None else None
    if target is not None and source is not None and same_file(target, source):
        raise InputError(f"--out {target} is the results file itself; write to another path")
    cache: dict[tuple[str, str], bool] = {}

    def equivalent(pred: str, gold: str) -> bool:
        if (pred, gold) not in cache:
            cache[(pred, gold)] = math_equal(pred, gold, timeout=timeout)
        return cache[(pred, gold)]

    graded = []
    with written_whole(target) as writer:
        for line, where, row in numbered:
            if not isinstance(row, Mapping):
                raise InputError(f"{where}: expected a mapping per row, got {row!r:.40}")
            result = _grade_row(row, where, line, type, gold_field, equivalent)
            graded.append(result)
            if writer is not None:
                extractions = [e.to_dict() for e in result.extractions]
                writer.write(
                    json.dumps({**row, "extractions": extractions}, ensure_ascii=False) + "\n"
                )
    k = max((len(r.extractions) for r in graded), default=0) or 1
    return GradeReport(rows=graded, k=k)
