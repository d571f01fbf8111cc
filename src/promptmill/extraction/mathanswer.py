"""Math: the value a response finally commits to, or None.

Candidates, strongest first: ``\\boxed{}``, ``<answer>``, JSON, "final answer", ``####``, "the
answer is"; a table's marked total row or a bold opening value; the closing sentence's
statement ("So y = 11 when x = 2." is 11, "the minimum is -5, attained at x = -3" is -5); and
only where nothing states a value, the last number. A statement wavering between two values
("either 6 or 8", "somewhere between 55 and 65") commits to none.
"""

from __future__ import annotations

import re
from decimal import Decimal

from promptmill.extraction.asked import (
    SEVERAL,
    asked_clause,
    asked_quantity,
    asked_variable,
    asked_words,
    asks_several,
    commentary,
    givens,
    one_solution,
    other_quantity,
    plain_question,
    recaps,
)
from promptmill.extraction.commitment import (
    absolute_of,
    another_of_kind,
    asked_quantity_of,
    commits,
    committed_index,
    could_aside,
    counted_noun,
    excluded_case,
    extreme_of_set,
    in_asked_unit,
    marked_value,
    named_clause,
    named_value,
    ordinal_of_counted,
    other_instance,
    unasked_rounding,
    what_if,
)
from promptmill.extraction.mathnorm import (
    NUMBER_WORD_BODY,
    latexify,
    normalise_math,
    number_word,
)
from promptmill.extraction.mathvalue import (
    HEDGE,
    HEDGED,
    MAX_ANSWER,
    MAX_TRIED,
    as_math,
    blank,
    closing_statement,
    settle,
    stated_value,
    undated,
    wavers,
)
from promptmill.extraction.text import (
    CHECK,
    CONCLUSION,
    CORRECTION,
    DIGIT,
    MEDIUM,
    REJECTED,
    STRONG,
    UNDECIDED,
    WEAK,
    Candidate,
    answer_rows,
    asked_fields,
    boxed,
    compiled,
    decide,
    first_line,
    hypothetical,
    json_answers,
    refused,
    sentences,
    settled,
    side_by_side,
    squeeze,
    table_rows,
    tagged,
    unbold,
)

_FINAL_ANSWER = re.compile(
    r"final\s+answer\s*(?:\*\*)?\s*(?:is|:|=|would\s+be|will\s+be)?\s*(?:is\b)?\s*:?",
    re.IGNORECASE,
)
_GSM8K = re.compile(r"^[ \t]*####[ \t]*(?=\S)", re.MULTILINE)
_ANSWER_HEADING = re.compile(r"^[ \t#*]*answer[ \t*:]*$", re.IGNORECASE | re.MULTILINE)
_ANSWER_IS = re.compile(
    r"\banswer\s*(?:\*\*)?\s*(?:is\b|:|=|would\s+be|should\s+be|must\s+be|will\s+be)\s*"
    r"(?:(?:therefore|thus|then|simply|just|exactly|actually|really|clearly|definitely|indeed|"
    r"still|now|probably)\s+)?:?"
    r"|\bi(?:'ll|\s+will|'d|\s+would)\s+(?:say|go\s+with|answer|guess)\b\s*:?"
    r"|\b(?P<plural>answers)\s+are\b\s*:?",
    re.IGNORECASE,
)
# "Answer — the sale price comes to $40.": a dash after a leading "Answer"
_ANSWER_DASH = re.compile(r"^[ \t#*_]*answer[ \t*_]*[—–][ \t*_]*", re.IGNORECASE | re.MULTILINE)
_ANCHORS = (
    (_FINAL_ANSWER, "final_answer"),
    (_ANSWER_HEADING, "final_answer"),
    (_GSM8K, "gsm8k"),
    (_ANSWER_IS, "answer_statement"),
    (_ANSWER_DASH, "answer_statement"),
)
# "Both 6 and -6 are 6 units from zero.": the values the sentence is about are the answer
_BOTH = re.compile(r"^\s*(?:both\s+)?(-?\d+(?:\.\d+)?)\s+and\s+(-?\d+(?:\.\d+)?)\s+are\b",
                   re.IGNORECASE)


_CHECKED = re.compile(r"\((?=[^()]*(?:[✓✔]|\bcheck))[^()]*\)", re.IGNORECASE)
_PASSED = re.compile(r"\s*[✓✔]|.*[✓✔]\W*$", re.DOTALL)
_NUMBER = re.compile(
    r"\\[dt]?frac\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}"
    r"|(?<![\w.\\])(?:(?<![\w)\]}])-)?\$?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)?"
    r"\\(?:pi|sqrt\s*\{[^{}]+\}|sqrt\s*\d)"
    r"|(?<![\w.\\])(?:(?<![\w)\]}])-)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?"
)


_COUNT_IN_WORDS = re.compile(
    r"(?P<lead>\b(?:has|have|had|contains?|holds?|needs?|uses?|gets?|takes?|makes?|are|were|"
    r"is|was)\s+(?:exactly\s+|only\s+|just\s+)?|:\s*)"  # ": twelve edges in total"
    rf"(?P<count>{NUMBER_WORD_BODY})"
    r"(?P<first>\s+[a-z]{3,})(?P<second>\s+[a-z]{3,})?",
    re.IGNORECASE,
)


