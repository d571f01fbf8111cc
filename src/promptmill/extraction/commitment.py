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
from functools import lru_cache

from promptmill.extraction.asked import (
    ASKED_VARIABLE,
    QUALIFIED,
    aside,
    asked_unit,
    asked_words,
    commentary,
    complement,
    givens,
    opposite_end,
    other_quantity,
    per_item,
)
from promptmill.extraction.mathnorm import NUMBER_WORD_BODY, latexify
from promptmill.extraction.text import (
    CHECK,
    CONCLUSION,
    CORRECTION,
    DIGIT,
    HOW_MANY,
    LOWER_WORD,
    REJECTED,
    compiled,
)

# "**$58.50**", "**The distance is 10.**": a bold span holding a value; not a bold label
# ("**Step 2:**", "**Given away:** 12")
MARKED_VALUE = re.compile(r"(\*\*|__)(?!\s*step\b)([^*_\n]*?\d[^*_\n]*?)(?<!:)\1",
                          re.IGNORECASE)
_LABEL = re.compile(r"^\W*(?:solutions?|total|result|answer|final)\s*:", re.IGNORECASE)
# "So x is 2.5.", "Therefore, there are 2.5 moles ...": a sentence that opens as the conclusion
_CONCLUDING = re.compile(r"^\W*(?:so|therefore|thus|hence|overall|in\s+total|altogether)\b",
                         re.IGNORECASE)
# "At x = 0 the slope is 3.", "If they add a 20% tip, ...": a case the question may not set
_CONDITION = re.compile(
    r"^\W*(?:at|if|with|without|for|when|whenever|assuming|suppose|had|were)\b"
    r"(?:[^,:;]*?(?=[,:;])|(?:\s+\S+){1,4}?(?=\s+(?:it|they|he|she|we|you|the|each|that|this)\b))",
    re.IGNORECASE,
)
# "After 10 days", "Within 3 minutes": a moment the sentence sets, with a number of its own
_TIMED = re.compile(r"^\W*(?:after|before|within|by)\s+(?:the\s+|only\s+|just\s+)?"
                    r"(?:first\s+)?\d[\d,.]*\s+[a-z]+\b", re.IGNORECASE)
# "To average 88 she would need 98": a purpose clause setting a number of its own is a what-if
_PURPOSE = re.compile(r"^\W*to\s+[a-z]+\b[^,;:]*?\d[^,;:]*?(?=[,;:]|\s+(?:it|they|he|she|we|you|"
                      r"the|each|that|this)\b)", re.IGNORECASE)
_SMALL = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve")
_SMALL_WORD = re.compile(rf"\b({'|'.join(_SMALL)})\b", re.IGNORECASE)
# "The probability of a sum of 12 is ...": the quantity of a case the subject sets itself
_OTHER_CASE = re.compile(r"^\W*the\s+(?:[a-z]+\s+){0,2}?(?:of|for|with|at)\b[^=,;:]*?"
                         rf"(?:\d|\b(?:{'|'.join(_SMALL)})\b)[^=,;:]*?"
                         r"\s(?:is|are|was|were|would\s+be|equals)\b", re.IGNORECASE)


def _small_numbers(text: str, digits: bool = False) -> set[str]:
    """The small numbers a text writes in words ("at least one head" has 1), as digits; with
    ``digits``, its numbers in digits too."""
    found = {str(_SMALL.index(w.lower())) for w in _SMALL_WORD.findall(text)}
    return found | set(_VALUES.findall(text)) if digits else found
# "Testing x = 6: 21 > 0", "Check: 613 + 387 = 1000": a test of a value, no answer of its own
_TESTS = re.compile(r"^\W*(?:(?:a\s+)?(?:quick|sanity|consistency|final|numeric(?:al)?)\s+)?"
                    r"(?:tests?|test(?:ing)?|checks?|check(?:ing)?|verif(?:y|ying|ication))\b"
                    # "x = 3 gives 3 ≥ 5, false.": a value put in to test it
                    r"|^\W*(?:(?:and|but|while|whereas)\s+)?[a-z]\s*=\s*-?\d[\d.]*\s+"
                    r"(?:gives|yields|makes)\b", re.IGNORECASE)
# "..., so the solution stands.": the answer before it confirmed, no value of its own
_CONFIRMS = re.compile(r"\b(?:solution|answer|root|result|it)\s+(?:stands|holds)\b(?!\s+[-$\d])",
                       re.IGNORECASE)
_DENIED = re.compile(r"\b(?:is|are|was|were)\s+not\b|\b(?:isn't|aren't|wasn't)\b", re.IGNORECASE)
_STATES = re.compile(r"=|\b(?:is|are|was|were|equals?|so|therefore|thus)\b|'s\b", re.IGNORECASE)
_STATES_VALUE = re.compile(r"\d|\\frac|\\sqrt|\\pi")
# the short names and symbols of quantities a question spells out
_SYMBOLS = {
    "sine": ("sin",), "cosine": ("cos",), "tangent": ("tan",),
    "derivative": ("f'(", "f′(", "dy/dx", "y'", "y′", "\\frac{dy}{dx}", "d/dx"),
    "logarithm": ("log",), "deviation": ("σ", "\\sigma"), "distance": ("d",),
    "probability": ("p(", "p ="), "volume": ("v =",),
    # "gcd(462, 1071) = 21": the quantity by its function's name
    "divisor": ("gcd(", "gcd ("), "multiple": ("lcm(", "lcm ("),
}
# "The solution is (7, 3).": a subject that names the answer itself
_GENERIC = frozenset({"answer", "solution", "result"})
# words that may stand before the asked noun without making it another quantity
_FUNCTION = frozenset({"the", "a", "an", "its", "their", "his", "her", "our", "your", "this",
                       "that", "these", "those", "each", "every", "so", "and", "of", "is",
                       "are", "was", "new", "final", "required", "exact", "total"})
