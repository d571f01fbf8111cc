"""Math answers in one canonical LaTeX spelling, so equal answers compare equal cheaply.

Unicode math (``−7``, ``2√3``, ``5.2 × 10⁻⁴``, ``x ≤ 2``, ``½``), words for simple fractions
("three quarters", "two and a half"), mixed numbers (``2 1/2``), thousands written with
commas or spaces (``10 000``), ``5.2e-4``, right-hand sides (``x = 5/2`` is ``5/2``), sets
(``x = 4 or x = -4``), pairs (``x = 3, y = 2``) and inequalities as intervals
(``-2 ≤ x ≤ 4`` is ``[-2, 4]``). What math-verify then compares is the committed value.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from promptmill.extraction.text import OR_WORD, boxed, squeeze

# "eˣ", "2ⁿ": letters written as superscripts too
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺ˣⁿ", "0123456789-+xn")
_SUPERSCRIPTS = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺ˣⁿ]+")
_SUBSCRIPT = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_SUBSCRIPTS = re.compile("[₀₁₂₃₄₅₆₇₈₉]+")
_VULGAR = {
    "½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5),
    "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8),
    "⅝": (5, 8), "⅞": (7, 8),
}  # fmt: skip
_VULGARS = re.compile(rf"(?:(\d+)\s*)?([{''.join(_VULGAR)}])")
_SYMBOLS = {
    "−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ", "÷": "\\div ", "π": "\\pi ",
    "∞": "\\infty ", "±": "\\pm ", "∓": "\\mp ", "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ",
    "∈": "\\in ", "⩽": "\\le ", "⩾": "\\ge ", "\u2009": " ", "\u202f": " ", "\u00a0": " ",
}  # fmt: skip
_SYMBOL = re.compile("|".join(map(re.escape, _SYMBOLS)))
_ROOT = re.compile(r"√\s*(\(|\{|\d+(?:\.\d+)?|[A-Za-z])")

_COUNT_WORDS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
    )
} | {"a": 1, "an": 1}
# "nineteen twenty-fourths": tens before a count or a part add to it
_TEN_WORDS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
              "eighty": 80, "ninety": 90}
_PARTS = {
    "half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4,
    "fourths": 4, "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "seventh": 7,
    "sevenths": 7, "eighth": 8, "eighths": 8, "ninth": 9, "ninths": 9, "tenth": 10,
    "tenths": 10, "eleventh": 11, "elevenths": 11, "twelfth": 12, "twelfths": 12,
} | {f"{teen}th{s}": value for teen, value in _COUNT_WORDS.items() if value > 12 for s in ("", "s")
     } | {f"{ten[:-1]}ieth{s}": value for ten, value in _TEN_WORDS.items() for s in ("", "s")}
# fmt: skip
_COUNT = "|".join(sorted(_COUNT_WORDS, key=len, reverse=True))
_PART = "|".join(sorted(_PARTS, key=len, reverse=True))
_TEN = "|".join(_TEN_WORDS)
_A_PART = re.compile(rf"(?<![a-z])(?:{_PART})", re.IGNORECASE)  # tried at word starts only


def _may_name_part(text: str) -> bool:
    """Whether ``text`` could hold a part's name: each has "th", "hal" or "quarter" in it
    (a substring test is far cheaper than ``_A_PART``'s long alternation)."""
    lowered = text.lower()
    return "th" in lowered or "hal" in lowered or "quarter" in lowered

_WORD_FRACTION = re.compile(
    rf"\b(?:(?P<whole>{_COUNT}|\d+)\s+and\s+)?(?P<num>(?:{_TEN})(?:[\s-](?:{_COUNT}))?|{_COUNT})"
    rf"[\s-]+(?P<part>(?:(?:{_TEN})[\s-])?(?:{_PART}))\b",
    re.IGNORECASE,
)
_MIXED = re.compile(r"(?<![\d./,])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\d/.])")
_LATEX_MIXED = re.compile(r"(?<![\d.}^_])(\d+)\s*\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}")
# "10 000", and "11 576.25" with its decimals after the last group
_SPACED_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?: \d{3})+)(?![\d/]|,\d)")
_SCIENTIFIC = re.compile(
    r"(\d(?:\.\d+)?)\s*(?:[x*]|\\times|\\cdot)\s*10\s*\^\s*\{?\s*([-+]?\s*\d+)\s*\}?"
    r"|(\d(?:\.\d+)?)[eE]([-+]?\d+)\b"
)