def _explicit(text: str, question: str | None = None) -> list[Candidate]:
    """Statements that give the answer outright."""
    found = []
    previous: tuple[int, str] | None = None  # the last box's end and value
    for start, end, content in boxed(text):
        value = stated_value(as_math(content)) if content.strip() else None
        if not value:
            continue
        if previous and previous[1] != value and (side_by_side(text[previous[0] : start])
                                                  or _OR_IS_IT.search(text[previous[0] : start])):
            # "\boxed{7} or \boxed{3}", "\boxed{21}, or is it \boxed{19}?": two answers
            # offered, neither chosen
            value = HEDGE
        found.append(Candidate(start, value, "boxed" if value != HEDGE else HEDGE, STRONG))
        previous = end, value
    for start, content in tagged(text):
        value = stated_value(as_math(content))
        if value is not None:
            found.append(Candidate(start, value, "answer_tag", STRONG))
    for start, raw in json_answers(text):
        if isinstance(raw, list):
            # {"solutions": [4, 5]} for a quadratic: its values; for one quantity, a hedge
            listed = settle(", ".join(map(str, raw))) if raw and asks_several(question) else None
            found.append(Candidate(start, listed, "json", STRONG) if listed and listed != HEDGE
                         else Candidate(start, HEDGE, HEDGE, STRONG))
            continue
        value = stated_value(as_math(str(raw)))
        if value is not None:
            found.append(Candidate(start, value, "json", STRONG))
    fields = [] if found else asked_fields(text, question, asked_words(question or "")[1])
    values = [(start, stated_value(as_math(raw))) for start, raw in fields]
    values = [(start, value) for start, value in values if value is not None and value != HEDGE]
    if len(values) == 1:  # {"probability": "1/6", "total": 36} for "the probability"
        found.append(Candidate(values[0][0], values[0][1], "json", STRONG))
    for regex, anchor in _ANCHORS:
        for match in list(regex.finditer(text))[-MAX_TRIED:]:
            method = anchor
            if method == "answer_statement" and hypothetical(text, match.start()):
                continue
            value = stated_value(text[match.end() : match.end() + 600], words=True)
            value = _past_given(text[match.end() : match.end() + 300], value, question)
            if value is None and method != "gsm8k":
                value = _answer_sentence(text, match, question)
                if value is not None:
                    method = "answer_sentence"
            if value is not None and wavers(text, match.end(), value):
                value = HEDGE
            if value is not None and (match.groupdict().get("plural") or _LISTED.fullmatch(value)) \
                    and not asks_several(question):
                # "The answers are 21 and 42.", "Answer: 60, 120": two values for one quantity
                value = HEDGE
            if value is not None:
                found.append(Candidate(match.start(), value, method, STRONG))
    return found


# "14 notebooks cost $35.": a count of things, then a verb and another value
_GIVEN_COUNT = re.compile(r"[\s*_:]*\$?(?P<count>\d[\d,]*(?:\.\d+)?)\s+[a-z]{3,}\s+"
                          r"(?P<rest>[^\n.!?]*(?:\.\d[^\n.!?]*)*)", re.IGNORECASE)
_WORD_THEN_VALUE = re.compile(r"[a-z]\s+\$?\d")


def _past_given(tail: str, value: str | None, question: str | None) -> str | None:
    """The value an answer line states after restating one of the question's givens ("Answer:
    14 notebooks cost $35." for "how many dollars do 14 notebooks cost?": 35); else ``value``."""
    opening = _GIVEN_COUNT.match(tail)
    if value is None or opening is None or opening.group("count").replace(",", "") != value \
            or value not in givens(question) or not _WORD_THEN_VALUE.search(opening.group("rest")):
        return value
    stated = closing_statement(opening.group("rest"), question)
    return stated if stated is not None and stated != HEDGE and stated != value else value


# "Answer:" or "Answer —" leading a line, where a sentence follows instead of a value
_ANSWER_LEAD = re.compile(r"(?:^|\n)[ \t#*_]*answer[ \t*_]*(?::|—|–)[ \t*_]*$", re.IGNORECASE)
# a sentence that states something: "The mean is 18", "A cube has 12 edges", "... comes to $40"
_STATES = re.compile(r"\b(?:is|are|was|were|equals?|has|have|holds?|contains?|takes?|needs?|"
                     r"costs?|gives?|leaves?|makes?|comes?\s+to|works?\s+out\s+to)\b|=")


_AFTER_SENTENCE = re.compile(r"(?<=[.!?])\s")


def _answer_sentence(text: str, match: re.Match[str], question: str | None) -> str | None:
    """The value of the sentence that follows a leading "Answer:" ("**Answer:** The mean is
    18."): an answer heading that a full sentence, not a bare value, completes."""
    if not _ANSWER_LEAD.search(text, max(0, match.start() - 12), match.end()):
        return None
    line = text[match.end() : match.end() + 300].split("\n", 1)[0]
    sentence = _AFTER_SENTENCE.split(line, maxsplit=1)[0]
    if not _STATES.search(sentence) or UNDECIDED.search(sentence):
        return None
    value = closing_statement(unbold(sentence), question)
    return value if value != HEDGE else None


# an opening line of working: plain values chained by arrows ("100 → 110 → 99", a path of
# values, not "2x > 6 → x > 3", a relation solved), or a relation the next line rewrites
_VALUE = r"\s*\$?-?\d[\d,.]*\s*%?\s*"
_STEPPED = re.compile(rf"{_VALUE}(?:(?:→|⇒|->){_VALUE}){{2,}}\.?\s*(?:\n|$)")
_LETTER = re.compile(r"[a-z]")
_RELATION_SIGN = re.compile(r"[<>≤≥=]|\\[lg]eq?")


