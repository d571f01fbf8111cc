"""Math: reading a closing sentence against its question.

What the question asks decides between the values a sentence gives: its condition ("y when
x = 2" takes "y = 11 when x = 2", not "y = 13 when x = 3"), its quantity ("the perimeter" of
"Its area is 36 and its perimeter is 26"), its unknown ("the value of x" of "x = 3 and y = 2");
and a sentence that only retells the question's numbers or the working ("He started with 40
and gave away 16.", "I multiplied 2.5 by 60.") does not displace the answer before it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from promptmill.extraction.text import CONCLUSION, DIGIT, HOW_MANY, LOWER_WORD, compiled

_CONDITION = re.compile(
    r"\b(?i:when|at|for|if|where|with)\s+([a-zA-Z])\s*=\s*(-?\d+(?:\.\d+)?)"
    r"(?!\w|\.\d|\s*[-+*/^]\s*[\w(])"  # "if y = 5 - x", "if y = 2x + 7" define y
)
_GIVEN_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
# a sentence that says what something is, or concludes, is not a recap of the givens
_CONCLUDES = re.compile(
    r"=|\b(?:so|therefore|thus|hence|answer|total|result|is|are|was|were|be|equals?|makes?|"
    r"gives?|leaves?|gets?|got|obtain(?:s|ed)?|found|arrived?|ended\s+up|comes?|came|"
    r"round(?:s|ed|ing)?|simplif\w*|reduc\w*)\b|'s\b",
    re.IGNORECASE,
)
# "I multiplied 2.5 by 60.": the working told after the answer, not a result
_METHOD = re.compile(r"^\W*(?:I|[Ww]e)\s+(?:first\s+|then\s+|just\s+|simply\s+)?[a-z]+ed\b")


# "$x$", not "$12 and $15" (two prices, no TeX between)
_INLINE_TEX = re.compile(r"\$(?!\d[\d,.]*(?:\s|$|[,;?]))([^$\n]+?)\$")


@lru_cache(maxsize=1024)  # a question's samples share it
def plain_question(question: str | None) -> str | None:
    """A question with its inline TeX delimiters dropped: "what is $a$?" asks for a, "the
    $x$-coordinate" names the x-coordinate, as the words around them are read."""
    if not question:
        return question
    # "$\theta$" written into JSON with one backslash reads back as a tab and "heta": the
    # command the writer meant, as a grader reading the question sees it
    question = _SWALLOWED.sub(lambda m: _ESCAPED[m.group(1)] + m.group(2), question)
    if "$" not in question:
        return question
    return _INLINE_TEX.sub(r"\1", question)


# JSON's one-letter escapes that swallow a TeX command's backslash ("\t" of "\theta", "\f"
# of "\frac", "\b" of "\binom", "\r" of "\rho")
_ESCAPED = {"\t": "\\t", "\f": "\\f", "\b": "\\b", "\r": "\\r"}
_SWALLOWED = re.compile(r"([\t\f\b\r])([a-z]{2,})")


def asked_clause(sentence: str, question: str | None) -> str | None:
    """Of a sentence giving values under several conditions ("y = 11 when x = 2, and y = 13
    when x = 3"), the clause under the condition the question sets ("when x = 2"); None for a
    sentence only about other conditions ("For t = 4, d = 60.")."""
    # "y = 12 when x = 8, find y when x = 14": the condition of the asking clause, the last
    asked = ([None, *_CONDITION.finditer(question)][-1]) if question else None
    if asked is None or "=" not in sentence:
        return sentence
    variable, number = asked.groups()

    def conditions(part: str) -> set[str] | None:
        found = {m.group(2) for m in _CONDITION.finditer(part) if m.group(1) == variable}
        return found or None

    parts = [part for part in CONCLUSION.split(sentence) if part.strip()]
    kept = [part for part in parts if conditions(part) in (None, {number})]
    if not kept:
        return None
    held = [part for part in kept if conditions(part) == {number}]
    if len(held) == 1 and len(parts) > 1:
        return held[0]
    return sentence if len(kept) == len(parts) else ", ".join(kept)


_QUANTITY = re.compile(r"\b([a-z]{3,})\s+(?:is|are|was|were|equals|=|comes\s+to)\s", re.IGNORECASE)
_NOT_QUANTITIES = frozenset({"which", "that", "this", "there", "what", "here", "who"})
_QUANTITY_SPLIT = re.compile(r",\s*(?:and\s+|while\s+|whereas\s+)?|\s+(?:and|while|whereas)\s+")


