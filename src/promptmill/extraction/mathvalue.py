"""Math: the value one statement states ("So y = 11 when x = 2." states 11), or HEDGE.

A statement's value is read after its last stating verb or ``=``, up to where a clause only
qualifies it; ``settle`` normalises it, and a statement wavering between two values ("6 or 8",
"somewhere between 55 and 65") states HEDGE. Where in a response such statements are is
``mathanswer``'s concern.
"""

from __future__ import annotations

import re
from functools import lru_cache

from promptmill.extraction.asked import committed_clause, converted
from promptmill.extraction.mathnorm import (
    NUMBER_WORD,
    NUMBER_WORD_BODY,
    exact_number,
    latexify,
    normalise_math,
    number_word,
    opens_with_word_fraction,
)
from promptmill.extraction.text import CONCLUSION, OR_WORD, alternative_after

HEDGE = "hedge"

MAX_TRIED = 20  # anchors tried per kind, from the last: more is prose, not an answer

MAX_ANSWER = 200  # characters: a longer "answer" is a runaway span or a pathological input

_MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_OR_NEXT = re.compile(r"\s*,?\s*or\s+\$([^$]+)\$")

# "$40 * 0.25 = $10": a "$" just before a digit is a price, not the end of inline math
_CURRENCY_AFTER = re.compile(r"\d")

# Where a statement's value ends: the sentence, or a clause that only qualifies it.
_VALUE_END = re.compile(
    r"\.(?:\s|$)|;|!(?!\s*(?:=|\\times|×))|\?|≈|\\approx|\s[—–]\s"
    # "= (1/3)π(36)", "+ (5 − 3)²": a bracket an operator opens is a factor, not a remark
    # (not "*", which closes "**bold**")
    r"|(?<![=+\-/×·−])\s\((?![^()]*\)\s*(?:=|[-+*/^(]|\\times|\\cdot))"
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
    r"costs?|has|have|had|totals?|becomes?|leaves|remains?|yields?|comes\s+to|measures?|weighs?)"
    r"\b|=|:(?!\d)|(?<!\d):"
    r"|(?:(?<=\bit)|(?<=\bthat)|(?<=\bthis)|(?<=\bwhich)|(?<=\bthere)|(?<=\bwhat))'s\b)\s*",
    re.IGNORECASE,
)

_APPROXIMATE = re.compile(r"(?:≈|\\approx)\s*")

_TOKEN = re.compile(r"\\[a-zA-Z]+|\d+(?:[.,]\d+)*%?|[A-Za-z]+|\s+|\S")