_INITIALS = re.compile(r"\b([a-z])[a-z]+\s+([a-z])[a-z]+\s+([a-z])[a-z]+\b")
_PRONOUNS = frozenset({"it", "its", "they", "them", "this", "that", "these", "those", "there"})
# "How much energy does it use?", "How long do 8 workers take?": the verb the question asks by
_ASKED_VERB = re.compile(
    r"\b(?:does|do|did|will|would|can)\s+(?:it|they|he|she|(?:the\s+|each\s+|every\s+)?"
    # in the asking sentence: "In 20 years she will be twice as old" asks nothing
    r"[\w-]+(?:\s+[\w-]+)?)\s+([a-z]{3,})\b(?=(?:[^?.]|\.(?=\S))*\?)",
    re.IGNORECASE,
)
# "7", "2.5", "3/4", "2 1/2": a value as a question or a statement gives it
_VALUES = re.compile(r"(?<![\w./])\d+(?:\.\d+)?(?:\s+\d+/\d+|/\d+)?(?![\w./])")
_SOLVE_VARIABLE = re.compile(r"\bsolve\b[^?.]*?(?<![\w\\])([a-z])(?![\w(])", re.IGNORECASE)
_EXPRESSION = re.compile(r"(?:\d\s*)?\([^()]*[a-z][^()]*\)\s*\([^()]*\)|d[a-z]/d[a-z]",
                         re.IGNORECASE)
# "Find f'(2).", "What is k^2 + 1?", "Convert 90 km/h to m/s": the question's own
# expression, which a statement restates before its value ("f'(2) = 8", "90 km/h = 25 m/s")
_OBJECT = re.compile(
    r"\b(?:find|simplify|evaluate|compute|calculate|convert|express|expand|factor|factorise|"
    r"factorize|what\s+is)\s+(?P<object>[^?]+?)(?=\s+(?:to|into|as|in|for)\s|\s*[.?]?\s*$)",
    re.IGNORECASE,
)


# "find r + s", "What is a·b?": an expression of the question's letters alone
_LETTER_TERMS = re.compile(r"[a-z](?:\s*[-+·*/]\s*[a-z])+")


def _asks_letter_terms(question: str) -> bool:
    """Whether a question asks for an expression of its letters ("What is x + y?")."""
    return any(_LETTER_TERMS.fullmatch(m.group("object").strip())
               for m in _OBJECT.finditer(question))


def _signed_names(question: str, asked: set[str]) -> set[str]:
    """The noun a question counts past its adjectives ("How many trailing zeros": zeros)."""
    names = set()
    counted = _COUNTED_NOUN.search(question)
    if counted:
        names.add(counted.group(1).lower().rstrip("s"))
    return names


def _signed_symbols(question: str, asked: set[str]) -> set[str]:
    """Symbols a statement names the asked quantity by: a function the asked expression
    applies ("the exact value of sin 75°": sin), and S for an asked sum."""
    symbols = {form.lower() for found in _OBJECT.finditer(question)
               for m in _FUNCTION_SIGN.finditer(found.group("object"))
               for form in (f"{m.group(1)} {m.group(3)}", f"{m.group(1)}({m.group(3)}",
                            f"{m.group(1)}{m.group(3)}")}
    if "sum" in asked:
        symbols.update(_SUM_SYMBOLS)
    return symbols


# "perpendicular to", "parallel to", "tangent to": a word qualifying the asked object
_QUALIFIER = re.compile(r"\b(perpendicular|parallel|tangent|normal|opposite|adjacent)\s+to\b")
_INEQUALITY_SIGN = re.compile(r"[<>≤≥]|\\[lg]eq?\b")
# "Solve 7 − 3x > −8.", "Solve x² + 9 = 34.": the one letter the equation is in
_SOLVED = re.compile(r"^\W*solve\s+([^?]*?)(?:\s+for\s+|[.?]?\s*$)", re.IGNORECASE)
_LETTER = re.compile(r"(?<![A-Za-z\\])([a-z])(?![A-Za-z(])")


def _solved_letter(question: str) -> str | None:
    """The unknown of "Solve <equation or inequality>." when one letter is all it has."""
    solved = _SOLVED.match(question)
    if solved is None or not re.search(r"[=<>≤≥]|\\[lg]e", solved.group(1)):
        return None
    letters = set(_LETTER.findall(solved.group(1)))
    return letters.pop() if len(letters) == 1 else None


# an expression with numbers under an operation: "\log_3 81", "\sqrt[3]{64}", "i^{23}", "7!/5!"
_INSTANCE = re.compile(r"(?=[^?]*\d)(?=[^?]*(?:\\[a-z]+|[!^%]|\bof\b))[^?]{3,30}")
_INSTANCE_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|[^\s{}$]")
_INSTANCE_RELATION = r"[\s{}$]*(?:=|≈|approx\b|is\b|was\b|equals\b|would\s+be\b)"


def _instance_text(text: str) -> str:
    """Text in one spelling of its operators: "log₃ 81" and "\\log_3 81" alike."""
    text = latexify(text).lower().replace("−", "-").replace("∛", "sqrt[3]").replace("√", "sqrt")
    return text.replace("\\", "")