def opens_with_word_fraction(text: str) -> bool:
    """Whether ``text`` starts with a fraction in words ("two-thirds of an hour")."""
    return _WORD_FRACTION.match(text.lstrip()) is not None


def _fraction(numerator: int, denominator: int, whole: int = 0) -> str:
    value = Fraction(whole * denominator + numerator, denominator)
    if value.denominator == 1:
        return str(value.numerator)
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _root(text: str) -> str:
    """``√(25 + 144)`` and ``√12`` as ``\\sqrt{...}``."""
    out = []
    last = 0
    for match in _ROOT.finditer(text):
        if match.start() < last:
            continue
        out.append(text[last : match.start()])
        opener = match.group(1)
        if opener in "({":
            closer = ")" if opener == "(" else "}"
            depth, end = 0, match.end(1) - 1
            for end in range(match.end(1) - 1, len(text)):
                depth += {opener: 1, closer: -1}.get(text[end], 0)
                if depth == 0:
                    break
            out.append(f"\\sqrt{{{text[match.end(1) : end]}}}")
            last = end + 1
        else:
            out.append(f"\\sqrt{{{opener}}}")
            last = match.end()
    out.append(text[last:])
    return "".join(out)


_PLUS_OR_MINUS = re.compile(r"\bplus\s+or\s+minus\s+(?=[\d\\])", re.IGNORECASE)


@lru_cache(maxsize=1024)  # a response's statements are read by several rules in turn
def latexify(text: str) -> str:
    """Unicode math, words for fractions, mixed numbers and spaced thousands as LaTeX."""
    if not text.isascii():
        text = _VULGARS.sub(
            lambda m: _fraction(*_VULGAR[m.group(2)], whole=int(m.group(1) or 0)), text
        )
        text = _SUPERSCRIPTS.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPT) + "}", text)
        text = _SUBSCRIPTS.sub(lambda m: "_{" + m.group(0).translate(_SUBSCRIPT) + "}", text)
        if "√" in text:
            text = _root(text)
        text = _SYMBOL.sub(lambda m: _SYMBOLS[m.group(0)], text)
    if _may_name_part(text) and _A_PART.search(text):
        text = _WORD_FRACTION.sub(_word_fraction, text)
    text = _MIXED.sub(
        lambda m: _fraction(int(m.group(2)), int(m.group(3)), int(m.group(1)))
        if int(m.group(2)) < int(m.group(3))
        else m.group(0),
        text,
    )
    if "frac" in text:
        text = _LATEX_MIXED.sub(
            lambda m: _fraction(int(m.group(2)), int(m.group(3)), int(m.group(1)))
            if int(m.group(2)) < int(m.group(3))
            else m.group(0),
            text,
        )
    if "minus" in text:
        text = _PLUS_OR_MINUS.sub(r"\\pm ", text)  # "x is plus or minus 5"
    text = _SPACED_THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(" ", ""), text)
    return _SCIENTIFIC.sub(_scientific, text)


def _word_fraction(match: re.Match[str]) -> str:
    def count(words: str) -> int:
        if words.isdigit():
            return int(words)
        return _COUNT_WORDS.get(words.lower()) or number_word(words)

    numerator = count(match.group("num"))
    *tens, part = re.split(r"[\s-]", match.group("part").lower())
    denominator = sum(_TEN_WORDS[t] for t in tens) + _PARTS[part]
    whole = count(match.group("whole")) if match.group("whole") else 0
    if numerator == 1 and match.group("num").lower() in ("a", "an") and not whole:
        # "a quarter" is 1/4, but "a third of the way" reads the same: still 1/4 and 1/3
        return _fraction(1, denominator)
    return _fraction(numerator, denominator, whole)