def _relation(line: str) -> bool:
    """A relation sign after a letter ("2x > 6", "x \\leq 3"); found in one pass (a pattern of
    two unbounded runs took seconds on a line of thousands of characters without one)."""
    letter = _LETTER.search(line)
    return letter is not None and _RELATION_SIGN.search(line, letter.end()) is not None


def _stepped(text: str) -> bool:
    """Whether ``text`` opens with working: values chained by arrows, or a relation on each
    of its first two lines."""
    if _STEPPED.match(text):
        return True
    first, newline, rest = text.partition("\n")
    return bool(newline) and _relation(first) and _relation(rest.partition("\n")[0])


_TOTAL_LABEL = re.compile(r"total|sum|left|result|answer")
_BOLD_LINE = re.compile(r"(\*\*|__)(.+?)\1[\s.]*")
_BOLD_VALUE = re.compile(r"(\*\*|__)(\$?-?\d[^*_:]*?)\1(?=\s)")
_WORD_LETTERS = re.compile(r"[A-Za-z]{2,}")


def _marked(text: str, question: str | None = None) -> list[Candidate]:
    """A table's bold (or total) last row, and a bold value opening the response."""
    found = []
    rows = table_rows(text)
    for start, raw in answer_rows(rows):  # "| Answer | **42** |"
        value = stated_value(as_math(raw))
        if value is not None and value != HEDGE:
            found.append(Candidate(start, value, "table", STRONG))
    # "| **Tip** | **$12.90** |" above "| Total paid | $98.90 |": the asked row, unless the
    # last row is the one marked in bold
    named = _named_row(rows, question) if rows and not rows[-1][2] else None
    if named is not None:
        found.append(named)
    elif rows:
        start, cells, bold = rows[-1]
        label = cells[0].lower() if cells else ""
        if bold or _TOTAL_LABEL.search(label):
            filled = [unbold(cell) for cell in cells if cell.strip()]
            value = stated_value(as_math(filled[-1])) if filled else None
            if value is not None and value != HEDGE:
                found.append(Candidate(start, value, "table", MEDIUM))
    opening = first_line(text)
    if opening is not None:
        start, line = opening
        marked = _BOLD_LINE.fullmatch(line)
        # "**12,600 seconds.** 3.5 hours is ...": a bold value leads, the working follows
        marked = marked or _BOLD_VALUE.match(line)
        content = marked.group(2) if marked else line
        # "1,000 − 387" heading the working of "What is 1,000 - 387?" repeats the question
        echoed = _flat(content) in _flat(latexify(question or "")) if not marked else False
        if not marked and _stepped(text[start : start + len(line) + 80]):
            echoed = True  # "4x > 12" then "x > 3", "100 → 110 → 99": working, not a headline
        if marked and _NUMBERED_STEP.match(content):
            echoed = True  # "**Step 1: Add the values.**", "**2. Mean**": a step's heading
        if not marked and _UNSOLVED.search(content) and not _SOLVED_FORM.search(content):
            echoed = True  # "3x ≥ 15." opening the working: a step, the unknown not yet alone
        if not echoed and (marked or not _WORD_LETTERS.search(content.replace("\\", ""))):
            value = closing_statement(content)
            if value is not None and value != HEDGE and (marked or "=" not in content):
                found.append(Candidate(start, value, "headline", MEDIUM))
    return found


# a numbered step's heading in bold ("Step 2 — sort", "1. Mean", "3) Total"): its number
# counts the steps, it answers nothing
_NUMBERED_STEP = re.compile(r"\s*(?:step\s+\d+\b|\d{1,2}\s*[.)]\s*[A-Za-z])", re.IGNORECASE)


_NOT_LABEL = re.compile(r"[^a-z ]")


def _named_row(rows: list[tuple[int, list[str], bool]], question: str | None) -> Candidate | None:
    """The one table row whose label is the asked quantity's name ("| Tip | $12.90 |" for
    "How much is the tip?"), its last cell's value; None unless exactly one row is so named."""
    names = asked_quantity_of(question).names - {"answer", "solution", "result"}
    if not names:
        return None
    found = []
    for start, cells, _ in rows:
        label = _NOT_LABEL.sub("", unbold(cells[0]).lower()).strip() if cells else ""
        filled = [unbold(cell) for cell in cells[1:] if cell.strip()]
        if label.rstrip("s") in names and filled:
            value = stated_value(as_math(filled[-1]))
            if value is not None and value != HEDGE:
                found.append(Candidate(start, value, "table", MEDIUM))
    return found[0] if len(found) == 1 else None


# a relation with the unknown under a coefficient ("3x ≥ 15"): a step of solving, not a solution
_UNSOLVED = re.compile(r"\d\s*[a-z](?![a-z])[^<>≤≥\n]*(?:[<>≤≥]|\\[lg]e)"
                       r"|(?:[<>≤≥]|\\[lg]e)[^<>≤≥\n]*"
                       r"\d\s*[a-z](?![a-z])")


_SOLVED_FORM = re.compile(r"(?<![\w.])[a-z]\s*(?:[<>≤≥]|\\[lg]e)")


_SPACES_BRACES_DOLLARS = re.compile(r"[\s{}$]+")


def _flat(text: str) -> str:
    """Text without spaces, braces and dollars, its minus signs as ``-``, to compare."""
    return _SPACES_BRACES_DOLLARS.sub("", text.replace("−", "-"))


