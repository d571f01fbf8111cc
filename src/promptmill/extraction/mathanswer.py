"""Math: the value a response finally commits to, or None.

Candidates, strongest first: ``\\boxed{}``, ``<answer>``, JSON, "final answer", ``####``, "the
answer is"; a table's marked total row or a bold opening value; the closing sentence's
statement ("So y = 11 when x = 2." is 11, "the minimum is -5, attained at x = -3" is -5); and
only where nothing states a value, the last number. A statement wavering between two values
("either 6 or 8", "somewhere between 55 and 65") commits to none.
"""

from __future__ import annotations

import re

from promptmill.extraction.asked import (
    SEVERAL,
    asked_clause,
    asked_quantity,
    asked_variable,
    asks_several,
    commentary,
    committed_clause,
    converted,
    givens,
    other_quantity,
    recaps,
)
from promptmill.extraction.commitment import committed_index, marked_value
from promptmill.extraction.mathnorm import (
    NUMBER_WORD,
    NUMBER_WORD_BODY,
    exact_number,
    latexify,
    normalise_math,
    number_word,
    opens_with_word_fraction,
)
from promptmill.extraction.text import (
    CHECK,
    CONCLUSION,
    CORRECTION,
    HOW_MANY,
    MEDIUM,
    STRONG,
    WEAK,
    Candidate,
    alternative_after,
    answer_rows,
    asked_fields,
    boxed,
    decide,
    first_line,
    hypothetical,
    json_answers,
    refused,
    sentences,
    squeeze,
    table_rows,
    tagged,
    unbold,
)