def _scientific(match: re.Match[str]) -> str:
    mantissa = match.group(1) or match.group(3)
    exponent = (match.group(2) or match.group(4)).replace(" ", "")
    return f"{mantissa}\\times 10^{{{exponent}}}"


_UNITS_AFTER = re.compile(
    r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{[^{}]*\}(?:\^\{?\d\}?)?(?:/\S+)?$"
)
_PLAIN_UNITS = re.compile(
    r"(-?\d+/\d+|-?\d+(?:\.\d+)?\\times ?10\^\{-?\d+\}"  # "5.2\times 10^{-4} M"
    r"|\$?-?\$?\d[\d,]*(?:\.\d+)?%?|\\frac\{\d+\}\{\d+\}|-?\d*\\sqrt\{\d+\}|\d*\\pi)"
    # "50/3 m/s", "-2.25 m/s^{2}": a unit may end in a power
    r"\s*(?:(?<=\s)(?!and\b|or\b)[A-Za-z][\w./^ ]*(?:\^\{\d\})?|[Ωμ][\w./^ ]*)"
)
_VARIABLE = r"(?:[a-zA-Z](?:_\{?\w+\}?)?|[a-zA-Z]\([^()=]*\))"
_ASSIGNMENT = re.compile(rf"^\s*({_VARIABLE})\s*=\s*(.+?)\s*$")
_UNKNOWNS = frozenset("xyzwabc")  # variables whose values together answer "solve for x, y"
_INEQUALITY = {"<": "<", "\\lt": "<", "\\le": "<=", "\\leq": "<=", "<=": "<=",
               ">": ">", "\\gt": ">", "\\ge": ">=", "\\geq": ">=", ">=": ">="}  # fmt: skip
_RELATION = r"(\\leq|\\geq|\\le|\\ge|\\lt|\\gt|<=|>=|<|>)"
_VALUE = r"(-?\s*(?:\\infty|\\pi|\\frac\{[^{}]+\}\{[^{}]+\}|\d+(?:\.\d+)?\\?\w*|\\sqrt\{[^{}]+\}))"
_CHAIN = re.compile(rf"^{_VALUE}\s*{_RELATION}\s*[a-zA-Z]\s*{_RELATION}\s*{_VALUE}$")
_ONE_SIDED = re.compile(rf"^[a-zA-Z]\s*{_RELATION}\s*{_VALUE}$")


def _top_level_split(text: str) -> list[str]:
    """``text`` split at commas, "or" and "and" that are outside brackets."""
    parts, depth, start = [], 0, 0
    i = 0
    while i < len(text):
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            # "4,200" groups thousands; "4, 200" lists two values
            joiner = re.match(r",(?!\d{3}(?!\d))\s*(?:and\s+|or\s+)?|\s+(?:or|and)\s+"
                              r"|\\text\{\s*(?:or|and)\s*\}", text[i:])
            if joiner and (char == "," or text[i].isspace() or char == "\\"):
                parts.append(text[start:i])
                i += joiner.end()
                start = i
                continue
        i += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _top_level_split_at_equals(text: str) -> list[str]:
    """``text`` split at the ``=`` signs outside brackets (a chain's sides)."""
    sides, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "=" and depth == 0:
            sides.append(text[start:i])
            start = i + 1
    sides.append(text[start:])
    return [side.strip() for side in sides if side.strip()] or [text]


_SEVERAL = re.compile(r"[,=]|\bor\b|\band\b")  # several values, or an assignment
_ORDER_SIGN = re.compile(r"[<>]|\\[lg]e")
_MEMBER = re.compile(r"^[a-zA-Z]\s*\\in\s*(.+)$")  # "x \in [2, 5]"