def _counts_as_digits(sentence: str, noun: str) -> str:
    """"A cube has twelve edges." as "has 12 edges" where the question asks how many edges
    (not "A week has seven days" where it asks for minutes)."""

    wanted = noun.lower().rstrip("s")

    def digits(match: re.Match[str]) -> str:
        following = [match.group("first"), match.group("second") or ""]
        if wanted not in {word.strip().lower().rstrip("s") for word in following}:
            return match.group(0)  # "four triangular faces" counts faces; "seven days" not
        count = str(number_word(match.group("count")))
        return f"{match.group('lead')}{count}{following[0]}{following[1]}"

    return _COUNT_IN_WORDS.sub(digits, sentence)


_TOTAL = re.compile(r"\s+(?:in\s+total|in\s+all|altogether)\b", re.IGNORECASE)
_BARE_TOTAL = re.compile(r"(?<![\w.])(\d[\d,]*)(?=\s+(?:in\s+total|in\s+all|altogether)\b)",
                         re.IGNORECASE)
# "7 boxes", "2 1/2 cups", "10½ litres" (as LaTeX): a count and its noun
_COUNT_OF = re.compile(r"(?<![\w./])(\d[\d,]*(?:\.\d+)?(?:\s+\d+/\d+)?|\d+/\d+"
                       r"|\\frac\{\d+\}\{\d+\})\s+([a-z]{3,})",
                       re.IGNORECASE)
# "60, 120": a list of plain numbers (a thousands comma has no space after it)
_LISTED = re.compile(r"-?\d+(?:\.\d+)?(?:,\s+-?\d+(?:\.\d+)?)+")
# "Only x = 2 checks out": the check keeps one value, which is the conclusion
_ONLY = re.compile(r"^\W*(?:so\s+|thus\s+|hence\s+)?only\b", re.IGNORECASE)
_CLAUSE_SPLIT = re.compile(r";\s*|,\s+(?:but|while|whereas|and)\s+")


def _counted(sentence: str, noun: str) -> str | None:
    """The one number a sentence puts before the noun the question counts ("7 boxes hold 84
    eggs" for "How many eggs ...?"), unless it wavers ("between 8,000 and 9,000 litres")."""
    if HEDGED.search(sentence):
        return None
    wanted = noun.lower().rstrip("s")
    counts = [m for m in _COUNT_OF.finditer(latexify(sentence))
              if m.group(2).lower().rstrip("s") == wanted]
    # "four on top, ...: twelve edges in total": the total is the count, the rest its parts
    totals = [m for m in counts if _TOTAL.match(m.string, m.end())]
    # ": 18 in total", "so 36 altogether": the total, its noun left to the question
    totals = totals or list(_BARE_TOTAL.finditer(latexify(sentence)))
    found = {m.group(1).replace(",", "") for m in totals or counts}
    return found.pop() if len(found) == 1 else None


def _after_correction(sentence: str) -> int:
    """Where a sentence starts saying what it says after correcting itself ("It's 13 — no
    wait, 7 + 5 = 12."): after the correction, if it says something there, else 0."""
    corrections = list(CORRECTION.finditer(sentence))
    if corrections and DIGIT.search(sentence[corrections[-1].end() :]):
        return corrections[-1].end()
    return 0


# "15% of 340 is ...": a statement that trails off before its value commits to none
_TRAILS_OFF = re.compile(r"(?:\b(?:is|are|was|equals|gives|makes|comes\s+to)|=)\s*(?:\.{3}|…)\s*$")


# "So you need 13½ cups — a little over 13 cups.": a remark on the value before the dash
_DASH = re.compile(r"\s[—–]\s")
# "3.5 hours, that is 3 hours and 30 minutes": the value told again in mixed units (not "0.4,
# that is, 40%", one value in the form asked)
_RESTATED = re.compile(r",\s+(?:that\s+is|i\.\s?e\.),?\s(?=\D*\d[\d.]*\s*[a-z]+\D+\d)")


# "−4%, i.e. a 4% decrease": the value told again in words, its sign in a word
_AGAIN = re.compile(r"(-?\d[\d,]*(?:\.\d+)?)\s*%?(?P<cut>,\s+(?:that\s+is|i\.\s?e\.),?\s+"
                    r"(?:[a-z]+\s+){0,3}?)(\d[\d,]*(?:\.\d+)?)(?=\s*%|\s+[a-z])", re.IGNORECASE)


def _before_dash(sentence: str) -> str:
    """A statement without the remark a dash adds after its value (one stating no value of
    its own by ``=`` and correcting nothing)."""
    again = _AGAIN.search(sentence.replace("−", "-"))
    if again and again.group(1).lstrip("-") == again.group(3) and "=" not in sentence[again.end():]:
        return sentence[: again.start("cut")]
    dash = _DASH.search(sentence) or _RESTATED.search(sentence)
    if dash is None or not DIGIT.search(sentence[: dash.start()]):
        return sentence
    tail = sentence[dash.end() :]
    return sentence if "=" in tail or CORRECTION.search(tail) else sentence[: dash.start()]


# "The remainder is zero: 1001 = 7 × 11 × 13, ...": a statement, then its reason after a colon
_STATED_BEFORE_COLON = re.compile(
    rf"^[^:]*\b(?:is|are|equals)\s+(?:-?\d[\d,.]*|{NUMBER_WORD_BODY}|\S+\s+(?:half|thirds?|quarters?))"
    r"\W*:\s", re.IGNORECASE)