_FILLER = re.compile(
    r"^\s*(?:(?:only|just|exactly|now|then|still|simply|equal\s+to|actually|indeed|about|"
    r"approximately|roughly|around|nearly|almost)\s+"
    # "she needs a 51 on the last test": the article before a score or a grade
    r"|an?\s+(?=[-−$]?\d)"
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

_PROPERTY = re.compile(r"\s*\S+\s+(?:at|when|for|if|where|whenever)\b", re.IGNORECASE)

# "introduced by Napier in 1614": a year in prose dates something, it computes nothing
_DATE = re.compile(r"\b(?:in|since|by|from|until)\s+(?:1\d{3}|20\d{2})(?![\d.,]\d)", re.IGNORECASE)

_ABOUT_DATES = re.compile(r"\byears?\b|\bwhen\b|\bcentury\b", re.IGNORECASE)

# after "or"/"and", what carries an expression on: a value, or "x =", "x <", "x \ge"
_GOES_ON = re.compile(r"\s*[-+$\\(\[{]?\s*[\d\\]|\s*[a-zA-Z]\s*(?:[=<>]|\\[lg]e)")
# what makes a letter alone part of an expression ("x = 3"), a comma a list's ("2, -3")
_LETTER_GOES_ON = re.compile(r"\s*[=<>\\^_(]")
_LIST_GOES_ON = re.compile(r"\s*[-+]?\s*(?:\d|\\infty)")
_FRACTION = re.compile(r"\\[dt]?frac\{")

_FIRST_VALUE = re.compile(r"(?<![\w.])(?:[(\[]\s*)?[-+]?\s*(?:\d|\\(?:frac|sqrt|pi)\b)")

_TEXT_WRAPPER = re.compile(r"\\(?:text|mbox|mathrm|textbf)\s*\{([^{}]*)\}")

_INLINE_MATH = re.compile(r"\$([^$]+)\$(?!\d)|\\\((.+?)\\\)")

_MATH_WORDS = frozenset({
    "pi", "sqrt", "frac", "dfrac", "tfrac", "times", "cdot", "div", "infty", "le", "leq", "ge",
    "geq", "lt", "gt", "pm", "mp", "ne", "circ", "left", "right", "log", "ln", "sin",
    "cos", "tan",
})

HEDGED = re.compile(
    # "either way" commits all the same; "either root satisfies it" checks both, offers none
    r"\beither\b(?!\s+(?:side|way|end|direction)s?\b)"
    r"(?!\s+(?:one\s+|of\s+them\s+)?(?:root|solution|value)?\s*(?:satisfies|works|checks)\b)|"
    r"\bor\s+(?:maybe|perhaps|possibly)\b|\bnot\s+sure\b|\bsomewhere\s+between\b|"
    r"^\s*between\b|\bdepending\b|\bcould\s+be\b|\bmight\s+be\b|"
    r"\btwo\s+(?:reasonable|possible|valid|plausible|defensible|different)\s+answers\b|"
    r"\b(?:somewhere|anywhere|around|about|roughly|approximately)\s+(?:from\s+|between\s+)?"
    r"-?\d[\d,.]*\s*(?:to|-|–|and)\s*-?\d",
    re.IGNORECASE,
)

# "x = √(49/4) = 7/2": an assignment's working; its last value is what is assigned
_CHAIN = re.compile(r"(?<![\w\\])([a-zA-Z]\s*=\s*)(?:(?:\\[a-z]+|[^=,;<>≠a-zA-Z])+?=\s*)+")
# "x = 7/2, or x = -7/2": the same unknown given two values, joined by "or"
# (a root's value: "\pi /2" as latexify spaces it, one value)
_ROOT = r"(?:\\[a-z]+\s+(?=[/^])|[^\s,;=])+"
_ROOTS = re.compile(rf"(?<![\w\\])([a-zA-Z])\s*=\s*{_ROOT},?\s+or\s+\1\s*=\s*{_ROOT}")
_ASSIGNMENTS = re.compile(
    # "h = 12,600 s" is one value: a comma before three digits groups thousands
    r"(?<![\w\\])[a-zA-Z]\s*=\s*[-+]?\$?(?:\d{1,3}(?:,\d{3})+(?![\d,])|[^\s,;=]+)"
    r"(?:\s*(?:,\s*(?:and\s+|or\s+)?|\bor\b|\band\b)\s*"
    r"(?:[a-zA-Z]\s*=\s*)?[-+]?[^\s,;=]+)+"
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
            elif len(piece) == 1 and end == 0 and not _LETTER_GOES_ON.match(following):
                break  # "a quarter", "x" alone: words, not an expression
        elif piece in ".;!?" or (
            piece == "," and not _LIST_GOES_ON.match(tail[token.end() :])
        ):
            break
        end = token.end()
    return tail[:end].strip().rstrip(",").strip()

def stated_value(tail: str, words: bool = False) -> str | None:
    """The committed value stated at the start of ``tail``; HEDGE when it wavers. With
    ``words`` (right after "the answer is"), a number written in words counts too."""
    tail = tail.lstrip(" \t*:_`")  # "**Final Answer:** `25 m/s`": a code span holds the value
    restated = _WORDS_THEN_DIGITS.match(tail)
    if restated:  # "nine twenty-fifths (9/25)": the digits say what the words say
        tail = restated.group(1) or restated.group(2)
    # "two-thirds" is 2/3, not "2-thirds"; "one of the most important" counts nothing
    signed = _SIGN_WORD.match(tail) if words else None
    if signed and (opens_with_word_fraction(tail[signed.end() :])
                   or _FRACTION.match(tail[signed.end() :])):
        tail = "-" + tail[signed.end() :]  # "minus three quarters" is -3/4
    elif words and not opens_with_word_fraction(tail) and not _PARTITIVE.match(tail):
        tail = NUMBER_WORD.sub(lambda m: str(number_word(m.group(0))), tail, count=1)
    if tail.startswith("\n"):
        tail = tail.lstrip().lstrip("*:_ \t")  # "### Final Answer" with the value below it
    for opening, closing in _MATH_DELIMITERS:
        if tail.startswith(opening):
            end = tail.find(closing, len(opening))
            if end > 0 and not (closing == "$" and _CURRENCY_AFTER.match(tail, end + 1)):
                # "$x = 7$ or $x = 9$": two values offered, each in its own math
                other = _OR_NEXT.match(tail, end + len(closing))
                first = tail[len(opening) : end]
                return settle(f"{first} or {other.group(1)}" if other else first)
            if opening != "$":
                return None  # display math cut off before it closed
    tail = _FILLER.sub("", tail)
    line = latexify(tail.split("\n", 1)[0])
    inline = _INLINE_MATH.search(line)
    # "−i.** (Similarly $i^{24} = 1$ ...)": a value ends its sentence before the math opens
    if inline and len(line[: inline.start()].split()) <= 3 and not _ENDED.search(
            line, 0, inline.start()):
        return settle(inline.group(1) or inline.group(2))
    ending = _VALUE_END.search(line)
    clause = line[: ending.start()] if ending else line
    if HEDGED.search(clause):
        return HEDGE
    assignments = _ASSIGNMENTS.search(_unwrapped(clause))
    if assignments and assignments.start() < 3:
        return settle(assignments.group(0))
    clause = _TEXT_WRAPPER.sub(r" \1 ", clause.replace("$", " ").replace("**", ""))
    return settle(_expression(clause))

_DASH = re.compile(r"\s[—–]\s")
# a step of a conclusion that states something: a value, in digits or in words
_STATING = re.compile(rf"[\d\\]|\b{NUMBER_WORD_BODY}\b", re.IGNORECASE)

_MATH_DELIMITER = re.compile(r"\$|\\[()]")


def _unwrapped(text: str) -> str:
    """Text without inline-math delimiters, position for position."""
    return _MATH_DELIMITER.sub(blank, text)

# a value, then the end of its sentence: "−i." or "−i.**" before an aside
_ENDED = re.compile(r"\S ?[.!?;](?:\*\*|__)?\s")
_BARE_FUNCTION = re.compile(r"(?<![\\A-Za-z])(sin|cos|tan|cot|sec|csc|ln|log|pi)(?![A-Za-z])")
_RELATION = re.compile(r"[=<>]|\\[lg]e")
_IN_BRACES = re.compile(r"\{(.+)\}")
_MATH_CHARACTER = re.compile(r"[\d\\]")  # a digit or a TeX command: math, not a word
_NEGATED_LETTER = re.compile(r"-[a-z]")


def settle(expression: str) -> str | None:
    """A stated expression, normalised; HEDGE for "6 or 8" unless both are one value."""
    expression = expression.strip()
    if not expression or len(expression) > MAX_ANSWER:
        return None
    if OR_WORD.search(expression) and not _RELATION.search(expression):
        values = [normalise_math(part) for part in OR_WORD.split(expression)]
        numbers = {exact_number(v) for v in values}
        if len(values) == 2 and len(numbers) == 1 and None not in numbers:
            return values[0]  # "0.5 or 1/2": one value said twice
        return HEDGE
    said = expression.split(", ")
    if len(said) == 2:  # "\frac{7}{10}, 7/10": seven tenths, then the same in digits
        values = [normalise_math(part) for part in said]
        if exact_number(values[0]) is not None and exact_number(values[0]) == exact_number(
                values[1]):
            return values[0]
    braces = _IN_BRACES.fullmatch(expression)
    if braces:
        expression = "\\{" + braces.group(1) + "\\}"
    # "−sin x", "−π": a function or constant by its bare name is the TeX one
    answer = normalise_math(_BARE_FUNCTION.sub(r"\\\1", expression))
    # "−i": a negated letter is an expression, a bare "x" names the unknown
    return answer if answer and (_MATH_CHARACTER.search(answer)
                                 or _NEGATED_LETTER.fullmatch(answer)) else None

# "The result is 0.7 (multiplying 0.2 by 3 first, then adding 0.1).": an aside in words
# explains the value; its "then" is not the sentence's conclusion
_ASIDE = re.compile(
    r"\((?!\s*(?:which|that|i\.e\.|or|=))(?=[^()]*(?<![\\A-Za-z])[A-Za-z]{3,}\b)[^()]*\)"
)

def blank(match: re.Match[str]) -> str:
    return " " * len(match.group(0))

def undated(text: str, question: str | None) -> str:
    """``text`` with its dates in prose blanked, unless the question asks about dates."""
    if question and _ABOUT_DATES.search(question) or not _DATE.search(text):
        return text
    return _DATE.sub(blank, text)

# the unit after a value ("215 minutes", "300 kJ"), and an object named before one ("the
# point (0, -3)")
_UNIT_AFTER = re.compile(r"\d\s*([A-Za-z]+)")
_OBJECT_FIRST = re.compile(r"\s*(?:the|an?)\s+[a-z]{3,}\s*[-$(\d\\]", re.IGNORECASE)


def _other_form(stated: str, restated: str) -> bool:
    """Whether a restatement gives the value in another unit ("215 minutes, which is 3 hours
    and 35 minutes"; "300 000 J, i.e. 300 kJ") or as another object ("-3, i.e. the point (0,
    -3)"): the value stated first is the answer, the restatement a conversion beside it."""
    if _OBJECT_FIRST.match(restated):
        return True
    before = _UNIT_AFTER.findall(stated)
    after = _UNIT_AFTER.search(restated)
    return bool(before and after and before[-1].lower() != after.group(1).lower())


@lru_cache(maxsize=256)  # a closing sentence is read by several rules in turn
def closing_statement(sentence: str, question: str | None = None) -> str | None:
    """The value a closing sentence states: after its conclusion's last verb or ``=``, with
    the clauses that only qualify it ("when x = 2", ", attained at x = -3") left out."""
    sentence = committed_clause(latexify(_ASIDE.sub(blank, sentence)), question, _VERB)
    parts = [part for part in CONCLUSION.split(sentence) if part.strip()]
    # "it is at (3, 2), and the parabola opens upward": a last step without a value adds none
    stating = [part for part in parts if _STATING.search(part)] or parts
    clause = _DISCOURSE.sub("", stating[-1] if stating else sentence)
    dash = _DASH.search(clause)
    if dash and _STATING.search(clause, 0, dash.start()):
        clause = clause[: dash.start()]  # "6.4 or 6.5 — the 8 makes it borderline": a remark
    clause = _INTRODUCTION.sub("", clause)
    restated = _RESTATED.search(clause)
    # "3x² - 4, which is zero at x = ±2/√3": a property under a condition, not the answer again
    if restated and _other_form(clause[: restated.start()], clause[restated.end() :]):
        clause, restated = clause[: restated.start()], None
    if restated and not _PROPERTY.match(clause, restated.end()) and not converted(
        clause[: restated.start()], clause[restated.end() :], question
    ):
        value = stated_value(clause[restated.end() :], words=True)
        if value is not None and value != HEDGE:
            return value
    verbs = list(_VERB.finditer(clause))
    approximate = _APPROXIMATE.search(clause)
    if approximate and (not verbs or verbs[0].start() > approximate.start()):
        verbs = [approximate]  # "π ≈ 3.14": the approximation is what is stated
    roots = _ROOTS.search(_CHAIN.sub(r"\1", _unwrapped(clause)))
    if roots:  # "x = √(49/4) = 7/2, or x = −7/2": both roots, each after its working
        return settle(roots.group(0))
    if verbs:
        ending = _VALUE_END.search(clause, verbs[0].end())
        if ending:
            clause = clause[: ending.start()]
    if HEDGED.search(clause):
        return HEDGE
    assignments = _ASSIGNMENTS.search(_unwrapped(clause))
    if assignments:
        return settle(assignments.group(0))
    for match in reversed([v for v in verbs if v.end() <= len(clause)][-MAX_TRIED:]):
        # "is forty-two" states a value; "a week has seven days" states a fact
        value = stated_value(clause[match.end() :], words=_STATES.match(match.group(0)) is not None)
        if value is not None:
            return value
    value = stated_value(clause)
    if value is not None or verbs:
        return value
    first = _FIRST_VALUE.search(clause)  # "the company grew 2.2% this year"
    return stated_value(clause[first.start() :]) if first else None

def as_math(content: str) -> str:
    """A box's, tag's or cell's content as inline math: "$55" (a price) as ``$55$``."""
    if content.count("$") == 1:
        content = re.sub(r"\\?\$(?=\s*\d)", "", content)
    return content if "$" in content else f"${content}$"

def wavers(text: str, position: int, value: str) -> bool:
    """Whether the sentence stating ``value`` at ``position`` entertains another value too
    ("The answer is probably 12, but it might be 14")."""
    start = alternative_after(text, position)
    if start is None or value == HEDGE:
        return False
    other = stated_value(text[start : start + 200], words=True)
    return other is not None and other != HEDGE and other != value

# "nine twenty-fifths (9/25)", "nineteen twenty-fourths, 19/24": words, then the same in digits
_WORDS_THEN_DIGITS = re.compile(
    r"[A-Za-z][A-Za-z -]*(?:\(\s*(-?\d[\d./,]*)\s*\)|,\s+(-?\d+(?:/\d+|\.\d+)?)(?![\d/.]\d))")
_PARTITIVE = re.compile(r"[a-z]+\s+of\b", re.IGNORECASE)
_SIGN_WORD = re.compile(r"(?:minus|negative)\s+", re.IGNORECASE)


__all__ = [
    "HEDGE",
    "HEDGED",
    "MAX_ANSWER",
    "MAX_TRIED",
    "as_math",
    "blank",
    "closing_statement",
    "settle",
    "stated_value",
    "undated",
    "wavers",
]
