"""Math: which statement of a response's conclusion commits to the quantity asked for.

A careful grader reads the closing sentences for the one that commits to what the question
asks: it names the quantity ("The GCD is 18.", "The sale price is $68."), its symbol ("So
sin θ = 7/25.", "f'(x) = ..."), the unknown solved for ("So x is 2.5."), the question's own
expression ("(x + 3)(x − 7) = x² − 4x − 21"), the noun counted ("15 sides"), the question's
verb ("The spring stores 2.25 J." for "How much energy does it store?"), or it is marked as the
result (a bold value, "Solution:", "So ..."). What follows it is commentary (another
quantity, a what-if, a check in words, a common mistake) unless it commits too or corrects.
"""

from __future__ import annotations

import re

from promptmill.extraction.asked import (
    QUALIFIED,
    aside,
    asked_unit,
    asked_words,
    commentary,
    givens,
    other_quantity,
)
from promptmill.extraction.mathnorm import latexify
from promptmill.extraction.text import CORRECTION, HOW_MANY

# "**$58.50**", "**The distance is 10.**": a bold span holding a value; not a bold label
# ("**Step 2:**", "**Given away:** 12")
MARKED_VALUE = re.compile(r"(\*\*|__)(?!\s*step\b)([^*_\n]*?\d[^*_\n]*?)(?<!:)\1", re.IGNORECASE)
_LABEL = re.compile(r"^\W*(?:solutions?|total|result|answer|final)\s*:", re.IGNORECASE)
# "So x is 2.5.", "Therefore, there are 2.5 moles ...": a sentence that opens as the conclusion
_CONCLUDING = re.compile(r"^\W*(?:so|therefore|thus|hence|overall|in\s+total|altogether)\b",
                         re.IGNORECASE)
_STATES_VALUE = re.compile(r"\d|\\frac|\\sqrt|\\pi")
# the short names and symbols of quantities a question spells out
_SYMBOLS = {
    "sine": ("sin",), "cosine": ("cos",), "tangent": ("tan",),
    "derivative": ("f'(", "f′(", "dy/dx", "y'", "y′", "\\frac{dy}{dx}", "d/dx"),
    "logarithm": ("log",),
}
_INITIALS = re.compile(r"\b([a-z])[a-z]+\s+([a-z])[a-z]+\s+([a-z])[a-z]+\b")
_PRONOUNS = frozenset({"it", "its", "they", "them", "this", "that", "these", "those", "there"})
# "How much energy does it use?", "How long do 8 workers take?": the verb the question asks by
_ASKED_VERB = re.compile(
    r"\b(?:does|do|did|will|would|can)\s+(?:it|they|he|she|(?:the\s+|each\s+|every\s+)?"
    r"[\w-]+(?:\s+[\w-]+)?)\s+([a-z]{3,})\b(?=[^?]*\?)",
    re.IGNORECASE,
)
_SOLVE_VARIABLE = re.compile(r"\bsolve\b[^?.]*?(?<![\w\\])([a-z])(?![\w(])", re.IGNORECASE)
_EXPRESSION = re.compile(r"(?:\d\s*)?\([^()]*[a-z][^()]*\)\s*\([^()]*\)|d[a-z]/d[a-z]",
                         re.IGNORECASE)


def _plain(text: str) -> str:
    """Text with Unicode minus and dashes as ``-`` and spaces dropped, to compare expressions."""
    return re.sub(r"\s+", "", text.replace("−", "-").replace("–", "-")).lower()


class AskedQuantity:
    """What a question asks for, in the forms a committing statement may name it."""

    __slots__ = ("expressions", "given", "names", "question", "symbols", "unit", "variable", "verb")

    def __init__(self, question: str | None) -> None:
        self.question = question
        self.given = givens(question)
        self.unit = asked_unit(question)  # "in m/s", "(in seconds)": the unit asked in
        question = question or ""
        words, heads = asked_words(question)
        lowered = question.lower()
        # one letter names an unknown, not a quantity: "what is p" is ``variable``
        self.names: set[str] = {w for w in (heads or words) if w not in _PRONOUNS and len(w) > 1}
        # "greatest common divisor" is also "the GCD"
        self.names |= {"".join(m.groups()) for m in _INITIALS.finditer(lowered)
                       if {w.rstrip("s") for w in m.group(0).split()} <= words}
        self.symbols: set[str] = {s for w in words for s in _SYMBOLS.get(w, ())}
        variable = re.search(r"\b(?:value\s+of|solve\s+for|find|what\s+is)\s+([a-z])\b(?!\s*[-=(+*/^<>])",
                             question) or _SOLVE_VARIABLE.search(question)
        self.variable = variable.group(1) if variable else None  # the unknown solved for
        counted = HOW_MANY.search(question)
        if counted:
            self.names.add(counted.group(1).lower().rstrip("s"))
        verb = _ASKED_VERB.search(question)
        self.verb = verb.group(1).lower() if verb else None  # "use" of "does it use"
        # "(x + 3)(x - 7)", "dy/dx": an expression the statement may restate before its value
        self.expressions = [_plain(m.group(0)) for m in _EXPRESSION.finditer(question)]

    def named_by(self, sentence: str) -> bool:
        """Whether a statement names the quantity asked for before (or right after) its value."""
        text = latexify(sentence)
        lowered = text.lower()
        tokens = {t.rstrip("s") for t in re.findall(r"[a-z']+", lowered)}
        if self.names & tokens or any(
            re.search(rf"(?<![a-z]){re.escape(s)}(?![a-z])", lowered) for s in self.symbols
        ):
            return True
        if self.verb and re.search(rf"\b{re.escape(self.verb)}(?:e?s|d)?\s+[-$\d]", lowered):
            return True
        if self.unit and re.search(rf"\d\s*{re.escape(self.unit)}(?![\w/])", text):
            return True  # "that's 20/3 m/s" where the question asks "in m/s"
        plain = _plain(text)
        if any(e and f"{e}=" in plain for e in self.expressions):
            return True
        return self.variable is not None and re.search(
            rf"(?<![\w\\']){self.variable}\s*(?:=|\bis\b)\s*[-−$\d\\]", text) is not None


def commits(sentence: str, asked: AskedQuantity) -> bool:
    """Whether a closing sentence commits to a value as the answer (see the module)."""
    if not _STATES_VALUE.search(sentence) or commentary(sentence, asked.question, asked.given):
        return False
    if aside(sentence):
        return False  # "For reference, the 10th term would be 47."
    named = asked.named_by(sentence)
    marked = MARKED_VALUE.search(sentence) is not None
    # "The bill plus tip comes to $54.": a quantity of its own, though it names the tip
    if not marked and other_quantity(sentence, asked.question) and (
        not named or QUALIFIED.search(sentence)
    ):
        return False
    return (named or marked or _LABEL.match(sentence) is not None
            or _CONCLUDING.match(sentence) is not None)


def committed_index(closing: list[str], question: str | None) -> int | None:
    """Of the closing sentences, the index of the last that commits; None if none does."""
    asked = AskedQuantity(question)
    found = None
    for index, sentence in enumerate(closing):
        if commits(sentence, asked) or found is not None and CORRECTION.search(sentence):
            found = index
    return found


def marked_value(sentence: str) -> str | None:
    """The content of a sentence's one bold value ("So you'd pay **$58.50**; ..."), if it has
    exactly one."""
    spans = MARKED_VALUE.findall(sentence)
    return spans[0][1] if len(spans) == 1 else None


__all__ = ["MARKED_VALUE", "AskedQuantity", "committed_index", "commits", "marked_value"]