def asked_quantity(sentence: str, question: str | None) -> str:
    """Of a sentence stating several quantities ("Its area is 36 and its perimeter is 26."),
    the clause stating the one the question asks for (the perimeter)."""
    if not question or CONCLUSION.search(sentence):
        return sentence  # "the side is 9, so the area is 81": the conclusion decides
    subjects = [word.lower() for word in _QUANTITY.findall(sentence)]
    if len(subjects) < 2 or _NOT_QUANTITIES.intersection(subjects):
        return sentence
    asked = {word.rstrip("s") for word in LOWER_WORD.findall(question.lower())}
    parts = [part for part in _QUANTITY_SPLIT.split(sentence) if _QUANTITY.search(part)]
    held = [part for part in parts
            if _QUANTITY.search(part).group(1).lower().rstrip("s") in asked]  # type: ignore[union-attr]
    return held[0] if len(held) == 1 and len(parts) > 1 else sentence


ASKED_VARIABLE = re.compile(
    r"\b(?:value\s+of|solve\s+for|[Ff]ind|[Ww]hat\s+is|determine)\s+([a-z])\b(?!\s*[-=(+*/^<>])"
)
"""The unknown a question asks for by name ("What is the value of x ...?")."""
_SIMPLE_ASSIGNMENT = re.compile(r"(?<![\w\\])([a-z])\s*=\s*(-?\d+(?:\.\d+)?(?:/\d+)?)(?!\w|\.\d)")


def asked_variable(sentence: str, question: str | None) -> str:
    """Of a sentence solving for several unknowns ("x = 3 and y = 2"), the one the question
    asks for ("What is the value of x ...?")."""
    asked = ASKED_VARIABLE.search(question) if question else None
    if asked is None or "=" not in sentence:
        return sentence
    values: dict[str, set[str]] = {}
    for match in _SIMPLE_ASSIGNMENT.finditer(sentence):
        values.setdefault(match.group(1), set()).add(match.group(2))
    held = values.get(asked.group(1), set())
    if len(values) > 1 and len(held) == 1:
        return f"{asked.group(1)} = {held.pop()}"
    return sentence


_SUBJECT = re.compile(  # "The perimeter, though not asked, is 30": a remark may come between
    r"^\W*(?:the|its|their|his|her|our)?\s*([a-z]{3,})(?:\s*,[^,]{1,40},)?\s+"
    r"(?:is|are|was|were|would\s+be|"
    r"will\s+be|equals)\b",
    re.IGNORECASE,
)
_ANY_SUBJECT = frozenset({"answer", "result", "total", "value", "sum", "number", "this", "that",
                          "there", "which", "what", "final", "solution", "solutions", "root",
                          "roots", "zeros"})


# "Its area, for comparison, would be 40.": a value set beside the answer, not the answer
_ASIDE = re.compile(
    r"\b(?:for|by|in)\s+comparison\b|\bby\s+contrast\b|\bfor\s+(?:reference|context)\b|"
    r"\bincidentally\b|\bas\s+an\s+aside\b|\b(?:though|although)\s+not\s+asked\b|"
    # "Interestingly, the price ends up where it started": a remark on the answer
    r"^\W*(?:interestingly|notably|curiously|note\s+that|notice\s+that|fun\s+fact)\b|"
    # "doubled it would be 10-24-26", "forgetting the overlap would give 58", "that would have
    # meant 150 texts": a case beside the question's
    # "next time it would reach 15,680": any verb in the conditional, save a choice's own
    r"\bwould\s+(?:have\s+)?(?!(?:say|go|pick|choose|answer|guess|put|estimate|need|like|"
    r"expect|recommend|conclude|write|give\s+(?:it|the\s+answer))\b)[a-z]+\b",
    re.IGNORECASE,
)


_COPULA = re.compile(r"\b(?:is|are|was|were|equals?|would|will)\b|=")


_WOULD = re.compile(r"would\s+(?:have\s+)?([a-z]+)", re.IGNORECASE)