def _before_reason(sentence: str, question: str | None) -> str:
    """A statement of the asked quantity without the reason a colon gives after its value
    ("The remainder is zero: 1001 = 13 × 77 exactly."); else the sentence."""
    stated = _STATED_BEFORE_COLON.match(sentence)
    if stated and asked_quantity_of(question).named_by(stated.group(0)):
        return stated.group(0).rstrip(": \t")
    return sentence


def _kept(sentence: str) -> str:
    """A sentence without its clauses that reject the value they name, if others remain."""
    if not REJECTED.search(sentence):
        return sentence
    parts = [part for part in _CLAUSE_SPLIT.split(sentence) if part.strip()]
    kept = [part for part in parts if not REJECTED.search(part)]
    return "; ".join(kept) if kept and len(kept) < len(parts) else sentence


# "16 ≠ 19": two numbers found unequal, a failed check ("x ≠ 3" is a condition, not one)
_UNEQUAL = re.compile(r"\d\s*\$?\s*(?:≠|\\neq?\b|!=)\s*\$?\s*-?\d")


_FENCE = re.compile(r"^[ \t]*```[^\n]*\n.*?^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)


def _unfenced(text: str) -> list[tuple[int, str]]:
    """The response's sentences outside its code fences, where prose follows the last fence
    (a fence that ends the response, "```yaml probability: 3/10```", may hold the answer)."""
    found = sentences(text)
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)] if "```" in text else []
    if not fences or not text[fences[-1][1] :].strip():
        return found
    outside = [(start, s) for start, s in found
               if not any(low <= start < high for low, high in fences)]
    return outside or found


# "in joules", "in metres": a unit without a prefix, which "135 kJ" states in thousands
_BASE_UNIT_ASKED = re.compile(r"\bin\s+(joule|newton|watt|metre|meter|gram|litre|liter|volt|"
                              r"pascal|ohm|second)s?\b", re.IGNORECASE)
_UNIT_SYMBOLS = {"joule": "J", "newton": "N", "watt": "W", "metre": "m", "meter": "m",
                 "gram": "g", "litre": "L", "liter": "L", "volt": "V", "pascal": "Pa",
                 "ohm": "Ω", "second": "s"}
_PREFIX = {"k": Decimal(1000), "kilo": Decimal(1000), "M": Decimal(10) ** 6,
           "mega": Decimal(10) ** 6, "m": Decimal("0.001"), "milli": Decimal("0.001")}


_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def in_base_unit(value: str, sentence: str, question: str | None) -> str:
    """A plain value the statement gives in a prefixed form of the unit the question asks in
    ("135 kJ" for "... in joules?"), in that unit (135000); else the value."""
    asked = _BASE_UNIT_ASKED.search(question or "")
    if asked is None or not _PLAIN_NUMBER.fullmatch(value):
        return value
    name = asked.group(1).lower()
    symbol = re.escape(_UNIT_SYMBOLS[name])
    stated = compiled(rf"(?<![\d.]){re.escape(value)}\s*(?:(k|M|m)(?-i:{symbol})(?!\w)|"
                      rf"(kilo|mega|milli){name}s?\b)").search(sentence.replace(",", ""))
    if stated is None:
        return value
    scaled = Decimal(value) * _PREFIX[stated.group(1) or stated.group(2)]
    return f"{scaled.normalize():f}"