def _committed(text: str) -> str:
    """Right-hand sides of assignments; several as a set or a pair; inequalities as intervals."""
    parts = _top_level_split(text) if _SEVERAL.search(text) else [text]
    if len(parts) > 1:
        if OR_WORD.search(text) and all(_ONE_SIDED.match(part) for part in parts):
            # "x < -2 or x > 2": the union of the rays
            return " \\cup ".join(_committed(part) for part in parts)
        assigned = [_ASSIGNMENT.match(part) for part in parts]
        if assigned[0] is not None and "=" in text:
            names = [m.group(1) if m else None for m in assigned]
            values = [m.group(2) if m else part for m, part in zip(assigned, parts, strict=True)]
            if len({n for n in names if n}) > 1 and all(names):
                if all(n in _UNKNOWNS for n in names):  # type: ignore[operator]
                    return "(" + ", ".join(values) + ")"  # x = 3, y = 2: a solution pair
                return values[-1]  # "r = 6 and A = 36\pi": the last quantity found
            return "\\{" + ", ".join(values) + "\\}"  # x = 4 or x = -4; x = 2, 3
        return text
    if "=" in text and not _ORDER_SIGN.search(text):
        text = _top_level_split_at_equals(text)[-1]  # "x = 5/2", "3(2) + 5 = 11": the value
    member = _MEMBER.match(text)
    if member:
        return member.group(1)
    chain = _CHAIN.match(text)
    if chain:
        low, left, right, high = chain.groups()
        if _INEQUALITY[left][0] == "<" and _INEQUALITY[right][0] == "<":
            opening = "[" if _INEQUALITY[left] == "<=" else "("
            closing = "]" if _INEQUALITY[right] == "<=" else ")"
            return f"{opening}{low.replace(' ', '')}, {high.replace(' ', '')}{closing}"
    one_sided = _ONE_SIDED.match(text)
    if one_sided:
        relation, bound = _INEQUALITY[one_sided.group(1)], one_sided.group(2).replace(" ", "")
        if relation[0] == ">":
            return f"{'[' if relation == '>=' else '('}{bound}, \\infty)"
        return f"(-\\infty, {bound}{']' if relation == '<=' else ')'}"
    return text


_LEADING_WORD = re.compile(r"^(?:approximately|about|roughly|around|exactly|simply|just)\s+")
_DELIMITERS = re.compile(r"^(\$\$?|\\\[|\\\()|(\$\$?|\\\]|\\\))$")
_REMARK = re.compile(r"\s*\((?=[^()]*(?<![\\A-Za-z])[A-Za-z]{3,})[^()]*\)$")
_FRAC = re.compile(r"\\[dt]frac")
_BARE_SQRT = re.compile(r"\\sqrt\s*(\d+|[A-Za-z](?![A-Za-z]))")
_SIZING = re.compile(r"\\(?:left|right)(?![A-Za-z])|\\displaystyle")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b|~")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|\\circ|°")
_WHOLE_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_CURRENCY = re.compile(r"^-?[$£€¥]")  # "£120", "€70", "-$5"
_DOLLAR = re.compile(r"(?<!\\)\$")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?")
_EQUALS = re.compile(r"\s*=\s*")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1024)  # a stated value is normalised by several rules in turn
def normalise_math(answer: str) -> str:
    """LaTeX answer in a canonical spelling: no wrappers, units, spacing or thousands commas;
    the committed value of an assignment, a set, a pair or an inequality."""
    text = _LEADING_WORD.sub("", squeeze(answer).strip())
    boxes = boxed(text)
    if boxes:
        text = boxes[-1][2]
    text = _DELIMITERS.sub("", text.strip()).strip()
    if text.startswith("`") or text.endswith("`"):
        text = text.strip("`").strip()  # "`25 m/s`": a code span around the value
    text = text.split("≈")[0].split("\\approx")[0].strip()  # the exact value comes first
    text = latexify(text)
    text = _REMARK.sub("", text)  # "5 (since x > 0)", but not an interval such as (5, \infty)
    if "\\" in text:
        text = _FRAC.sub(r"\\frac", text)
        text = _BARE_SQRT.sub(r"\\sqrt{\1}", text)  # \sqrt50
        text = _SIZING.sub("", text)
        text = _SPACING.sub(" ", text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\%", "%").replace("\\$", "$")
    whole = _WHOLE_TEXT.fullmatch(text)
    if whole:
        text = whole.group(1)
    text = _UNITS_AFTER.sub("", text)  # "10 \text{ cm}^2", "5 \text{m/s}"
    units = _PLAIN_UNITS.fullmatch(text)  # "42 apples", "36\pi square units"
    if units:
        text = units.group(1)
    text = _CURRENCY.sub(lambda m: "-" if m.group(0).startswith("-") else "", text)
    text = _DOLLAR.sub("", text)
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    text = _EQUALS.sub("=", text)
    text = _SPACES.sub(" ", text).strip().rstrip(".").strip()
    committed = _committed(text) if text else text
    if committed != text and len(committed) < len(text) and "=" not in committed:
        return normalise_math(committed)  # "m = 2,500 g": the value's own units and commas
    return committed


_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
_SIMPLE_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)/(\d+)")
_SCI = re.compile(r"(-?\d+(?:\.\d+)?)\\times ?10\^\{?(-?\d+)\}?")