def aside(sentence: str, question: str | None = None) -> bool:
    """Whether a sentence says it is an aside ("for comparison", "would be"); the question's
    own conditional ("How long would Mark take alone?") answered in its words is none."""
    for match in _ASIDE.finditer(sentence):
        would = _WOULD.match(match.group(0))
        if would and question and compiled(rf"\bwould\b(?:\s+\S+){{0,3}}?\s+{would.group(1)}\b",
                                           re.IGNORECASE).search(question):
            continue
        return True
    return False


# "Each pen costs $0.80.", "about $19.71 per hour on average": a quantity for one item
_PER_ITEM = re.compile(r"^\W*(?:(?:so|then|and)\s+)?(?:each|every)\s+[a-z]|\bon\s+average\b",
                       re.IGNORECASE)
_IN_ALL = re.compile(r"\b(?:in\s+all|in\s+total|altogether|total)\b", re.IGNORECASE)
_ASKS_PER_ITEM = re.compile(r"\b(?:each|every|per|average|mean|one|single)\b", re.IGNORECASE)


def per_item(sentence: str, question: str | None) -> bool:
    """Whether a sentence states a quantity for one item (each, on average) where the
    question does not ask for one ("Each pen costs $0.80." for "How much do 11 pens cost?")."""
    return bool(question and _PER_ITEM.search(sentence) and not _ASKS_PER_ITEM.search(question)
                and not _IN_ALL.search(sentence))  # "Each end has 3 vertices: 6 in all."


# the opposite ends of a range: "the smallest is 30°" where the largest angle is asked
_OPPOSITE = {"largest": "smallest", "greatest": "least", "longest": "shortest",
             "highest": "lowest", "maximum": "minimum", "biggest": "smallest", "oldest":
             "youngest", "heaviest": "lightest", "fastest": "slowest"}
_OPPOSITE.update({low: high for high, low in list(_OPPOSITE.items())})
_EXTREME = re.compile(rf"\b(?:{'|'.join(_OPPOSITE)})\b", re.IGNORECASE)


def opposite_end(sentence: str, question: str | None) -> bool:
    """Whether a sentence's subject is the other end of the range the question asks an end
    of ("the smallest is 30°" for "What is the largest angle?")."""
    asked = _EXTREME.search(question) if question else None
    if asked is None:
        return False
    copula = _COPULA.search(sentence)
    subject = {w.lower() for w in _EXTREME.findall(sentence[: copula.start()] if copula
                                                      else sentence)}
    return _OPPOSITE[asked.group(0).lower()] in subject and asked.group(0).lower() not in subject


_SUBJECT_END = re.compile(r"\b(?:is|are|was|were|equals?|comes?\s+to)\b|=", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|never|neither|complement(?:ary)?)\b|n't\b", re.IGNORECASE)


def complement(sentence: str, question: str | None) -> bool:
    """Whether a statement's subject negates what the question asks ("The probability of
    *not* drawing blue", "The fraction that does not walk") where the question has no "not"."""
    # "only 3 count since order doesn't matter, so 3/36 = 1/12": the conclusion's own subject
    stated = [part for part in CONCLUSION.split(sentence) if part.strip()][-1:] or [sentence]
    end = _SUBJECT_END.search(stated[0])
    return bool(end and _NEGATION.search(stated[0], 0, end.start())
                and not _NEGATION.search(question or ""))


def other_quantity(sentence: str, question: str | None) -> bool:
    """Whether a sentence states a quantity the question does not ask for ("the perimeter
    would be 20" after "The area is 21"), or says it is an aside ("for comparison")."""
    if aside(sentence, question) or per_item(sentence, question):
        return True
    if opposite_end(sentence, question) or complement(sentence, question):
        return True
    # "The gaps are 4, 6, 8, so the next gap is 10": its conclusion's own subject decides
    concluded = [part for part in CONCLUSION.split(sentence) if part.strip()][-1]
    if concluded != sentence and _OTHER_SUBJECT.match(concluded):
        sentence = concluded
    copula = _COPULA.search(sentence)
    other = _OTHER_SUBJECT.match(sentence[: copula.start()] if copula else sentence)
    subject = _SUBJECT.match(sentence)
    if not question or (subject or other) is None:
        return False
    asked = {w.rstrip("s") for w in LOWER_WORD.findall(question.lower())}
    asked |= operation_nouns(question)
    if subject:
        words = [subject.group(1).lower()]
    else:  # "the interest earned": any word of its head; "the total with tip": "total"
        head = QUALIFIED.split(other.group(2).lower())  # type: ignore[union-attr]
        words = head[0].split()
        if len(head) > 1:  # a qualified total is a quantity of its own, not the asked one
            named, _ = asked_words(question)
            return not {w.rstrip("s") for w in words} & (named or asked)
    # "the simplified form" for "Simplify ...": a qualifier in another form of the asked word
    if {w.rstrip("s") for w in words[:-1]} & asked or {_stem(w) for w in words[:-1]} & {
            _stem(w) for w in asked}:
        return False
    word = words[-1]
    # "their sum 5 agrees with -b/a": a remark about the answer, stating no value of its own
    narrative = subject is None and copula is None
    # "Their sum is 0", "its square is 49": a property of the answer already stated
    narrative = narrative or _POSSESSIVE.match(sentence) is not None
    # "The investment is worth ..." for "$2,500 is invested ...": the question's own subject
    # in another form of its word
    return (narrative or word not in _ANY_SUBJECT) and word.rstrip("s") not in asked and (
        len(word) < 6 or _stem(word) not in {_stem(w) for w in asked})