def _closing(text: str, question: str | None = None) -> list[Candidate]:
    """The closing sentence's statement (checks of an answer already given skipped, and a
    recap of the question's numbers after the answer)."""
    given = givens(question)
    recap: Candidate | None = None
    # lines in a code fence ("```python ... 91 ...```") are working, not a closing statement
    unfenced = _unfenced(text)
    last = unfenced[-1:]
    if last and _TRAILS_OFF.search(last[0][1]):
        return [Candidate(last[0][0], HEDGE, HEDGE, WEAK)]
    closing = unfenced[-4:]
    # past the statement that commits to the asked quantity, only a correction or another
    # commitment speaks; the rest is commentary, however it is phrased
    counted = counted_noun(question)
    # "So a cube has twelve edges." commits as "has 12 edges" would
    said = [_counts_as_digits(s, counted) if counted else s for _, s in closing]
    committed = committed_index(said, question)
    variable = asked_quantity_of(question).unknown
    relation = asked_quantity_of(question).relation  # an inequality to solve
    for index in reversed(range(len(closing))):
        start, sentence = closing[index]
        sentence = _CODE_COMMENT.sub("", sentence)  # "seconds = 9000   # 150 × 60": the value
        whole = sentence
        if sentence.rstrip().endswith("?") or committed is not None and index > committed:
            continue
        if _GOAL.match(sentence):
            continue  # "We want to find the period of y = sin(4x).": the task, not a result
        # "Perimeter = 42 m. Rounded to the nearest ten that is 40.": a rounding not asked for
        sentence = unasked_rounding(sentence, question)
        if not sentence.strip():
            continue
        unbracketed = _WORDY_BRACKET.sub("", sentence)  # "(the negative root is rejected)"
        if REJECTED.search(CONCLUSION.split(unbracketed)[-1]) and not _CLAUSE_SPLIT.search(
                sentence):
            continue  # "x = -1 is extraneous.": the value named is set aside
        if _UNEQUAL.search(CONCLUSION.split(sentence)[-1]):
            continue  # "I first thought 3, but that gives 9 ≠ 15": a failed check states none
        remark = commentary(sentence, question, given)
        asked = asked_clause(sentence, question)
        if asked is None or excluded_case(sentence, question):
            continue  # the value under another condition than the question's
        # "so n = 21 (check: 21/3 - 2 = 5 ✓)": the check in brackets confirms what it follows
        asked = _CHECKED.sub(blank, asked)
        # "Sanity check: ..., so ... = 12,600. ✓": a passed check confirms, it concludes nothing
        passed = _PASSED.match(text, start + len(sentence))
        sentence = asked_variable(asked_quantity(asked, question), question)
        kept = _kept(sentence)
        rejects = kept != sentence  # "only x = 4 works; x = -1 is extraneous": x = 4 stands
        sentence = _before_reason(named_clause(_before_dash(kept), question), question)
        checks = CHECK.search(sentence) and not rejects and not _ONLY.match(sentence)
        if checks and (passed or _PASSED.search(sentence)):
            continue
        if checks:
            # "Checking, x = -1 is extraneous, so x = 4." concludes; a bare check does not
            parts = CONCLUSION.split(sentence)
            if len(parts) >= 2 and not CHECK.search(parts[-1]):
                sentence = parts[-1]
            elif CHECK.search(parts[0]):
                continue
            else:
                sentence = parts[0]  # "m = 4; then n checks out": the statement before its check
        if counted:
            sentence = _counts_as_digits(sentence, counted)
        value = (_counted(sentence, counted) if counted
                 else named_value(sentence, question))
        corrected = _after_correction(sentence)
        if value is None and counted and not corrected and sentence != kept:
            # "So it takes 90 minutes — one and a half hours." for "How many hours ...?": the
            # count of the asked noun, given again after the dash
            value = _counted(_counts_as_digits(kept, counted), counted)
        both = _BOTH.match(sentence[corrected:])
        if both and not value:  # the set asked for, or two answers to a question that wants one
            several = SEVERAL.search(question or "")
            value = settle(f"{both.group(1)}, {both.group(2)}") if several else HEDGE
        bold = marked_value(sentence[corrected:]) if index == committed else None
        if bold and not value:  # "So you'd pay **$58.50**; with $60 you get $1.50 back."
            value = closing_statement(bold, question)
        # "That's two and a half hours, or 150 minutes." for "... to minutes": the asked unit's
        value = value or in_asked_unit(sentence[corrected:], question) or (
            None if corrected or not _DASH.search(kept) else in_asked_unit(kept, question))
        value = value or closing_statement(undated(sentence[corrected:], question), question)
        if value is not None and value != HEDGE:
            value = in_base_unit(value, sentence, question)  # "135 kJ" for "in joules"
        if value is None and relation:
            value = _solution_set(kept, variable)  # "at least 7 — that is, x ≥ 7, or [7, ∞)"
        if value is not None and (wavers(sentence, 0, value) or _offers_two(whole, question)):
            value = HEDGE
        if value is None:
            continue
        found = Candidate(
            start + corrected, value, HEDGE if value == HEDGE else "last_statement", WEAK
        )
        if index != committed and (
            remark or recaps(sentence, given) or other_quantity(sentence, question)
            or what_if(whole, question) or another_of_kind(whole, question)
            or could_aside(whole, question) or ordinal_of_counted(whole, question)
            or extreme_of_set(whole, question)
            or absolute_of(whole, variable) or other_instance(whole, question)
        ) or index and _ASIDE_OPENER.match(whole):
            # the answer may come before it (past more remarks): look on, keep this if not
            recap = recap or found
            continue
        return [found]
    return [recap] if recap is not None else []


# a trailing comment on a line of code or configuration ("area = 36  # length × width"):
# working beside the value; "#" after a space, not "#6"
_CODE_COMMENT = re.compile(r"\s+#(?![\d#])[^\n]*$")


# a sentence that opens by calling itself an aside: "As a side note, ...", "As an extra,
# ...", "As a (quick) sanity check, ...", "Side note: ...", "On a related note, ...", "By the
# way, ..." (not "As a result, ..." or "As a check, x = 4": those conclude or confirm)
_ASIDE_OPENER = re.compile(
    r"\W*(?:as\s+an?\s+(?:\w+\s+)?(?:side\s+note|aside|related\s+\w+|sanity\s+check|extra|"
    r"bonus|footnote|curiosity)|(?:side|related)\s+note\s*:|on\s+a\s+(?:\w+\s+)?(?:side|related)"
    r"\s+note|by\s+the\s+way|as\s+it\s+happens)\b",
    re.IGNORECASE,
)


# "$48 or $49", "391 or 381": a value, "or", another (not "x = 4 or x = -4": no "=" between)
_OR_VALUE = re.compile(r"(?<![\w.=^])(-?\$?\d[\d,.]*)\s*([a-z%°]{1,12})?,?\s+or\s+"
                       r"(?:(?:maybe|perhaps|possibly)\s+)?\$?(-?\d[\d,.]*)(?![\d^/])"
                       r"\s*([a-z%°]{1,12})?", re.IGNORECASE)


def _offers_two(sentence: str, question: str | None) -> bool:
    """Whether a sentence offers two values as alternatives where the question wants one;
    "0.25 or 25%", "150 minutes, or 9000 seconds" say one value in two forms."""
    if asks_several(question):
        return False
    given = givens(question)
    for first, unit, second, other in _OR_VALUE.findall(sentence):
        if first.strip(".,$") in given and second.strip(".,$") in given:
            continue  # "divisible by 4 or 6": the question's own numbers, no answers offered
        converted = other == "%" != unit or unit and other and unit.lower() != other.lower()
        if not converted and first.strip(".,-$") != second.strip(".,-$"):
            return True
    return False