HEDGE = "hedge"

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
_ANCHORS = (
    (_FINAL_ANSWER, "final_answer"),
    (_ANSWER_HEADING, "final_answer"),
    (_GSM8K, "gsm8k"),
    (_ANSWER_IS, "answer_statement"),
)
_MAX_TRIED = 20  # anchors tried per kind, from the last: more is prose, not an answer
_MAX_ANSWER = 200  # characters: a longer "answer" is a runaway span or a pathological input
_MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
# "$40 * 0.25 = $10": a "$" just before a digit is a price, not the end of inline math
_CURRENCY_AFTER = re.compile(r"\d")
# Where a statement's value ends: the sentence, or a clause that only qualifies it.
_VALUE_END = re.compile(
    r"\.(?:\s|$)|;|!(?!\s*(?:=|\\times|×))|\?|≈|\\approx|\s[—–]\s"
    r"|\s\((?![^()]*\)\s*(?:=|[-+*/^(]|\\times|\\cdot))"
    r"(?!\s*-?\s*(?:\d[\d.]*|\\infty|\\pi|\\frac\{[^{}]*\}\{[^{}]*\})\s*,(?!\d{3}\b))"
    r"|,?\s*\b(?:i\.e\.|e\.g\.)|,\s*(?:not|rather\s+than|instead\s+of)\b|,\s+(?=[A-Za-z]{2,}|an?\s)|\s+(?:because|since|which|as|so|for|when|whenever|where|if|"
    r"at(?!\s*[(\[])|"  # "it is at (3, 2)": the point is the value
    r"with|over|after|attained|reached|occurring|occurs|given|using|by|from|per|i\.e\.|"
    r"and\s+(?:that|this|the|its|their|so))\b",
    re.IGNORECASE,
)
# "Using n(n + 1)/2 with n = 50, the sum is 1,275.": the opening clause only sets the scene
_INTRODUCTION = re.compile(
    r"^\s*(?:using|with|since|because|as|given|taking|substituting|plugging\s+in|for|when|"
    r"whenever|if|at|where|once|after|(?!(?:every|no|some|any)thing)[A-Za-z]+ing)\b"
    r"(?:[^,:({\[]|\([^()]*\)|\{[^{}]*\}|\[[^\[\]]*\])*,\s*"  # a set's commas are no pause
    r"(?=\S)",
    re.IGNORECASE,
)
_VERB = re.compile(
    r"(?:\b(?:is|are|lies?|meets?|intersects?|cross(?:es)?|occurs?)\s+at\s+(?=[(\[])"
    r"|\b(?:simplif(?:y|ies)|reduces?|works?\s+out|comes?\s+out|amounts?|adds?\s+up|sums?)\s+to\b"
    r"|\b(?:lands?|ends?\s+up|arrives?)\s+at\b"
    # "its maximum value of 7 at x = 2", "its least value, -7, when": the value named
    r"|\b(?:value|minimum|maximum)(?:\s+of|,)(?=\s*[-−+$]?\d)"
    r"|\b(?:is|are|was|were|be|equals?|gives?|giving|get|gets|makes?|needs?|takes?|took|uses?|"
    r"costs?|has|have|had|totals?|becomes?|leaves|remains?|yields?|comes\s+to)\b|=|:(?!\d)|(?<!\d):"
    r"|(?:(?<=\bit)|(?<=\bthat)|(?<=\bthis)|(?<=\bwhich)|(?<=\bthere)|(?<=\bwhat))'s\b)\s*",
    re.IGNORECASE,
)
_APPROXIMATE = re.compile(r"(?:≈|\\approx)\s*")
_TOKEN = re.compile(r"\\[a-zA-Z]+|\d+(?:[.,]\d+)*%?|[A-Za-z]+|\s+|\S")
_FILLER = re.compile(
    r"^\s*(?:(?:only|just|exactly|now|then|still|simply|equal\s+to|actually|indeed|about|"
    r"approximately|roughly|around|nearly|almost)\s+"
    r"|the\s+(?:solution\s+set|set\s+of\s+solutions|solutions|roots)\s+)+",
    re.IGNORECASE,
)
_DISCOURSE = re.compile(
    r"^\s*(?:so|therefore|thus|hence|then|finally|overall|in\s+total|in\s+summary|altogether|"
    r"that\s+means|this\s+means)\b\s*,?\s*",
    re.IGNORECASE,
)
_STATES = re.compile(
    r"\s*(?:is|are|was|were|equals?|gives?|makes?|becomes?|yields?|comes\s+to|simplif|reduces|"
    r"works|amounts|lands?|ends?\s+up|arrives?|=|'s)",
    re.IGNORECASE,
)
# "36 × 10⁻⁴, which is 3.6 × 10⁻²": the restatement is the final form (unless approximate)
_RESTATED = re.compile(
    r"(?:,\s*|(?<=\S)\s+)(?:which\s+(?:is|equals|rounds\s+to|comes\s+to)|that\s+is|that's|i\.e\.|"
    r"or\s+equivalently|exactly|rounded\s+to|rounding\s+to)"
    r"\s*,?\s*"
    # "\s*" may give back its spaces: the lookahead skips them itself
    r"(?!\s*(?:about|approximately|roughly|around|nearly|almost)\b)(?:an?\s+)?",
    re.IGNORECASE,
)
_OR_BETWEEN = re.compile(
    r"[\s$)\]]*\bor\b(?:\s+(?:possibly|maybe|perhaps|even))?[\s$(\[]*", re.IGNORECASE
)
_PROPERTY = re.compile(r"\s*\S+\s+(?:at|when|for|if|where|whenever)\b", re.IGNORECASE)
# "Both 6 and -6 are 6 units from zero.": the values the sentence is about are the answer
_BOTH = re.compile(r"^\s*(?:both\s+)?(-?\d+(?:\.\d+)?)\s+and\s+(-?\d+(?:\.\d+)?)\s+are\b",
                   re.IGNORECASE)
# "introduced by Napier in 1614": a year in prose dates something, it computes nothing
_DATE = re.compile(r"\b(?:in|since|by|from|until)\s+(?:1\d{3}|20\d{2})(?![\d.,]\d)", re.IGNORECASE)
_ABOUT_DATES = re.compile(r"\byears?\b|\bwhen\b|\bcentury\b", re.IGNORECASE)