_POSSESSIVE = re.compile(r"^\W*(?:(?:so|and|then)\s+)?(?:its|their)\s", re.IGNORECASE)
# "Compute 3/8 + 5/12" asks for a sum, "1.2 × 10³ × 4" for a product: the question's own
# operation names the quantity a statement's subject may call it by
_OPERATIONS = (
    (re.compile(r"\d\s*\}?\s*(?:[×*·]|\\times|\\cdot)\s*\\?\S"), "product"),
    (re.compile(r"\d\s*\}?\s*\+\s*\\?\S"), "sum"),
    (re.compile(r"\d\s*\}?\s*[−–-]\s+\\?\S"), "difference"),
    (re.compile(r"\d\s*\}?\s*(?:÷|\\div)\s*\\?\S"), "quotient"),
)


_MATH = re.compile(r"\$([^$]+)\$")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_LONE_LETTER = re.compile(r"(?<![A-Za-z])[a-z](?![A-Za-z])")
_PROSE_VARIABLE = re.compile(r"\b[a-z]\s*(?:\^|=|[-+]\s*\d)|\d[a-z]\b")


def operation_nouns(question: str) -> set[str]:
    """The nouns for the operations the question's numeric expression performs ("sum",
    "product"); none where it has a variable ("x^2 - 9" asks no difference)."""
    math = " ".join(_MATH.findall(question))
    if _LONE_LETTER.search(_COMMAND.sub(" ", math)) if math else _PROSE_VARIABLE.search(question):
        return set()
    return {noun for regex, noun in _OPERATIONS if regex.search(question)}


_SUFFIX = re.compile(r"(?:ments?|ed|ing|ions?|es|s|e)$")
_FINAL_I = re.compile(r"i$")


def _stem(word: str) -> str:
    """A word without its inflection or nominal suffix ("investment", "invested": "invest")."""
    return _FINAL_I.sub("y", _SUFFIX.sub("", word))  # "simplified" as "simplify"


QUALIFIED = re.compile(r"\s+(?:with|plus|including|after|before|under)\b\s*")
"""Where a subject is qualified into a quantity of its own ("the total with tip")."""