# the response's own words that it has not chosen: "either", "could be", "can't settle"
_CANNOT_CHOOSE = re.compile(r"\b(?:can'?t|cannot|couldn'?t|could\s+not)\s+(?:settle|decide|tell|"
                            r"choose)\b|\bnot\s+(?:found|know|decided)\s+which\b", re.IGNORECASE)


def _undecided_close(text: str, question: str | None) -> int | None:
    """Where the closing sentence starts if it offers two values for the one asked and says
    it has not chosen ("the answer could be 252 or 126", "I'd say 21 or 42, not sure which");
    None otherwise. It outweighs every answer stated before it, boxed ones included."""
    closing = sentences(text)[-1:]
    if not closing:
        return None
    start, sentence = closing[0]
    if not (HEDGED.search(sentence) or _CANNOT_CHOOSE.search(sentence)):
        return None
    return start if _offers_two(sentence, question) else None


_QUESTIONED = re.compile(r"\?\s*$|^\D*$")
_BOUND = r"-?\s*(?:\d[\d.]*(?:/\d+)?|∞|\\infty)"
_INTERVAL = re.compile(rf"[\[(]\s*{_BOUND}\s*,\s*{_BOUND}\s*[\])]")


_SPACE_BEFORE_CLOSE = re.compile(r"\s+(?=[\])])")


def _solution_set(sentence: str, variable: str | None) -> str | None:
    """The last solution set a statement gives for an inequality: an interval ("[7, ∞)") or
    the unknown's relation ("x ≥ 7"), where its words ("at least 7") alone state none."""
    if variable is None:
        return None
    text = sentence.replace("−", "-")
    found = list(_INTERVAL.finditer(text)) + list(compiled(
        rf"(?<![\w\\]){re.escape(variable)}\s*(?:[<>≤≥]=?|\\[lg]eq?\b)\s*{_BOUND}").finditer(text))
    if not found:
        return None
    value = settle(max(found, key=lambda m: m.start()).group(0))
    return None if value is None or value == HEDGE else _SPACE_BEFORE_CLOSE.sub("", value)
# "\boxed{21}, or is it \boxed{19}?": the second box put as a question against the first
_OR_IS_IT = re.compile(r"\bor\s+(?:is|was)\s+it\b|\bor\s+should\s+it\s+be\b", re.IGNORECASE)
# "Could you clarify ...?", "let me know which one you mean": the response asks back instead
# of answering
_CLARIFIES = re.compile(
    r"\b(?:could|can|would)\s+you\s+(?:please\s+)?(?:clarify|confirm|specify|tell\s+me\s+(?:which|"
    r"whether|what))\b|\blet\s+me\s+know\s+(?:which|whether|what\s+you\s+mean|if\s+you\s+mean)\b"
    r"|\bdo\s+you\s+mean\b|\bwhich\s+(?:one\s+|reading\s+|interpretation\s+)?do\s+you\s+(?:mean|want)\b"
    r"|\bbefore\s+I\s+answer\b", re.IGNORECASE)
# "Try finishing the computation yourself.": the working left to the asker, no answer given
_LEFT_TO_READER = re.compile(
    r"\b(?:try|see\s+if\s+you\s+can)\s+(?:finishing|completing|solving|doing|working\s+out|"
    r"simplifying|finish|complete|solve|do|work\s+out|simplify)\b[^.!?\n]*\byourself\b"
    r"|\b(?:I'll|I\s+will)\s+leave\s+(?:the\s+rest|it|the\s+last\s+step)\s+(?:to|for)\s+you\b",
    re.IGNORECASE)
# "The answer is \boxed{}": the slot for the answer left empty
_EMPTY_BOX = re.compile(r"\\boxed\s*\{\s*\}")
# "Let me restate the problem: ...": a preface to the question told again
_RESTATING = re.compile(r"^\W*(?:let\s+me\s+|I'll\s+|to\s+)?"
                        r"(?:restate|rephrase|repeat|restating)\s+"
                        r"(?:the\s+)?(?:problem|question|task)\s*:\s*", re.IGNORECASE)
# "We want to find the period of y = sin(4x).": a statement of the task, which states no result
_GOAL = re.compile(r"^\W*(?:(?:we|i)\s+(?:want|need|have|are\s+asked|were\s+asked)\s+to|"
                   r"let(?:'s|\s+us|\s+me))\s+(?:find|compute|determine|calculate|work\s+out|"
                   r"evaluate|solve)\b(?![^.]*(?:=|\b(?:is|are|gives?|equals?)\b)[^.]*\d[^.]*"
                   r"(?:,\s*so|;|\bso\b))", re.IGNORECASE)
_WORDY_BRACKET = re.compile(r"\([^()\d]*\)")


_WORD = re.compile(r"\w+")


def _echoes(text: str, question: str | None) -> bool:
    """Whether the response only repeats the question (once or over and over)."""
    text = _RESTATING.sub("", text)
    if not question or len(text) > 8 * len(question) + 20:
        return False
    asked = " ".join(_WORD.findall(latexify(question).lower()))
    said = False  # whether a sentence with words repeats the question
    for _, sentence in sentences(text):  # up to the first sentence that does not
        words = _WORD.findall(latexify(sentence).lower())
        if not words:
            continue
        # "√12" as the question's "\sqrt{12}"; "Solve for the 8th term of ..." asks "What is
        # the 8th term of ...?" again in other words
        if not (" ".join(words) in asked
                or len(words) > 5 and _ASKING.sub("", " ".join(words)) in asked):
            return False
        said = True
    return said