_CHECKED = re.compile(r"\((?=[^()]*(?:[✓✔]|\bcheck))[^()]*\)", re.IGNORECASE)
_PASSED = re.compile(r"\s*[✓✔]|.*[✓✔]\W*$", re.DOTALL)
# after "or"/"and", what carries an expression on: a value, or "x =", "x <", "x \ge"
_GOES_ON = re.compile(r"\s*[-+$\\(\[{]?\s*[\d\\]|\s*[a-zA-Z]\s*(?:[=<>]|\\[lg]e)")
_FIRST_VALUE = re.compile(r"(?<![\w.])(?:[(\[]\s*)?[-+]?\s*(?:\d|\\(?:frac|sqrt|pi)\b)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mbox|mathrm|textbf)\s*\{([^{}]*)\}")
_INLINE_MATH = re.compile(r"\$([^$]+)\$(?!\d)|\\\((.+?)\\\)")
_MATH_WORDS = frozenset({
    "pi", "sqrt", "frac", "dfrac", "tfrac", "times", "cdot", "div", "infty", "le", "leq", "ge",
    "geq", "lt", "gt", "pm", "mp", "ne", "circ", "left", "right", "log", "ln", "sin",
    "cos", "tan",
})
_HEDGE = re.compile(
    r"\beither\b(?!\s+(?:side|way|end|direction)s?\b)|"  # "either way" commits all the same
    r"\bor\s+(?:maybe|perhaps|possibly)\b|\bnot\s+sure\b|\bsomewhere\s+between\b|"
    r"^\s*between\b|\bdepending\b|\bcould\s+be\b|\bmight\s+be\b|"
    r"\b(?:somewhere|anywhere|around|about|roughly|approximately)\s+(?:from\s+|between\s+)?"
    r"-?\d[\d,.]*\s*(?:to|-|–|and)\s*-?\d",
    re.IGNORECASE,
)
_ASSIGNMENTS = re.compile(
    # "h = 12,600 s" is one value: a comma before three digits groups thousands
    r"(?<![\w\\])[a-zA-Z]\s*=\s*[-+]?\$?(?:\d{1,3}(?:,\d{3})+(?![\d,])|[^\s,;=]+)"
    r"(?:\s*(?:,\s*(?:and\s+|or\s+)?|\bor\b|\band\b)\s*"
    r"(?:[a-zA-Z]\s*=\s*)?[-+]?[^\s,;=]+)+"
)
_NUMBER = re.compile(
    r"\\[dt]?frac\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}"
    r"|(?<![\w.\\])(?:(?<![\w)\]}])-)?\$?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)?"
    r"\\(?:pi|sqrt\s*\{[^{}]+\}|sqrt\s*\d)"
    r"|(?<![\w.\\])(?:(?<![\w)\]}])-)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?"
)


def _expression(tail: str) -> str:
    """The math expression at the start of ``tail``: up to the first plain word."""
    tokens = list(_TOKEN.finditer(tail))
    end = 0
    for position, token in enumerate(tokens):
        piece = token.group(0)
        if piece[0].isalpha():
            word = piece.lower()
            following = "".join(t.group(0) for t in tokens[position + 1 : position + 5])
            if word in ("or", "and"):
                if not _GOES_ON.match(following):
                    break
            elif len(piece) > 1 and word not in _MATH_WORDS:
                break
            elif len(piece) == 1 and end == 0 and not re.match(r"\s*[=<>\\^_(]", following):
                break  # "a quarter", "x" alone: words, not an expression
        elif piece in ".;!?" or (
            piece == "," and not re.match(r"\s*[-+]?\s*(?:\d|\\infty)", tail[token.end() :])
        ):
            break
        end = token.end()
    return tail[:end].strip().rstrip(",").strip()