# "What was the original price ...?", "Find the slope of ...", "What is 15% of 340?": the
# words that name the quantity asked for
_ASKED_PHRASE = re.compile(
    r"\b(?:what|which)\s+(?:is|was|are|were|will\s+be|would\s+be)\s+(?:the\s+|its\s+|their\s+)?"
    r"(?P<what>[^?,.;]+?)\s*(?=\?|,|$|\s+(?:of|in|for|at|on|after|before|if|when|to|between|"
    r"that)\b)"
    r"|\b(?:find|compute|calculate|determine|evaluate)\s+(?:the\s+|its\s+)?(?P<find>[^?,.;\s]+)"
    # "Find the vertex ... Give the x-coordinate.": a last request narrows what is asked
    r"|\b(?:give|state|report)\s+(?:only\s+|just\s+)?(?:the\s+|its\s+)(?P<give>[^?,.;\s]+)"
    # "By what percent did it increase?": the percent, which "12%" states
    r"|\bby\s+what\s+(?P<by>percent(?:age)?|factor|fraction|amount)\b"
    # "How many grams of salt are in ...?", "How much is a 15% tip on ...?"
    r"|\bhow\s+many\s+(?P<many>[^?,.;]+?)\s*(?=\?|,|$|\s+(?:in|for|at|on|after|if|when|does|"
    r"do|did|will|would|can|could)\b)"
    r"|\bhow\s+much\s+(?:is|was|are|were|will\s+be)\s+(?:the\s+|an?\s+)?(?P<much>[^?,.;]+?)"
    r"\s*(?=\?|,|$|\s+(?:of|in|for|at|on|after|if|when|to)\b)"
    # "How much elastic energy does it store?": the noun after "how much"
    r"|\bhow\s+much\s+(?!(?:is|was|are|were|will|does|do|did|would|can)\b)(?P<amount>[^?,.;]+?)"
    r"\s*(?=\?|,|$|\s+(?:does|do|did|is|are|was|were|will|would|can|could|in|for|at|on)\b)"
    # "How old is her son now?": the one whose age is asked
    r"|\bhow\s+old\s+(?:is|was|are|were|will)\s+(?:the\s+|his\s+|her\s+|their\s+|my\s+|your\s+)?"
    r"(?P<old>[a-z]+)",
    re.IGNORECASE,
)
_HOW_FAR = re.compile(r"\bhow\s+far\b", re.IGNORECASE)  # asks a distance
# "∫₀² 3x² dx", "lim_{x→0} ...": a quantity a question asks for by its sign
_SIGNED_NAMES = ((re.compile(r"∫|\\int\b"), "integral"),
                 (re.compile(r"\blim(?:_|\b)|\\lim\b"), "limit"))
# words of an asked phrase that name nothing: "how many litres are drained"
_PHRASE_FILLER = frozenset({"the", "a", "an", "of", "are", "is", "was", "were", "there", "value",
                            "number"})
_SAME = {"minimum": ("least", "smallest", "lowest", "min"),
         "maximum": ("greatest", "largest", "highest", "max")}
# a clause about another thing: "each interior angle measures 140°", "the discount saved the
# shopper $12", "their sum 5 agrees with -b/a" (a narrative verb, no statement of a value)
_OTHER_SUBJECT = re.compile(
    r"^\W*(?:(?:so|then|thus|hence|and)\s+)?(?:(?:in|for|on)\s+(?:an?|the)\s+[a-z ]*?\s+)?"
    r"(?P<det>the|its|their|each|every|his|her)\s+((?:[a-z'-]+\s+){0,2}[a-z'-]{3,})\b",
    re.IGNORECASE,
)
_GENERIC = frozenset({"answer", "result", "value", "solution", "final", "number", "total"})
# "for comparison, f(0) = 2", "as a check, 7 - 3 = 4", "doubled it would be 10-24-26"
_COMMENTARY = re.compile(
    r"^\W*(?:for\s+(?:comparison|example|instance|reference)|by\s+contrast|as\s+a\s+check|"
    r"e\.g\.|check(?:ing)?\b)|\bwould\s+be\b",
    re.IGNORECASE,
)
# where a closing clause's statements part: "; ", ": " and "... and the area is ..."
_CLAUSES = re.compile(r";\s+|(?<=\S):\s+|\s+and\s+(?=(?:the|its|their)\s)", re.IGNORECASE)

# "x > 4: any real number above four.": a close in words only restates the value
_IN_WORDS = re.compile(r"(?<=\S):\s+[^\d:=]*$")


_OBJECTS = frozenset({"it", "them", "him", "her", "us", "me", "you", "this", "that", "these",
                      "those"})


_NAMING_CHARACTER = re.compile(r"[a-z%]")


def asked_words(question: str) -> tuple[set[str], set[str]]:
    """The words (and symbols such as "f'(2)" or "15%") naming what the question asks for,
    and of them the head nouns ("term" of "the next term", "gram" of "grams of salt")."""
    words: set[str] = set()
    heads: set[str] = set()
    for match in _ASKED_PHRASE.finditer(question):
        if match.group("give") and match.group("give").lower() in _GENERIC:
            continue  # "Give the answer in terms of π.": the form, not another quantity
        if match.group("give"):
            words.clear()
            heads.clear()
        groups = match.group("what", "find", "give", "much", "many", "amount", "old", "by")
        phrase = "".join(part for part in groups if part)
        named = []
        for word in phrase.lower().split():
            if not _NAMING_CHARACTER.search(word):
                continue  # "What is 99 + 99?": its numbers name no quantity
            word = word.rstrip("s") if word.isalpha() else word
            named.append(word)
            words.add(word)
            words.update(_SAME.get(word, ()))
        named = [word for word in named if word not in _PHRASE_FILLER] or named
        # "the voltage across it": the pronoun after the noun names no quantity
        named = [word for word in named if word not in _OBJECTS] or named
        if named:  # "how many grams of salt": its first noun; "the next term": its last
            heads.add(named[0] if match.group("many") else named[-1])
    if _HOW_FAR.search(question):
        words.add("distance")
        heads.add("distance")
    for sign, name in _SIGNED_NAMES:  # "Evaluate ∫₀² 3x² dx.": the integral
        if sign.search(question):
            words.add(name)
            heads.add(name)
    if len(words) > 1:
        words -= _PHRASE_FILLER
    return words, heads & words if words else heads