_ASKING = re.compile(r"^(?:solve\s+for|find|compute|calculate|determine|evaluate|work\s+out)\s+")


def extract_math_method(
    text: str, truncated: bool = False, question: str | None = None
) -> tuple[str | None, str]:
    """The committed math answer (normalised; None: no single answer) and how it was found."""
    text = squeeze(text)
    question = plain_question(question)
    candidates = _explicit(text, question)
    if truncated:
        if not candidates:
            committed = _committed_before_cut(text, question)
            return (committed, "committed_before_cut") if committed else (None, "truncated")
    elif _echoes(text, question):
        return None, "none"
    else:
        candidates += _marked(text, question)
        if not settled(candidates, text):
            candidates += _closing(text, question)
    chosen = decide(candidates, text) if candidates else None
    blank = _placeholder(text)
    if blank is not None and (chosen is None or chosen.start <= blank):
        return None, "placeholder"  # "The final answer is: \boxed{[value of x]}": a template
    undecided = _undecided_close(text, question)
    if undecided is not None and (chosen is None or chosen.start < undecided):
        return None, "undecided"  # "... so the inverse is either 15 or 11.": two, none chosen
    if (chosen is None or chosen.strength == WEAK) and refused(text):
        return None, "refusal"
    if chosen is None or chosen.strength == WEAK:
        if _CLARIFIES.search(text):
            return None, "clarification"  # asks which reading is meant, answers none
        if _LEFT_TO_READER.search(text):
            return None, "left_to_reader"  # a hint, the answer left to the asker
        if _EMPTY_BOX.search(text):
            return None, "empty_answer"  # "The answer is \boxed{}"
    if chosen is None:
        if all(_QUESTIONED.search(sentence) or _GOAL.match(sentence)
               for _, sentence in sentences(text)):
            return None, "none"  # "32? 64?": numbers put as questions commit to none
        closing = sentences(text)[-1:]
        if closing and HEDGED.search(closing[0][1]):
            return None, HEDGE  # "somewhere from 12 to 13 hours": a range, no single value
        numbers = _NUMBER.findall(undated(text, question))
        if numbers and len(numbers[-1]) <= MAX_ANSWER:
            return normalise_math(numbers[-1]), "last_number"
        return None, "none"
    if chosen.value == HEDGE or _SEVERAL_VALUES.match(str(chosen.value)) and one_solution(
            question) or _TWO_NAMED.match(str(chosen.value)) and not asks_several(question) or (
            _SEVERAL_VALUES.match(str(chosen.value)) and UNDECIDED.search(text, chosen.start)) or (
            str(chosen.value).startswith("\\{") and _one_quantity(question)):
        # "x = -4 or x = 4" for one linear equation, or "... I'm not sure which": two answers
        return None, HEDGE
    return str(chosen.value), chosen.method


_CONCLUDES = re.compile(r"^\W*(?:so|therefore|thus|hence)\b", re.IGNORECASE)


def _committed_before_cut(text: str, question: str | None) -> str | None:
    """The value of a cut-off response whose last whole sentence concludes on the asked
    quantity ("So the volume of the cone is 12π cm³." before a remark cut short); None where
    the cut falls in the working, or right after the statement (it may have gone on)."""
    said = sentences(text)
    if len(said) < 2:
        return None
    start, last = said[-2]
    asked = asked_quantity_of(question)
    if not (_CONCLUDES.match(last) and asked.named_by(last) and commits(last, asked)):
        return None
    found = _closing(text[: said[-1][0]], question)
    if not found or found[0].start != start or found[0].value == HEDGE:
        return None
    return str(found[0].value)


def _one_quantity(question: str | None) -> bool:
    """Whether a question asks one quantity of a situation in words ("How old is Lee?", "What
    is the length in cm?"), no equation to solve nor several values: "L = 8 or L = −5",
    neither rejected, offers two answers for it."""
    return bool(question) and "=" not in (question or "") and not asks_several(question) \
        and asked_quantity_of(question).unknown is None


# a slot left to fill where the answer goes: "\boxed{[value of x]}", "Answer: [your result
# here]"; words in square brackets, no digits, no comma (not "[-2, 2]", not "[a, b]")
_PLACEHOLDER = re.compile(
    r"(?:\\boxed\s*\{|\banswer\b[^\n\[\]]{0,20}?)\s*(?:\\text\s*\{)?\s*"
    r"\[\s*[A-Za-z][^\[\]\d,\n]{0,40}\]",
    re.IGNORECASE,
)


def _placeholder(text: str) -> int | None:
    """Where the last answer slot left as a placeholder starts; None if there is none."""
    slots = list(_PLACEHOLDER.finditer(text))
    return slots[-1].start() if slots else None


# a value of several: a set, "±", or values in a list
_SEVERAL_VALUES = re.compile(r"\\\{|.*\\pm|[^()\[\]{}]*,\s")
# "3.14 and 3.15" read as one statement's value: two values named for one
_TWO_NAMED = re.compile(r"-?\d[\d.,]*\s+and\s+-?\d[\d.,]*$")


__all__ = ["HEDGE", "extract_math_method"]