def _instance_pattern(expression: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A pattern for ``expression`` with any numbers, stated (a relation after it), and its
    own numbers."""
    tokens = _INSTANCE_TOKEN.findall(_instance_text(expression))
    parts = [r"(\d+(?:\.\d+)?)" if t[0].isdigit() else re.escape(t) for t in tokens]
    numbers = tuple(t for t in tokens if t[0].isdigit())
    return re.compile(r"(?<![\w.])" + r"[\s{}$]*".join(parts) + _INSTANCE_RELATION), numbers


def counted_noun(question: str | None) -> str | None:
    """The noun a question counts ("How many edges ...?": edges; "How many trailing zeros
    ...?": zeros, past its adjectives)."""
    found = _COUNTED_NOUN.search(question or "") or HOW_MANY.search(question or "")
    return found.group(1) if found else None


# "greatest common divisor", "least common multiple", "highest common factor"
_TERM_OF_ART = re.compile(r"\b(greatest|least|lowest|highest)\s+(common)\s+(divisors?|multiples?|"
                          r"factors?|denominators?)\b")


_SPACES_BRACES = re.compile(r"[\s{}]+")


def _plain(text: str) -> str:
    """Text with Unicode minus and dashes as ``-``, spaces and braces dropped ("x^{2}" as
    "x^2"), to compare expressions."""
    return _SPACES_BRACES.sub("", text.replace("−", "-").replace("–", "-")).lower()


# an operator before a term; a function before its argument ("\log_4 x = 2.5" states a log)
_OPERAND = re.compile(r"(?:[×*·+/^-]|\\times|\\cdot|(?:\\|\b)(?:log|ln|sin|cos|tan|exp|sqrt)"
                      r"(?:_\{?\w+\}?)?)\s*$")
# the noun after a step's last value: "= 12 600 seconds" counts the seconds asked for
_RESULT_NOUN = re.compile(r"=\s*[-$]?\d[\d ,.]*\s*([a-z]{3,})\W*$")
_NARROWS = re.compile(r"\b(?:give|state|report)\s+(?:only\s+|just\s+)?(?:the|its)\s",
                      re.IGNORECASE)
_POINT = re.compile(r"\(\s*-?[\d.]+\s*,\s*-?[\d.]+\s*\)")  # "(2, -5)": a point, not a coordinate
# "the sum of the first 20 terms": an aggregate of several, a quantity of its own
_OF_HEAD = re.compile(r"^\W*(?:(?:so|and|then)\s+)?the\s+(sum|product|difference|quotient|"
                      r"average|mean|ratio|total)\s+of\s+(?:the|all|both)\b")
_EXCLUDED = re.compile(r"(?:\\neq?|≠|!=)\s*-?\d+(?:\.\d+)?")
# "The limit is two thirds.", "So k is three.": a value stated in words after a copula (not
# "one in four", a chance told as odds)
_WORD_STATED = re.compile(
    r"\b(?:is|are|was|equals?)\s+(?:exactly\s+|just\s+)?(?:(?:minus|negative)\s+)?"
    rf"(?:{NUMBER_WORD_BODY}(?!\s+(?:in|out\s+of)\s)|(?:[a-z]+[\s-]+){{0,4}}?"
    r"(?:half|halves|thirds?|quarters?|fourths?|fifths?|sixths?|sevenths?|eighths?|ninths?|"
    r"tenths?|twelfths?)\b)", re.IGNORECASE)
# "Find the exact value of sin 75°.": a function the asked expression applies
_FUNCTION_SIGN = re.compile(r"(?:\\|\b)(sin|cos|tan|cot|sec|csc|log|ln)\s*(\(?)\s*(\w+)")
# "the sum of the infinite series": its usual symbol, S
_SUM_SYMBOLS = ("s =", "s_", "sₙ", "s∞", "s_∞", "s_{")
# "How many trailing zeros", "How many 4-digit PINs": the noun after its adjectives
_COUNTED_NOUN = re.compile(
    r"\bhow\s+many\s+(?:(?:\d+-[a-z]+|[a-z]+(?:ing|ed)|different|distinct|positive|negative|"
    r"whole|prime|possible|even|odd|real|integer)\s+){1,2}([a-z]{3,})", re.IGNORECASE)
# "The other acute angle is 60°", "The next solution is 15": another of its kind
_ANOTHER = re.compile(r"^\W*(?:(?:so|and|then)\s+)?(?:the\s+(other|next|remaining|previous)|"
                      r"(another))\b", re.IGNORECASE)
# "Rounded to the nearest ten that is 70.": a rounding the question may not ask for
_ROUNDING = re.compile(r"(?:,\s*|\s+|^\W*)(?:which\s+|and\s+)?rounded?\s+(?:off\s+)?"
                       r"(?:to|up|down)\b"
                       r".*$", re.IGNORECASE | re.DOTALL)
_ASKS_ROUNDING = re.compile(r"\bround|\bnearest\b|\bdecimal\s+places?\b|\bsignificant\b",
                            re.IGNORECASE)
# "the best you could do is ...": a possibility beside the question's case
_COULD = re.compile(r"\bcould\s+(?:have\s+)?([a-z]+)\b", re.IGNORECASE)
# "(the negative root is rejected, ...)": a bracket that rejects a value it does not name
_WORDY_BRACKET = re.compile(r"\([^()\d]*\)")
# "5.2 × 10⁻⁴", "3 \times 10^{-6}": a value in scientific notation
_SCIENTIFIC = re.compile(r"\d\s*(?:×|\\times|\\cdot|·|x)\s*10\s*(?:\^|[⁻⁰¹²³⁴⁵⁶⁷⁸⁹])")
_ASKS_SCIENTIFIC = re.compile(r"\bscientific\s+notation\b|\bstandard\s+form\b", re.IGNORECASE)
# "Since 2(x + 3)² ≥ 0, the minimum value is −7": a premise before the statement
_PREMISE = re.compile(r"^\W*(?:since|because|as)\b[^,]*,\s*", re.IGNORECASE)


def unasked_rounding(sentence: str, question: str | None) -> str:
    """A statement without the rounding it adds ("Perimeter = 42 m. Rounded to the nearest ten
    that is 40.") where the question asks for no rounding; else the statement."""
    if "ound" not in sentence or question is None or _ASKS_ROUNDING.search(question):
        return sentence
    found = _ROUNDING.search(sentence)
    if found is None:
        return sentence
    before = sentence[: found.start()]
    # "Rounded to the nearest ten that is 70.": all remark; "The answer, rounded to the
    # nearest whole number, is 12": the statement goes on past it, kept whole
    if not before.strip(" \t\n*_") or DIGIT.search(before):
        return before
    return sentence


# "for 0 ≤ x < 2π", "in [0, 360°)": a range the question keeps its solutions to
_RANGE = re.compile(r"[≤<]\s*[a-zθ]\s*[≤<]|\\le\s*[a-z]|\bin\s+\[|\bon\s+\[", re.IGNORECASE)
_GENERAL = re.compile(r"^\W*(?:(?:so|and|then)\s+)?the\s+general\s+(?:solution|form)\b",
                      re.IGNORECASE)
# "in hexadecimal it's 5B": a number in another base than the one asked
_BASES = {"binary": "2", "octal": "8", "decimal": "10", "hexadecimal": "16", "hex": "16"}
_BASE = re.compile(r"\b(?:in\s+|to\s+|into\s+)"
                   r"(binary|octal|decimal|hexadecimal|hex|base[- ]?(\d+))\b",
                   re.IGNORECASE)


def _bases(text: str) -> set[str]:
    return {m.group(2) or _BASES[m.group(1).lower()] for m in _BASE.finditer(text)}


def other_base(sentence: str, question: str | None) -> bool:
    """Whether a statement gives a number in another base than the question asks it in
    ("In hexadecimal that is 35." for "Convert 110101₂ to base 10.")."""
    asked = _asked_bases(question)
    if not asked:
        return False
    said = _bases(sentence)
    return bool(said and not said & asked)


@lru_cache(maxsize=1024)
def _asked_bases(question: str | None) -> frozenset[str]:
    """The base a question asks a number in ("to base 10", "into binary")."""
    return frozenset({m.group(2) or _BASES[m.group(1).lower()]
                      for m in _BASE.finditer(question or "")
                      if not m.group(0).lower().startswith("in ")} or _bases(question or ""))


def another_of_kind(sentence: str, question: str | None) -> bool:
    """Whether a statement is about another of the asked kind ("The other acute angle is
    60°.", "The next solution is 15."), where the question asks for no other or next one;
    or gives the general solution where the question keeps to a range."""
    if _GENERAL.match(sentence) and _RANGE.search(question or ""):
        return True
    if other_base(sentence, question):
        return True
    found = _ANOTHER.match(sentence)
    if found is None:
        return False
    word = (found.group(1) or found.group(2)).lower()
    return not compiled(rf"\b{word}\b", re.IGNORECASE).search(question or "")


def could_aside(sentence: str, question: str | None) -> bool:
    """Whether a statement says what could be done in another case ("the best you could do is
    a 60 m square"), unless the question asks in those words ("How many could it hold?")."""
    for match in _COULD.finditer(sentence):
        if question and compiled(rf"\b(?:could|can)\b(?:\s+\S+){{0,3}}?\s+{match.group(1)}\b",
                                 re.IGNORECASE).search(question):
            continue
        return True
    return False


def absolute_of(sentence: str, variable: str | None) -> bool:
    """Whether a statement gives the absolute value of the unknown solved for ("So |x| = 5,
    and both values check out.") rather than the unknown."""
    return variable is not None and compiled(
        rf"^\W*(?:(?:so|thus|hence|then)\s+)?\|\s*{re.escape(variable)}\s*\|", re.IGNORECASE
    ).match(sentence) is not None


_EXTREME_SUBJECT = re.compile(r"^\W*(?:(?:so|thus|hence|and|then)\s+)?the\s+"
                              r"(smallest|largest|least|"
                              r"greatest|biggest|lowest|highest)\b", re.IGNORECASE)


def extreme_of_set(sentence: str, question: str | None) -> bool:
    """Whether a statement gives one end of an inequality's solutions ("So the smallest whole
    number that works is 4.") where the question asks to solve it, not for that end."""
    found = _EXTREME_SUBJECT.match(sentence)
    return bool(found and question and _INEQUALITY_SIGN.search(question)
                and not compiled(rf"\b{found.group(1)}\b", re.IGNORECASE).search(question))


def ordinal_of_counted(sentence: str, question: str | None) -> bool:
    """Whether a statement gives one numbered item ("The 12th term is 51.") where the question
    counts the items ("How many terms ...?")."""
    counted = counted_noun(question)
    if counted is None:
        return False
    noun = re.escape(counted.lower().rstrip("s"))
    return compiled(rf"^\W*(?:so\s+|and\s+)?the\s+\d+(?:st|nd|rd|th)\s+{noun}\b",
                    re.IGNORECASE).match(sentence) is not None


_ROUND = re.compile(r"\bround", re.IGNORECASE)
# "the 20th term": an ordinal one token, so that the name it qualifies counts
_NAMED_TOKEN = re.compile(r"\d+(?:st|nd|rd|th)\b|[a-z']+|\d[\d/.,]*")
_PRODUCT_SIGN = re.compile(r"\\cdot|\\times|[*×]")
_PERCENT = re.compile(r"\d\s*%")


class AskedQuantity:
    """What a question asks for, in the forms a committing statement may name it."""

    __slots__ = ("adjectives", "broader", "counted", "excluded", "expressions", "given",
                 "instances", "names", "percent",
                 "question", "relation", "rounds", "scientific", "spoken", "stated_in",
                 "states_verb", "symbols", "unit", "unknown", "values", "variable",
                 "verb", "words")

    def __init__(self, question: str | None) -> None:
        self.question = question
        self.given = givens(question)
        self.values = set(_VALUES.findall(question or ""))  # "3/4" whole, not "3" and "4"
        # "for x ≠ 3": a value the question sets aside, whose case is no answer
        self.excluded = {v for m in _EXCLUDED.finditer(question or "")
                         for v in _VALUES.findall(m.group(0))}
        self.spoken = self.values | _small_numbers(question or "")  # "two heads" as "2" too
        self.unit = asked_unit(question)  # "in m/s", "(in seconds)": the unit asked in
        question = question or ""
        words, heads = asked_words(question)
        lowered = question.lower()
        # one letter names an unknown, not a quantity: "what is p" is ``variable``
        self.names: set[str] = {w for w in (heads or words) if w not in _PRONOUNS and len(w) > 1}
        self.words = words | _FUNCTION  # what may qualify a name: "the sale price"
        # "Find the vertex ... Give the x-coordinate.": the whole the question narrows from
        narrowed = _NARROWS.search(question)
        self.broader = (asked_words(question[: narrowed.start()])[1] - self.names
                        if narrowed else set())
        self.names |= _GENERIC
        # "greatest common divisor" is also "the GCD"
        self.names |= {"".join(m.groups()) for m in _INITIALS.finditer(lowered)
                       if {w.rstrip("s") for w in m.group(0).split()} <= words}
        # "Find the greatest common divisor of ...": the asked phrase read to its noun, where
        # only its first word was taken ("greatest"); the noun and the initials name it
        for m in _TERM_OF_ART.finditer(lowered):
            if m.group(1) in words:
                self.names |= {m.group(3).rstrip("s"),
                               m.group(1)[0] + m.group(2)[0] + m.group(3)[0]}
        self.symbols: set[str] = {s for w in words for s in _SYMBOLS.get(w, ())}
        self.percent = bool({"percent", "percentage"} & words)  # "12%" states it
        self.scientific = bool(_ASKS_SCIENTIFIC.search(question))
        # "the line perpendicular to ...": the words that qualify what is asked about
        self.adjectives = {m.group(1) for m in _QUALIFIER.finditer(lowered)}
        self.rounds = bool(_ROUND.search(question))
        noun = counted_noun(question)
        self.counted = re.escape(noun.lower().rstrip("s")) if noun else None
        variable = ASKED_VARIABLE.search(question) or (
            # "Solve 2^x = 32 and 3^y = 27. What is x + y?": the expression is asked, not x
            None if _asks_letter_terms(question) else _SOLVE_VARIABLE.search(question))
        # "Solve 7 - 3x > -8.": "x < 5" states the unknown by a relation
        self.relation = bool(_INEQUALITY_SIGN.search(question))
        self.unknown = variable.group(1) if variable else _solved_letter(question)
        self.variable = variable.group(1) if variable else (
            self.unknown if self.relation else None)  # the unknown solved for
        counted = HOW_MANY.search(question)
        if counted:
            self.names.add(counted.group(1).lower().rstrip("s"))
        self.names |= _signed_names(question, heads or words)
        self.symbols |= _signed_symbols(question, heads or words)
        verb = _ASKED_VERB.search(question)
        self.verb = verb.group(1).lower() if verb else None  # "use" of "does it use"
        # "she earns $906.50", "Total weekly earnings: $906.50"
        self.states_verb = re.compile(  # "it increased by 12%"
            rf"\b{re.escape(self.verb)}(?:e?s|d|ings?:?)?\s+(?:by\s+|to\s+|an?\s+)?[-$\d]"
        ) if self.verb else None
        # "that's 20/3 m/s" where the question asks "in m/s"; "1260°" for "in degrees"
        unit = re.escape(self.unit or "") + (r"|°|\^\{?\\circ" if (self.unit or "").startswith(
            "degree") else "")
        # "36 W" for "in watts": a named unit by its symbol too, in its own case (not "m",
        # "s", "g", "L": parts of other units, "5 m" and "144 m³" states of other lengths)
        symbol = _SYMBOLS_OF_UNITS.get((self.unit or "").lower().rstrip("s"))
        symbol = symbol if symbol not in _BASE_SYMBOLS else None
        unit += rf"|(?-i:{re.escape(symbol)})" if symbol else ""
        self.stated_in = re.compile(rf"\d\s*(?:{unit})(?![\w/])") if self.unit else None
        # "(x + 3)(x - 7)", "dy/dx": an expression the statement may restate before its value
        self.expressions = [_plain(m.group(0)) for m in _EXPRESSION.finditer(question)]
        self.expressions += [_plain(latexify(m.group("object"))) for m in _OBJECT.finditer(question)
                             if re.search(r"[\d'^/(]", m.group("object"))
                             or _LETTER_TERMS.fullmatch(m.group("object").strip())]

        # "log₁₀ 8" for "find \log_{10} 8": the asked expression with its numbers, which a
        # statement of the same form with other numbers ("log₁₀ 4 ≈ 0.6020") does not state
        self.instances = [_instance_pattern(m.group("object")) for m in _OBJECT.finditer(question)
                          if _INSTANCE.fullmatch(m.group("object").strip())]

    def instance_stated(self, sentence: str) -> bool | None:
        """Whether a statement gives the asked expression a value (True) or only the same
        form with other numbers (False: "log₁₀ 4 ≈ 0.6020" for log₁₀ 8); None if neither."""
        if not self.instances:
            return None
        text = _instance_text(sentence)
        found = [tuple(m.groups()) == numbers for pattern, numbers in self.instances
                 for m in pattern.finditer(text)]
        return any(found) if found else None

    def named_by(self, sentence: str) -> bool:
        """Whether a statement names the quantity asked for before (or right after) its value."""
        text = latexify(sentence)
        lowered = text.lower()
        # the substring test first: most symbols are nowhere in the sentence
        if any(s in lowered
               and compiled(rf"(?<![a-z]){re.escape(s)}{'(?![a-z])' * s[-1].isalpha()}").search(
                   lowered)
               for s in self.symbols):
            return True
        # in a step of the sentence ("..., so the LCM is 36"), the subject before its first
        # value or the noun right after it ("2.5 moles of water")
        for step in CONCLUSION.split(lowered):
            step = _PREMISE.sub("", step)  # "since (x + 3)² ≥ 0, the minimum is -7"
            value = _STATES_VALUE.search(step)
            cut = value.start() if value else len(step)
            named = step[:cut] + " " + " ".join(step[cut:].split()[:4])
            tokens = [t.rstrip("s") for t in _NAMED_TOKEN.findall(named)]
            head = _OF_HEAD.match(step)
            if head and head.group(1).rstrip("s") not in self.names:
                # "The sum of the first 20 terms is 900" where the 20th term is asked: the
                # subject is the sum; the asked name only qualifies it
                tokens = tokens[: tokens.index(head.group(1).rstrip("s")) + 1]
            # "Squared deviations: ..." names another quantity than "the standard deviation";
            # "2 1/2 cups" counts the cups asked for; "Lena's bill" is hers as "her bill" is
            if any(token in self.names and (i == 0 or tokens[i - 1] in self.words
                                            or tokens[i - 1] + "s" in self.words
                                            or tokens[i - 1].endswith("'")
                                            or tokens[i - 1][:1].isdigit()
                                            # "The parallel slope" for "the slope of the line
                                            # parallel to ...": the question's own word
                                            or tokens[i - 1] in self.adjectives)
                   and not (i >= 2 and tokens[i - 2] == "with")  # "a line with that slope"
                   for i, token in enumerate(tokens)):
                return True
            if any("-" in name and name in named.replace("$", "") for name in self.names):
                return True  # "the x-coordinate": one name of two words
            result = _RESULT_NOUN.search(step)  # "... × 3600 s/hour = 12 600 seconds."
            if result and result.group(1).rstrip("s") in self.names:
                return True
        if self.states_verb and self.states_verb.search(lowered):
            return True
        if self.stated_in and self.stated_in.search(text) and not self._other_subject(lowered):
            return True
        plain = _plain(text)
        if any(e and (f"{e}=" in plain or _LETTER_TERMS.fullmatch(e) and f"{e}is" in plain)
               for e in self.expressions):
            return True
        # "\cos\theta = -\frac{4}{5}" for "what is $\cos\theta$?": the asked TeX, then its value
        if any(compiled(rf"(?:^|[\s$(]){re.escape(name)}\s*=").search(lowered)
               for name in self.names if "\\" in name):
            return True
        # "x \cdot y = 21" for "What is x·y?": the asked product of unknowns, then its value
        products = [name for name in self.names if "·" in name]
        if products:
            flat = _PRODUCT_SIGN.sub("·", lowered).replace("$", "").replace(" ", "")
            if any(compiled(rf"(?<![a-z]){re.escape(name)}=").search(flat) for name in products):
                return True
        if self.counted and compiled(rf"(?<![\w.])\d[\d,]*\s+{self.counted}s?\b").search(lowered):
            return True  # "30! ends in 7 zeros." for "How many trailing zeros ...?"
        if self.rounds and _ROUNDING.search(sentence):
            return True  # "Rounded to the nearest ten that is 140." where that is asked
        if self.scientific and _SCIENTIFIC.search(sentence):
            return True  # "0.00052 = 5.2 × 10⁻⁴ M" for "Write it in scientific notation."
        if self.percent and _PERCENT.search(text):
            return True  # "The sum grew by 30%." for "By what percent did it grow?"
        # "n = 7", not "m × n = 28": the unknown alone, not a term of a product
        if self.variable is None:
            return False
        relation = r"|[<>≤≥]=?|\\[lg]eq?\b|\\in\b|∈" if self.relation else ""
        stated = compiled(rf"(?<![\w\\'|]){self.variable}\s*(?:=|\bis\b{relation})\s*[-−$\d\\(\[]")
        return any(not _OPERAND.search(text, 0, m.start()) for m in stated.finditer(text))


    def _other_subject(self, lowered: str) -> bool:
        """Whether a statement's subject is another noun of the question than the asked one
        ("The discount was 8 dollars." for the original price): its unit does not name it."""
        subject = _SUBJECT_HEAD.match(lowered)
        if subject is None or not self.names - _GENERIC:  # "how high is the cliff": unnamed
            return False
        head = subject.group(1).rstrip("s")
        return head not in self.names and compiled(rf"\b{re.escape(head)}").search(
            (self.question or "").lower()) is not None

    def set_equal(self, sentence: str) -> bool:
        """Whether a statement sets the asked quantity's own symbol equal to a value ("...,
        so the algorithm stops with gcd(84, 126) = 42"), however the sentence is worded."""
        lowered = latexify(sentence).lower()
        return any(s in lowered and compiled(rf"(?<![a-z]){re.escape(s)}"
                                             + (r"[^()=]*\)" if s.endswith("(") else "")
                                             + r"\s*=\s*[-−$\d\\]").search(lowered)
                   for s in self.symbols)


def commits(sentence: str, asked: AskedQuantity) -> bool:
    """Whether a closing sentence commits to a value as the answer (see the module)."""
    sentence = unasked_rounding(sentence, asked.question)
    if not _STATES_VALUE.search(sentence) and not _WORD_STATED.search(sentence):
        return False
    marked = MARKED_VALUE.search(sentence) is not None
    named = asked.named_by(sentence)
    condition = _CONDITION.match(sentence)
    # "For n = 25: 25² = 625." for "the first 25 odd numbers": the question's own case worked
    given = set(_VALUES.findall(condition.group(0))) if condition else set()
    own_case = bool(given) and given <= asked.values
    instance = asked.instance_stated(sentence)
    if instance is False:
        return False  # "Likewise log₁₀ 4 ≈ 0.6020" where log₁₀ 8 is asked: another instance
    named = named or bool(instance)
    if not (named or marked or own_case or _LABEL.match(sentence) or _CONCLUDING.match(sentence)):
        return False  # the cheap signals first: most sentences give none
    if another_of_kind(sentence, asked.question) or ordinal_of_counted(sentence, asked.question) \
            or extreme_of_set(sentence, asked.question):
        return False  # "The other acute angle is 60°.", "The 12th term is 51."
    if could_aside(sentence, asked.question) or absolute_of(sentence, asked.unknown):
        return False  # "the best you could do is ...", "So |x| = 5" for x
    if not instance and commentary(sentence, asked.question, asked.given):
        return False  # (the asked expression's own value is no remark, "log₃ 81 = four")
    if (aside(sentence, asked.question) or _DENIED.search(sentence) or _CONFIRMS.search(sentence)
            or per_item(sentence, asked.question) or opposite_end(sentence, asked.question)):
        return False  # "For reference, the 10th term would be 47.", "The answer is not 30"
    if REJECTED.search(CONCLUSION.split(_WORDY_BRACKET.sub("", sentence))[-1]):
        return False  # "x = -1 is extraneous.": the value it names is set aside
    if asked.broader and not named and _POINT.search(sentence) and {
            w.rstrip("s") for w in LOWER_WORD.findall(sentence.lower())} & asked.broader:
        return False  # "So the vertex is (3, 5)." where its x-coordinate is asked
    if complement(sentence, asked.question):
        return False  # "The probability of not drawing blue is 13/20.": the asked one's complement
    tested = CONCLUSION.split(sentence)
    if _TESTS.match(sentence) and not REJECTED.search(sentence) and not (
            len(tested) > 1 and asked.named_by(tested[-1])):
        return False  # "Checking: x = -2 makes log(x) undefined, so x = 5." concludes
    other_case = _OTHER_CASE.match(sentence)
    if other_case and _small_numbers(other_case.group(0), digits=True) - asked.spoken:
        return False  # "The probability of a sum of 12 is only 1/36." for a sum of 7
    purpose = _PURPOSE.match(sentence)
    if purpose and set(_VALUES.findall(purpose.group(0))) - asked.values:
        return False
    if excluded_case(sentence, asked.question):
        return False
    if condition and not set(_VALUES.findall(condition.group(0))) & asked.values:
        return False  # "At that speed it covers 240 km", "If they add a tip, ...": a what-if
    timed = _TIMED.match(sentence)
    if timed and not set(_VALUES.findall(timed.group(0))) <= asked.values:
        return False  # "After 10 days she will have read 240 pages": a moment of its own
    numbers = set(_VALUES.findall(sentence))
    if not marked and numbers and numbers <= asked.values and not _STATES.search(sentence) and not (
            asked.relation and _INEQUALITY_SIGN.search(sentence)):  # "-3 ≤ x ≤ 6." solves
        return False  # "Given away: 12 apples.": the question's numbers told again
    # "The bill plus tip comes to $54.": a quantity of its own, though it names the tip (the
    # cheap tests first: other_quantity reads the question again)
    return marked or (named and not QUALIFIED.search(sentence)) or asked.set_equal(sentence) or (
        not other_quantity(sentence, asked.question)
    )


def excluded_case(sentence: str, question: str | None) -> bool:
    """Whether a statement is about the case the question excludes ("At x = 3 the expression
    is undefined, though x + 3 = 6 there." for "Simplify ... for x ≠ 3")."""
    condition = _CONDITION.match(sentence)
    return bool(condition and set(_VALUES.findall(condition.group(0)))
                & asked_quantity_of(question).excluded)


def other_instance(sentence: str, question: str | None) -> bool:
    """Whether a statement gives the asked expression's form with other numbers only
    ("Similarly log₂ 64 would be 6." for log₂ 32)."""
    return asked_quantity_of(question).instance_stated(sentence) is False


def what_if(sentence: str, question: str | None) -> bool:
    """Whether a statement opens on a case of its own ("If friction of 400 N also acts, ...")
    with numbers that are none of the question's: a what-if, not the answer."""
    condition = _CONDITION.match(sentence)
    if condition is None:
        return False
    numbers = set(_VALUES.findall(condition.group(0)))
    return bool(numbers) and not numbers & asked_quantity_of(question).values


# the symbols of the units a question may ask in by name ("in newtons": "3000 N")
_SYMBOLS_OF_UNITS = {"newton": "N", "joule": "J", "watt": "W", "volt": "V", "ampere": "A",
                     "ohm": "Ω", "pascal": "Pa", "hertz": "Hz", "metre": "m", "meter": "m",
                     "gram": "g", "second": "s", "litre": "L", "liter": "L", "kelvin": "K"}


# "The discount was", "so the markdown itself is": a statement's subject, its head noun last
_SUBJECT_HEAD = re.compile(r"^\W*(?:(?:so|and|then|thus)\s+)?(?:the|its|their)\s+"
                           r"(?:[a-z-]+\s+){0,2}?([a-z]{3,})\s+(?:itself\s+)?(?:is|was|are|were|comes?|came)\b")
_BASE_SYMBOLS = frozenset({"m", "s", "g", "L"})


def in_asked_unit(sentence: str, question: str | None) -> str | None:
    """The value a statement gives again, after "or" / "i.e." or in brackets, in the unit the
    question asks in, by name or symbol ("two and a half days, or 84 hours" for "Convert ...
    to hours"; "3 kN (3000 N)" for "..., in newtons?")."""
    unit = asked_quantity_of(question).unit
    if not unit:
        return None
    name = unit.lower().rstrip("s")
    symbol = _SYMBOLS_OF_UNITS.get(name)
    named = rf"(?i:{re.escape(name)}s?)\b" + (rf"|{re.escape(symbol)}(?!\w)" if symbol else "")
    # "90 minutes — one and a half hours": a dash gives it again too, in digits or words
    found = {m.group(1).replace(",", "") for m in compiled(
        rf"(?:,?\s+(?i:or|i\.\s?e\.,?|that\s+is,?)\s+|\s\(\s*|\s[—–]\s*)"
        rf"(\d[\d,]*(?:\.\d+)?|\\frac\{{\d+\}}\{{\d+\}})\s*(?:{named})(?!\s+and\s+\d)"
    ).finditer(latexify(sentence))}
    return found.pop() if len(found) == 1 else None


@lru_cache(maxsize=1024)  # a question's samples share it: read the question once
def asked_quantity_of(question: str | None) -> AskedQuantity:
    """What ``question`` asks for (cached)."""
    return AskedQuantity(question)


def committed_index(closing: list[str], question: str | None) -> int | None:
    """Of the closing sentences, the index of the last that commits, or of a correction
    after one that does; None if none does."""
    asked = asked_quantity_of(question)
    for index in reversed(range(len(closing))):  # from the last: most often it commits
        if commits(closing[index], asked):
            return index
        if CORRECTION.search(closing[index]):
            return index if any(commits(s, asked) for s in closing[:index]) else None
    return None


# "So sin θ = 0.8, and cos θ = 3/5.": the clauses of a statement of several quantities
# ("so d = 12 and Tom is 36": a clause of its own opens on a name and its verb)
_CLAUSES = re.compile(r",\s*and\s+|;\s+|\s+and\s+(?=(?:the|its|their|each)\s)"
                      r"|\s+and\s+(?=(?-i:[A-Z][a-z]+)\s+(?:is|was|has|had|will|would)\b)",
                      re.IGNORECASE)
# "1000 = 27 × 37 + 1, remainder 1.": a closing name, then its value
_NAME_THEN_VALUE = re.compile(
    # "The vertex has x-coordinate 3": the name after "has" too
    r"(?:^|[,;:]\s*|\b(?:has|have|had|with)\s+)(?:the\s+|a\s+|an\s+|its\s+)?([a-z][a-z-]{2,})\s+"
    r"(?:of\s+|is\s+)?"
    r"(-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\W*$",
    re.IGNORECASE,
)


_TOTALLED = re.compile(r"\b(?:in\s+all|in\s+total|altogether)\b", re.IGNORECASE)
_ASKS_EACH = re.compile(r"\b(?:each|every|per)\b", re.IGNORECASE)
_EACH = re.compile(r"^\W*(?:(?:so|then|thus)\s+)?(?:each|every)\b", re.IGNORECASE)
_ANAPHOR = re.compile(r"\W*(?:it|they|both|this|that|these|which|all)\b", re.IGNORECASE)


_ASKED_UNIT = re.compile(r"\bin\s+(?:the\s+)?([a-z]{3,})\s*\??\s*$", re.IGNORECASE)


def _in_asked_unit(parts: list[str], question: str | None) -> str | None:
    """Of several clauses, the one stating a value in the unit the question asks in ("What is
    the resistance in ohms?"); None unless exactly one does and another states a value."""
    unit = _ASKED_UNIT.search(question or "") if len(parts) > 1 else None
    if unit is None:
        return None
    stem = re.escape(unit.group(1).lower().rstrip("s"))
    in_unit = compiled(rf"\d\s*{stem}s?\b", re.IGNORECASE)
    said = [part for part in parts if in_unit.search(part)]
    valued = [part for part in parts if _STATES_VALUE.search(part)]
    return said[0] if len(said) == 1 and len(valued) > 1 else None


def named_clause(sentence: str, question: str | None) -> str:
    """Of a statement of several quantities ("The distance is 10, and the midpoint is (4,
    1)."), the one clause that names the quantity asked for; else the whole sentence."""
    parts = [part for part in _CLAUSES.split(sentence) if part.strip()]
    in_unit = _in_asked_unit(parts, question)
    if in_unit is not None:
        return in_unit  # "The resistor is 24 ohms, and it dissipates 6 W." for "... in ohms?"
    if len(parts) < 2 or any(_ANAPHOR.match(part) for part in parts[1:]):
        return sentence  # "..., and both are 2": the clause carries on the one before
    if _TOTALLED.search(parts[-1]) and _ASKS_EACH.search(question or "") and not _TOTALLED.search(
            question or ""):
        # "Each person pays $40.50, and the group pays $162 altogether." for "How much does
        # each person pay?": the clause about the one the question asks of
        each = [part for part in parts if _EACH.match(part)]
        if len(each) == 1:
            return each[0]
    if _TOTALLED.search(parts[-1]) or any(REJECTED.search(p) or CHECK.search(p) for p in parts):
        # "t² = 16, and ... t = 4 (t = −4 is rejected)": the rejection decides, not the name
        return sentence  # "Each end has 3 vertices, and there are 2 ends: 6 in all."
    asked = asked_quantity_of(question)
    named = [part for part in parts if _STATES_VALUE.search(part) and asked.named_by(part)]
    if len(named) == 1:
        return named[0]
    return _participle_clause(parts, question) or sentence


# "What fraction is eaten?", "How many are left?": the participle the question asks by
_PARTICIPLE = re.compile(r"\b(?:is|are|was|were|be|been)\s+([a-z]{3,}(?:ed|en|left|lost|sold|"
                         r"spent|paid|kept))\b", re.IGNORECASE)


def _participle_clause(parts: list[str], question: str | None) -> str | None:
    """Of clauses that each state a value ("three quarters of the cake is eaten, and 2 pieces
    remain"), the one with the question's participle ("What fraction is eaten?")."""
    asked = _PARTICIPLE.search(question or "")
    if asked is None or len(parts) < 2:
        return None
    word = re.escape(asked.group(1).lower())
    participle = compiled(rf"\b{word}\b", re.IGNORECASE)
    held = [part for part in parts if participle.search(part)]
    return held[0] if len(held) == 1 else None


def named_value(sentence: str, question: str | None) -> str | None:
    """The value a sentence's closing "NAME VALUE" gives where NAME is the quantity asked
    ("..., remainder 1." for "What is the remainder ...?")."""
    found = _NAME_THEN_VALUE.search(sentence.replace("$", ""))
    if found is None:
        return None
    names = asked_quantity_of(question).names - _GENERIC
    return found.group(2) if found.group(1).lower().rstrip("s") in names else None


def marked_value(sentence: str) -> str | None:
    """The content of a sentence's one bold value ("So you'd pay **$58.50**; ..."), if it has
    exactly one."""
    spans = MARKED_VALUE.findall(sentence)
    return spans[0][1] if len(spans) == 1 else None


__all__ = ["MARKED_VALUE", "AskedQuantity", "asked_quantity_of", "committed_index", "commits",
           "excluded_case", "in_asked_unit",
           "marked_value", "named_clause", "named_value", "other_instance", "what_if"]