def _value(tail: str, words: bool = False) -> str | None:
    """The committed value stated at the start of ``tail``; HEDGE when it wavers. With
    ``words`` (right after "the answer is"), a number written in words counts too."""
    tail = tail.lstrip(" \t*:_")
    # "two-thirds" is 2/3, not "2-thirds"; "one of the most important" counts nothing
    if words and not opens_with_word_fraction(tail) and not _PARTITIVE.match(tail):
        tail = NUMBER_WORD.sub(lambda m: str(number_word(m.group(0))), tail, count=1)
    if tail.startswith("\n"):
        tail = tail.lstrip().lstrip("*:_ \t")  # "### Final Answer" with the value below it
    for opening, closing in _MATH_DELIMITERS:
        if tail.startswith(opening):
            end = tail.find(closing, len(opening))
            if end > 0 and not (closing == "$" and _CURRENCY_AFTER.match(tail, end + 1)):
                return _settle(tail[len(opening) : end])
            if opening != "$":
                return None  # display math cut off before it closed
    tail = _FILLER.sub("", tail)
    line = latexify(tail.split("\n", 1)[0])
    inline = _INLINE_MATH.search(line)
    if inline and len(line[: inline.start()].split()) <= 3:
        return _settle(inline.group(1) or inline.group(2))
    ending = _VALUE_END.search(line)
    clause = line[: ending.start()] if ending else line
    if _HEDGE.search(clause):
        return HEDGE
    assignments = _ASSIGNMENTS.search(_unwrapped(clause))
    if assignments and assignments.start() < 3:
        return _settle(assignments.group(0))
    clause = _TEXT_WRAPPER.sub(r" \1 ", clause.replace("$", " ").replace("**", ""))
    return _settle(_expression(clause))


# "A cube has twelve edges." answering "How many edges ...?": a count in words after "has"
_STATING = re.compile(rf"[\d\\]|\b{NUMBER_WORD_BODY}\b", re.IGNORECASE)
_COUNT_IN_WORDS = re.compile(
    r"(?P<lead>\b(?:has|have|had|contains?|holds?|needs?|uses?|gets?|takes?|makes?|are|were|"
    r"is|was)\s+(?:exactly\s+|only\s+|just\s+)?|:\s*)"  # ": twelve edges in total"
    rf"(?P<count>{NUMBER_WORD_BODY})"
    r"(?P<first>\s+[a-z]{3,})(?P<second>\s+[a-z]{3,})?",
    re.IGNORECASE,
)


def _unwrapped(text: str) -> str:
    """Text without inline-math delimiters, position for position."""
    return re.sub(r"\$|\\[()]", lambda m: " " * len(m.group(0)), text)


def _settle(expression: str) -> str | None:
    """A stated expression, normalised; HEDGE for "6 or 8" unless both are one value."""
    expression = expression.strip()
    if not expression or len(expression) > _MAX_ANSWER:
        return None
    if re.search(r"\bor\b", expression) and not re.search(r"[=<>]|\\[lg]e", expression):
        values = [normalise_math(part) for part in re.split(r"\bor\b", expression)]
        numbers = {exact_number(v) for v in values}
        if len(values) == 2 and len(numbers) == 1 and None not in numbers:
            return values[0]  # "0.5 or 1/2": one value said twice
        return HEDGE
    braces = re.fullmatch(r"\{(.+)\}", expression)
    if braces:
        expression = "\\{" + braces.group(1) + "\\}"
    answer = normalise_math(expression)
    return answer if answer and re.search(r"[\d\\]", answer) else None


# "The result is 0.7 (multiplying 0.2 by 3 first, then adding 0.1).": an aside in words
# explains the value; its "then" is not the sentence's conclusion
_ASIDE = re.compile(
    r"\((?!\s*(?:which|that|i\.e\.|or|=))(?=[^()]*(?<![\\A-Za-z])[A-Za-z]{3,}\b)[^()]*\)"
)