_SUBJECT_WORD = re.compile(r"[a-z']+")
_TOKEN = re.compile(r"[\w'()%]+")  # a word, or a symbol such as "f'(2)" or "15%"


def _names_head(subject: str, asked: set[str], heads: set[str]) -> bool:
    """Whether a clause's subject names the asked quantity: its head noun, or an asked word
    ending the subject ("the original" for "the original price"), not "the next difference"
    for "the next term"."""
    if not _names(subject, asked):
        return False
    last = _SUBJECT_WORD.findall(subject.lower())
    return not heads or _names(subject, heads) or bool(last) and last[-1].rstrip("s") in asked


def _names(text: str, asked: set[str], words_only: bool = False) -> bool:
    """Whether a clause (or its subject) names one of the asked words; ``words_only``: by a
    word of three letters or more ("a 25% increase" names the percentage increase)."""
    if words_only:
        asked = {word for word in asked if word.isalpha() and len(word) >= 3}
    tokens = {t.rstrip("s") if t.isalpha() else t for t in _TOKEN.findall(text.lower())}
    return bool(tokens & asked) or any(not w.isalpha() and w in text for w in asked)


_COUNT_FIRST = re.compile(r"\W*-?\$?\d")
# "..., and both are 2": a pronoun carries on the statement before it
_ANAPHOR = re.compile(r"\W*(?:and\s+)?(?:it|they|both|this|that|these|which|all)\s*", re.IGNORECASE)


def committed_clause(clause: str, question: str | None, stating: re.Pattern[str]) -> str:
    """Of a closing clause that states several things ("the original was $60, which means the
    discount saved $12"; "x = 30, and the angles are 30, 60 and 90"), the part that commits to
    the quantity the question asks for; what follows it is commentary. ``stating`` finds a
    statement's verb or ``=``; the clause comes back whole when no part is plainly it."""
    clause = _IN_WORDS.sub("", clause)
    parts = [piece for part in CONCLUSION.split(clause) for piece in _CLAUSES.split(part)
             if DIGIT.search(piece)]
    if len(parts) < 2:
        return clause
    asked, heads = asked_words(question) if question else (set(), set())
    variable = ASKED_VARIABLE.search(question) if question else None
    if variable:
        asked.add(variable.group(1))
    kinds = []
    for part in parts:
        verb = stating.search(part)
        subject = part[: verb.start()] if verb else ""
        other = _OTHER_SUBJECT.match(subject or part)
        each = other is not None and other.group("det").lower() in ("each", "every")
        if _COMMENTARY.search(part):
            kinds.append("aside")
        elif verb and asked and (_names_head(subject, asked, heads) or _ANAPHOR.fullmatch(subject)
                                 or _names(part[verb.end() :], asked, words_only=True)):
            kinds.append("asked")
        elif asked and not verb and _names(part, asked, True) and (
                _COUNT_FIRST.match(part) or not _OTHER_SUBJECT.match(part)):
            # "minus 7 used: 29 eggs left" for "How many eggs are left?"; "Sam earns $300 in
            # interest" for "How much interest does he earn?" (a verb of its own)
            kinds.append("asked")
        elif other and (each or not verb) and other.group(2).split()[-1].lower() not in _GENERIC:
            kinds.append("other")
        else:
            kinds.append("plain")
    if "asked" in kinds:
        return parts[len(kinds) - 1 - kinds[::-1].index("asked")]
    if kinds[-1] in ("other", "aside"):
        plain = [part for part, kind in zip(parts, kinds, strict=True) if kind == "plain"]
        if plain:
            return plain[-1]
    return clause