def exact_number(answer: str) -> Fraction | None:
    """The exact value of a plain number, fraction or ``a\\times 10^{b}``; None otherwise."""
    try:
        if _DECIMAL.fullmatch(answer):
            return Fraction(answer)
        match = _SIMPLE_FRACTION.fullmatch(answer)
        if match:
            if match.group(2) is not None:
                sign = -1 if match.group(1) else 1
                return sign * Fraction(int(match.group(2)), int(match.group(3)))
            return Fraction(int(match.group(4)), int(match.group(5)))
        match = _SCI.fullmatch(answer)
        if match and abs(int(match.group(2))) < 400:
            return Fraction(match.group(1)) * Fraction(10) ** int(match.group(2))
    except (ValueError, ZeroDivisionError):
        return None
    return None


_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_BELOW_HUNDRED = (
    rf"(?:(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(_UNITS[1:10])}))?|{'|'.join(_UNITS)})"
)
# a number in words: "forty-two", "minus three", "one hundred fifty-two", "two million"
NUMBER_WORD_BODY = (
    rf"(?:(?:minus|negative)\s+)?"
    rf"(?:(?:{'|'.join(_UNITS[1:10])})\s+hundred(?:\s+(?:and\s+)?{_BELOW_HUNDRED})?"
    rf"|{_BELOW_HUNDRED})(?:\s+(?:thousand|million|billion))?\b"
    r"(?!\s+(?:and\s+an?\s+)?(?:half|halves|thirds?|quarters?|fourths?|fifths?|sixths?|"
    r"sevenths?|eighths?|ninths?|tenths?))"
)
# a number in words opening a text
NUMBER_WORD = re.compile(rf"^\s*{NUMBER_WORD_BODY}", re.IGNORECASE)


_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}


def number_word(words: str) -> int:
    """The value of a number in words: "twelve" is 12, "forty-two" 42, "minus three" -3,
    "one hundred fifty-two" 152, "two million" 2000000."""
    parts = [part for part in re.split(r"[- ]+", words.strip().lower()) if part != "and"]
    if parts[-1] in _SCALES:
        return number_word(" ".join(parts[:-1])) * _SCALES[parts[-1]]
    sign = 1
    if parts[0] in ("minus", "negative"):
        sign, parts = -1, parts[1:]
    total = 0
    if len(parts) > 1 and parts[1] == "hundred":
        total, parts = 100 * _UNITS.index(parts[0]), parts[2:]
    if parts and parts[0] in _TENS:
        total += 20 + 10 * _TENS.index(parts[0])
        parts = parts[1:]
    if parts:
        total += _UNITS.index(parts[0])
    return sign * total


__all__ = ["NUMBER_WORD", "NUMBER_WORD_BODY", "exact_number", "latexify", "normalise_math",
           "number_word"]