def _blank(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def _undated(text: str, question: str | None) -> str:
    """``text`` with its dates in prose blanked, unless the question asks about dates."""
    if question and _ABOUT_DATES.search(question) or not _DATE.search(text):
        return text
    return _DATE.sub(_blank, text)


def _closing_statement(sentence: str, question: str | None = None) -> str | None:
    """The value a closing sentence states: after its conclusion's last verb or ``=``, with
    the clauses that only qualify it ("when x = 2", ", attained at x = -3") left out."""
    sentence = committed_clause(latexify(_ASIDE.sub(_blank, sentence)), question, _VERB)
    parts = [part for part in CONCLUSION.split(sentence) if part.strip()]
    # "it is at (3, 2), and the parabola opens upward": a last step without a value adds none
    stating = [part for part in parts if _STATING.search(part)] or parts
    clause = _DISCOURSE.sub("", stating[-1] if stating else sentence)
    clause = _INTRODUCTION.sub("", clause)
    restated = _RESTATED.search(clause)
    # "3x² - 4, which is zero at x = ±2/√3": a property under a condition, not the answer again
    if restated and not _PROPERTY.match(clause, restated.end()) and not converted(
        clause[: restated.start()], clause[restated.end() :], question
    ):
        value = _value(clause[restated.end() :], words=True)
        if value is not None and value != HEDGE:
            return value
    verbs = list(_VERB.finditer(clause))
    approximate = _APPROXIMATE.search(clause)
    if approximate and (not verbs or verbs[0].start() > approximate.start()):
        verbs = [approximate]  # "π ≈ 3.14": the approximation is what is stated
    if verbs:
        ending = _VALUE_END.search(clause, verbs[0].end())
        if ending:
            clause = clause[: ending.start()]
    if _HEDGE.search(clause):
        return HEDGE
    assignments = _ASSIGNMENTS.search(_unwrapped(clause))
    if assignments:
        return _settle(assignments.group(0))
    for match in reversed([v for v in verbs if v.end() <= len(clause)][-_MAX_TRIED:]):
        # "is forty-two" states a value; "a week has seven days" states a fact
        value = _value(clause[match.end() :], words=_STATES.match(match.group(0)) is not None)
        if value is not None:
            return value
    value = _value(clause)
    if value is not None or verbs:
        return value
    first = _FIRST_VALUE.search(clause)  # "the company grew 2.2% this year"
    return _value(clause[first.start() :]) if first else None


def _as_math(content: str) -> str:
    """A box's, tag's or cell's content as inline math: "$55" (a price) as ``$55$``."""
    if content.count("$") == 1:
        content = re.sub(r"\\?\$(?=\s*\d)", "", content)
    return content if "$" in content else f"${content}$"


def _explicit(text: str, question: str | None = None) -> list[Candidate]:
    """Statements that give the answer outright."""
    found = []
    previous: tuple[int, str] | None = None  # the last box's end and value
    for start, end, content in boxed(text):
        value = _value(_as_math(content)) if content.strip() else None
        if not value:
            continue
        if previous and previous[1] != value and _OR_BETWEEN.fullmatch(text[previous[0] : start]):
            value = HEDGE  # "\boxed{7} or \boxed{3}": two answers offered, neither chosen
        found.append(Candidate(start, value, "boxed" if value != HEDGE else HEDGE, STRONG))
        previous = end, value
    for start, content in tagged(text):
        value = _value(_as_math(content))
        if value is not None:
            found.append(Candidate(start, value, "answer_tag", STRONG))
    for start, raw in json_answers(text):
        if isinstance(raw, list):
            found.append(Candidate(start, HEDGE, HEDGE, STRONG))
            continue
        value = _value(_as_math(str(raw)))
        if value is not None:
            found.append(Candidate(start, value, "json", STRONG))
    fields = [] if found else asked_fields(text, question)
    values = [(start, _value(_as_math(raw))) for start, raw in fields]
    values = [(start, value) for start, value in values if value is not None and value != HEDGE]
    if len(values) == 1:  # {"probability": "1/6", "total": 36} for "the probability"
        found.append(Candidate(values[0][0], values[0][1], "json", STRONG))
    for regex, method in _ANCHORS:
        for match in list(regex.finditer(text))[-_MAX_TRIED:]:
            if method == "answer_statement" and hypothetical(text, match.start()):
                continue
            value = _value(text[match.end() : match.end() + 600], words=True)
            if value is not None and _wavers(text, match.end(), value):
                value = HEDGE
            if value is not None and match.groupdict().get("plural") and not asks_several(question):
                value = HEDGE  # "The answers are 21 and 42." to a question wanting one value
            if value is not None:
                found.append(Candidate(match.start(), value, method, STRONG))
    return found


def _marked(text: str) -> list[Candidate]:
    """A table's bold (or total) last row, and a bold value opening the response."""
    found = []
    rows = table_rows(text)
    for start, raw in answer_rows(rows):  # "| Answer | **42** |"
        value = _value(_as_math(raw))
        if value is not None and value != HEDGE:
            found.append(Candidate(start, value, "table", STRONG))
    if rows:
        start, cells, bold = rows[-1]
        label = cells[0].lower() if cells else ""
        if bold or re.search(r"total|sum|left|result|answer", label):
            filled = [unbold(cell) for cell in cells if cell.strip()]
            value = _value(_as_math(filled[-1])) if filled else None
            if value is not None and value != HEDGE:
                found.append(Candidate(start, value, "table", MEDIUM))
    opening = first_line(text)
    if opening is not None:
        start, line = opening
        marked = re.fullmatch(r"(\*\*|__)(.+?)\1[\s.]*", line)
        # "**12,600 seconds.** 3.5 hours is ...": a bold value leads, the working follows
        marked = marked or re.match(r"(\*\*|__)(\$?-?\d[^*_:]*?)\1(?=\s)", line)
        content = marked.group(2) if marked else line
        if marked or not re.search(r"[A-Za-z]{2,}", content.replace("\\", "")):
            value = _closing_statement(content)
            if value is not None and value != HEDGE and (marked or "=" not in content):
                found.append(Candidate(start, value, "headline", MEDIUM))
    return found


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
_COUNT_OF = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s+([a-z]{3,})", re.IGNORECASE)


def _counted(sentence: str, noun: str) -> str | None:
    """The one number a sentence puts before the noun the question counts ("7 boxes hold 84
    eggs" for "How many eggs ...?"), unless it wavers ("between 8,000 and 9,000 litres")."""
    if _HEDGE.search(sentence):
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
    if corrections and re.search(r"\d", sentence[corrections[-1].end() :]):
        return corrections[-1].end()
    return 0


def _wavers(text: str, position: int, value: str) -> bool:
    """Whether the sentence stating ``value`` at ``position`` entertains another value too
    ("The answer is probably 12, but it might be 14")."""
    start = alternative_after(text, position)
    if start is None or value == HEDGE:
        return False
    other = _value(text[start : start + 200], words=True)
    return other is not None and other != HEDGE and other != value


# "15% of 340 is ...": a statement that trails off before its value commits to none
_TRAILS_OFF = re.compile(r"(?:\b(?:is|are|was|equals|gives|makes|comes\s+to)|=)\s*(?:\.{3}|…)\s*$")


def _closing(text: str, question: str | None = None) -> list[Candidate]:
    """The closing sentence's statement (checks of an answer already given skipped, and a
    recap of the question's numbers after the answer)."""
    given = givens(question)
    recap: Candidate | None = None
    last = sentences(text)[-1:]
    if last and _TRAILS_OFF.search(last[0][1]):
        return [Candidate(last[0][0], HEDGE, HEDGE, WEAK)]
    closing = sentences(text)[-4:]
    # past the statement that commits to the asked quantity, only a correction or another
    # commitment speaks; the rest is commentary, however it is phrased
    committed = committed_index([sentence for _, sentence in closing], question)
    for index in reversed(range(len(closing))):
        start, sentence = closing[index]
        if sentence.rstrip().endswith("?") or committed is not None and index > committed:
            continue
        remark = commentary(sentence, question, given)
        asked = asked_clause(sentence, question)
        if asked is None:
            continue  # the value under another condition than the question's
        # "so n = 21 (check: 21/3 - 2 = 5 ✓)": the check in brackets confirms what it follows
        asked = _CHECKED.sub(_blank, asked)
        # "Sanity check: ..., so ... = 12,600. ✓": a passed check confirms, it concludes nothing
        passed = _PASSED.match(text, start + len(sentence))
        sentence = asked_variable(asked_quantity(asked, question), question)
        if CHECK.search(sentence) and (passed or _PASSED.search(sentence)):
            continue
        if CHECK.search(sentence):
            # "Checking, x = -1 is extraneous, so x = 4." concludes; a bare check does not
            parts = CONCLUSION.split(sentence)
            if len(parts) >= 2 and not CHECK.search(parts[-1]):
                sentence = parts[-1]
            elif CHECK.search(parts[0]):
                continue
            else:
                sentence = parts[0]  # "m = 4; then n checks out": the statement before its check
        counted = HOW_MANY.search(question) if question else None
        if counted:
            sentence = _counts_as_digits(sentence, counted.group(1))
        value = _counted(sentence, counted.group(1)) if counted else None
        corrected = _after_correction(sentence)
        both = _BOTH.match(sentence[corrected:])
        if both and not value:  # the set asked for, or two answers to a question that wants one
            several = SEVERAL.search(question or "")
            value = _settle(f"{both.group(1)}, {both.group(2)}") if several else HEDGE
        bold = marked_value(sentence[corrected:]) if index == committed else None
        if bold and not value:  # "So you'd pay **$58.50**; with $60 you get $1.50 back."
            value = _closing_statement(bold, question)
        value = value or _closing_statement(_undated(sentence[corrected:], question), question)
        if value is not None and _wavers(sentence, 0, value):
            value = HEDGE
        if value is None:
            continue
        found = Candidate(
            start + corrected, value, HEDGE if value == HEDGE else "last_statement", WEAK
        )
        if index != committed and (
            remark or recaps(sentence, given) or other_quantity(sentence, question)
        ):
            # the answer may come before it (past more remarks): look on, keep this if not
            recap = recap or found
            continue
        return [found]
    return [recap] if recap is not None else []


_PARTITIVE = re.compile(r"[a-z]+\s+of\b", re.IGNORECASE)
_QUESTIONED = re.compile(r"\?\s*$|^\D*$")


def _echoes(text: str, question: str | None) -> bool:
    """Whether the response only repeats the question (once or over and over)."""
    if not question or len(text) > 8 * len(question) + 20:
        return False
    asked = " ".join(re.findall(r"\w+", latexify(question).lower()))
    said = [re.findall(r"\w+", latexify(s).lower()) for _, s in sentences(text)]
    # "√12" as the question's "\sqrt{12}"
    return any(said) and all(" ".join(words) in asked for words in said if words)


def extract_math_method(
    text: str, truncated: bool = False, question: str | None = None
) -> tuple[str | None, str]:
    """The committed math answer (normalised; None: no single answer) and how it was found."""
    text = squeeze(text)
    candidates = _explicit(text, question)
    if truncated:
        if not candidates:
            return None, "truncated"
    elif _echoes(text, question):
        return None, "none"
    else:
        candidates += _marked(text) + _closing(text, question)
    chosen = decide(candidates, text) if candidates else None
    if (chosen is None or chosen.strength == WEAK) and refused(text):
        return None, "refusal"
    if chosen is None:
        if all(_QUESTIONED.search(sentence) for _, sentence in sentences(text)):
            return None, "none"  # "32? 64?": numbers put as questions commit to none
        closing = sentences(text)[-1:]
        if closing and _HEDGE.search(closing[0][1]):
            return None, HEDGE  # "somewhere from 12 to 13 hours": a range, no single value
        numbers = _NUMBER.findall(_undated(text, question))
        if numbers and len(numbers[-1]) <= _MAX_ANSWER:
            return normalise_math(numbers[-1]), "last_number"
        return None, "none"
    if chosen.value == HEDGE:
        return None, HEDGE
    return str(chosen.value), chosen.method


__all__ = ["HEDGE", "extract_math_method"]