# A closing sentence that remarks on the answer rather than stating it: an example ("e.g.
# x = 0 gives 1 ≤ 5"), a confirmation ("which for n = 5 also gives 35"), an approximation or
# another form of it ("That's roughly 45 mph.", "As a decimal, 0.666…"), an aside in brackets,
# an offer ("in case that's useful"), a property of the answer ("It crosses the x-axis at 2.5")
_REMARK = re.compile(
    r"\be\.g\.|\bfor\s+(?:example|instance)\b|\balso\s+(?:gives?|equals?|yields?|comes\s+to)\b"
    r"|^\W*(?:that(?:'s|\s+is)|this\s+is|it(?:'s|\s+is)|or)\s+(?:about|roughly|approximately|"
    r"around|nearly|almost|close\s+to|just\s+(?:under|over))\b"
    # "in knots, about 29", "take x = 4: 1 < 2": another unit's approximation, an example
    r"|^\W*(?:(?:in|or)\s+[\w/]+\s*,?\s*|numerically\s*,?\s*(?:that(?:'s|\s+is)\s+)?)?(?:about|roughly|approximately|around|nearly|almost)"
    r"\s+[-$]?\d|^\W*(?:take|try|say|pick)\s+[a-z]\s*="
    r"|^\W*(?:as|in)\s+(?:an?\s+)?(?P<form>decimal|percentage|percent|fraction|mixed\s+number|"
    r"scientific\s+notation)s?(?:\s+form)?\b"
    # "So every x from -4 upward works": the solution set told again in words
    r"|\b(?:every|any|all)\s+(?:real\s+)?[a-z]\s+(?:from|in|between|above|below|greater|less|"
    r"at\s+least|at\s+most|beyond|over|under)\b.*\b(?:works?|satisf(?:y|ies)|qualif(?:y|ies)|"
    r"holds?|will\s+do)\b"
    # one bracket around the whole sentence, not "(x² − 9)/(x − 3) = x + 3 (...)."
    r"|^\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\W*$|\bin\s+case\b|\bshould\s+you\s+need\b|\bif\s+(?:you\s+)?need(?:ed)?\b"
    r"|^\W*(?:it|this|the\s+(?:line|graph|curve|parabola))\s+(?P<meets>crosses|meets|cuts|"
    r"intersects|touches|passes\s+through|hits)\b"
    # "..., and 21 + 4 = 25, as required.", "so that's right": a check that the answer passed
    r"|\bas\s+(?:required|expected|needed|claimed|it\s+should\s+be)\W*$"
    r"|\bso\s+(?:that|it)(?:'s|\s+is)\s+(?:right|correct)\b"
    # "That is 5 full crates and 14 more apples.": the answer told again in mixed units
    r"|^\W*(?:that(?:'s|\s+is)|i\.\s?e\.,?)\s+\d[\d,.]*\s+[a-z][a-z ]*\s+and\s+\d[\d,.]*\s+[a-z]",
    re.IGNORECASE,
)
# "It has 8 divisors.", "it contains 10 integers": a property of the answer before it, unless
# it counts what the question counts ("It has 12 edges." for "How many edges ...?")
_PROPERTY = re.compile(r"^\W*(?:and\s+)?(?:it|they)\s+(?:has|have|contains?|holds?|includes?)\s+"
                       r"[-$]?\d[\d,.]*\s+(?:[a-z]+\s+)?([a-z]{3,})", re.IGNORECASE)
_WORDED = re.compile(
    r"(?:\b(?:is|are|was|equals|comes\s+to|means|represents?|stands?\s+for)\b|=)(?=[^=]*$)"
    r"(?P<tail>.*)",
    re.IGNORECASE,
)


def commentary(sentence: str, question: str | None, given: set[str]) -> bool:
    """Whether a closing sentence remarks on an answer stated before it (an example, a check,
    an approximation or another form, an aside, a property of the answer, a restatement in
    words of the question's numbers) rather than committing to one."""
    owned = _PROPERTY.match(sentence)
    counted = HOW_MANY.search(question or "")
    if owned and not (counted and owned.group(1).lower().rstrip("s")
                      == counted.group(1).lower().rstrip("s")):
        return True
    remark = _REMARK.search(sentence)
    if remark:
        asked = (question or "").lower()
        if remark.group("form") and remark.group("form").split()[0] in asked:
            return False  # "As a percentage, 40%." where the question asks for a percentage
        return not (remark.group("meets") and re.search(r"intercept|cross|meet|intersect", asked))
    # "So 6 cm on the map is a kilometre and a half.": the question's numbers, a value in words
    numbers = _GIVEN_NUMBER.findall(sentence)
    worded = _WORDED.search(sentence)
    return (bool(numbers) and set(numbers) <= given and worded is not None
            and not re.search(r"[\dπ√∞]|\\(?:pi|sqrt|infty)\b", worded.group("tail")))


# "... in km/h?", "How long (in seconds) does ...": the unit the question asks in
_ASKED_UNIT = re.compile(r"[(,]\s*in\s+([^\s?.,()]+)\s*[),]|\b(?:in|to)\s+([^\s?.,]+)\s*[?.]?\s*$")


def asked_unit(question: str | None) -> str | None:
    """The unit a question asks its answer in ("in m/s?", "(in seconds)"), if it names one."""
    unit = _ASKED_UNIT.search(question) if question else None
    return (unit.group(1) or unit.group(2)) if unit else None


def _has_unit(text: str, unit: str) -> bool:
    return compiled(rf"(?<![\w/]){re.escape(unit)}(?![\w/])").search(text) is not None


def converted(stated: str, restated: str, question: str | None) -> bool:
    """Whether a restatement ("120 km/h, i.e. 2 km every minute") leaves the unit the
    question asks in ("in km/h?") for another: a conversion beside the answer, not it."""
    unit = asked_unit(question)
    return unit is not None and _has_unit(stated, unit) and not _has_unit(restated, unit)


SEVERAL = re.compile(r"\b(?:all|numbers|values|solutions|roots)\b", re.IGNORECASE)
"""A question whose answer may be several values ("Find all ...", "the roots")."""
_SOLVE = re.compile(r"\bsolve\b", re.IGNORECASE)


# what lets an equation have more than one root: a power, a root, an absolute value, a product
_NONLINEAR = re.compile(r"\^|\*\*|[²³√|]|\\sqrt|\)\s*\(|\b(?:squared?|cubed?)\b|[<>≤≥]|\\[lg]e",
                        re.IGNORECASE)


def one_solution(question: str | None) -> bool:
    """Whether a question solves one linear equation ("Solve 3(x + 4) = 27."): its answer is
    one value, so two values ("x = -4 or x = 4", "Answer: 5, 9") are two answers."""
    question = plain_question(question)
    if question and _SOLVE.search(question) and _ONE_ROOT.search(question):
        return True  # "Solve x^2 = 49 for positive x": the restriction leaves one value
    return bool(question and question.count("=") == 1 and _SOLVE.search(question)
                and not SEVERAL.search(question) and not _NONLINEAR.search(question))


# "for positive x", "the negative root", "the smallest solution": one value asked of several
_ONE_ROOT = re.compile(r"\bfor\s+(?:positive|negative)\s+[a-z]\b|\bthe\s+(?:positive|negative|"
                       r"smallest|largest|greatest|least)\s+(?:solution|root|value)\b",
                       re.IGNORECASE)


def asks_several(question: str | None) -> bool:
    """Whether a question may take several values for its answer (roots, "all", solve)."""
    return question is not None and bool(
        SEVERAL.search(question) or _SOLVE.search(question) and not one_solution(question))


def givens(question: str | None) -> set[str]:
    """The numbers a question gives, as written."""
    return set(_GIVEN_NUMBER.findall(question)) if question else set()


def recaps(sentence: str, givens: set[str]) -> bool:
    """Whether a sentence only narrates the question's numbers ("He started with 40 and gave
    away 16.") or the working ("I multiplied 2.5 by 60.") rather than concluding."""
    if _CONCLUDES.search(sentence):
        return False
    numbers = _GIVEN_NUMBER.findall(sentence)
    return len(numbers) >= 2 and set(numbers) <= givens or _METHOD.match(sentence) is not None


__all__ = [
    "ASKED_VARIABLE", "QUALIFIED", "SEVERAL", "aside", "asked_clause", "asked_quantity",
    "complement",
    "asked_unit", "asked_variable", "asked_words", "asks_several", "commentary",
    "committed_clause", "converted", "givens", "one_solution", "opposite_end", "other_quantity",
    "plain_question", "recaps",
]
