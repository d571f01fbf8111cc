"""A question's options, ready to be recognised when a response restates them in words.

Exact and close matches (case, articles, plurals and verb endings: "red blood cell" is "Red
blood cells", "decrease" is "Decreases"), surnames alone for options that are names ("Maslow"
is "Abraham Maslow"), sets of Roman numerals ("only I and III" is "I and III only"),
ordinals and numbers ("the third option", "choice 2", "option two", "the last one"), and
"(C)" written beside a restated option. Any number of options: letters run A to Z.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from promptmill.extraction.text import compiled

LETTERS = string.ascii_uppercase
"""Choice letters: index 0 is A."""

_ARTICLES = frozenset({"the", "a", "an"})
_FUNCTION_WORDS = frozenset({
    "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "is", "are", "be", "its",
    "it", "this", "that", "from", "as", "all", "within", "into", "per", "than",
})
# "ive", "ian": "convective" is "convection", "Westphalian" is "Westphalia"
_SUFFIXES = ("ies", "ing", "ion", "ive", "ian", "es", "ed", "ia", "um", "us", "s", "e", "y", "a",
             "i")
# a word: Latin letters and digits, or a Greek letter an option may be ("π", "Ω")
_WORD = re.compile(r"[a-z0-9α-ω]+(?:[.'][a-z0-9α-ω]+)*")
_NAME_PARTICLES = frozenset({"da", "de", "del", "der", "di", "du", "la", "le", "van", "von"})
_ROMAN = r"(?:VIII|VII|VI|IV|IX|V|III|II|I|X)"
_ROMAN_LIST = re.compile(
    rf"(?<![\w.])({_ROMAN}(?:\s*(?:,\s*(?:and\s+)?|and\s+|&\s*)(?:statements?\s+)?{_ROMAN})+)"
    r"(?![\w])"
)
_ROMAN_OPTION = re.compile(
    rf"^\s*(?:statements?\s+)?{_ROMAN}(?:\s*(?:,\s*(?:and\s+)?|and\s+|&\s*){_ROMAN})*"
    r"(?:\s+only)?\s*$"
)
_COUNTS = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty",
]
_ORDINALS = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
    "eighteenth", "nineteenth", "twentieth",
]
_NUMERAL_ORDINAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")
# "the penultimate option", "the second-to-last choice": the option before the last
_PENULTIMATE = r"penultimate|(?:second|next)[- ]to[- ]last|second[- ]last|last[- ]but[- ]one"
_ORDINAL_WORD = "|".join([*_ORDINALS, r"\d{1,2}(?:st|nd|rd|th)", _PENULTIMATE, "last", "final"])
_ORDINAL = re.compile(
    rf"\b(?:the\s+)?(?P<ord>{_ORDINAL_WORD})(?:\s+(?:listed|given))?\s+"
    r"(?P<noun>option|choice|answer\s+choice|alternative|statement|answer|one(?=\s*[.!]?\s*$|"
    r"\s*[.!;](?:\s|$)|"  # "..., is the third one. Python and ...": the clause ends on it
    r"\s+(?:is|was|would|must|should|seems|looks|fits|works|matches|has|gives|satisfies|holds|"
    r"applies|describes)\b))\b"
    rf"|\b(?:option|choice|alternative|answer\s+choice)\s+(?:number\s+|no\.?\s*|#\s*)?"
    rf"(?P<num>\d{{1,2}}|{'|'.join(_COUNTS)})\b(?![.,]\d)",
    re.IGNORECASE,
)
_COUNT_AFTER = rf"(?:number\s+|no\.?\s*|\#\s*)?(?:\d{{1,2}}|{'|'.join(_COUNTS)})\b"
NUMBERED = re.compile(rf"(?i:option|choice|alternative)\s+{_COUNT_AFTER}")
"""An option named by its number ("option two", "choice 3"): an anchor must not swallow it."""
# "The first choice.", "That's option two.", "So: the third one.": a sentence that only
# points at an option states it as plainly as a letter would
_REFERENCE = re.compile(
    r"(?:^|(?<=[.!?:]\s))[ \t>*#-]*(?i:(?:so|thus|hence|therefore|that's|that\s+is|it's|"
    r"it\s+is|i\.e\.|answer|final\s+answer|(?:that|this|which)\s+makes\s+it)\s*[,:]?\s*)?"
    rf"(?P<ref>(?i:the\s+)?(?i:{_ORDINAL_WORD})(?:\s+(?i:listed|given))?\s+"
    r"(?i:option|choice|answer\s+choice|alternative|one)"
    r"(?:\s+(?i:in|on)\s+the\s+(?i:list|options|choices))?"
    rf"|(?i:option|choice|alternative|answer\s+choice)\s+{_COUNT_AFTER})"
    r"(?:[ \t*]*$|[ \t*]*[.!][ \t*]*(?:$|\s))",
    re.MULTILINE,
)
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_GOES_ON_AS_MATH = re.compile(r"\s*(?:[\^*/+=×<>]|\d|\\(?:times|cdot|frac))")
_NEGATION_BEFORE = re.compile(
    r"\b(?:not|never|neither|nor|no(?!\s*[,.!:;])|rather\s+than|instead\s+of|unlike|except|"
    r"other\s+than|"
    r"isn't|aren't|wasn't|rules?\s+out|ruling\s+out|eliminat\w*|exclud\w*)\b|n't\b",
    re.IGNORECASE,
)
_NEGATION_AFTER = re.compile(
    r"^[^,;:.!?—–]{0,40}?\b(?:(?:is|are|was|were)(?:\s+not\b|n't\b|\s+(?:wrong|incorrect|false|"
    r"ruled\s+out|eliminated|out)\b)|can\s+be\s+(?:ruled\s+out|eliminated))",
    re.IGNORECASE,
)
# "The one that isn't a mammal is the shark", "found in RNA but not DNA are I and II only": a
# denial inside the subject leaves the option its copula names asserted (not "it is not
# true that the answer is A")
_ABOUT_ANSWER = re.compile(r"\b(?:true|correct|right|case|answer|option|choice)\b", re.IGNORECASE)
_COPULA_NEXT = re.compile(r"\b(?:is|are|was|were)\s+(?:the\s+|an?\s+)?$", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[,;:.!?()]|\s[—–-]\s|\bbut\b|\bwhereas\b|\bwhile\b", re.IGNORECASE)


def _blank(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def _unwrap(match: re.Match[str]) -> str:
    return " " * (match.start(1) - match.start(0)) + match.group(1) + " "


_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_MARKUP = re.compile(
    r"\^\s*\{?\\circ\}?|\\circ|°|\*\*|__|[`$*]|\\[()\[\]]|\\[,;!]"
    r"|(?<=[-*+] )\[[ xX]\](?= )"  # a task list's box: "- [x] B. Penguin" lists "B. Penguin"
)


def clean(text: str) -> str:
    """Text with markdown and LaTeX wrappers (``**``, ``$``, ``\\text{}``, degree signs)
    blanked out, character for character, so positions in it are positions in ``text``."""
    if "\\" in text:
        text = _WRAPPER.sub(_unwrap, text)
        text = re.sub(r"\\(?:times|cdot)", lambda m: "×" + " " * (len(m.group(0)) - 1), text)
    return _MARKUP.sub(_blank, text)


def _fold(text: str) -> str:
    """Lower case without accents, one character for one, so positions keep."""
    if text.isascii():
        return text.lower()
    folded = []
    for char in text:
        base = unicodedata.normalize("NFKD", char)[:1] or char
        folded.append(base.lower()[:1] or base)
    return "".join(folded)


@lru_cache(maxsize=1 << 16)  # the same words come back in every response
def stem(word: str) -> str:
    """A crude stem, so singular and plural, and a verb's forms, compare equal (applied
    until nothing more comes off: "Incas" and "Inca" both end as "inc", "kidneys" and
    "kidney" as "kidn")."""
    while True:
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        else:
            return word


_ORDINAL_STEMS = frozenset(stem(word) for word in _ORDINALS)
_CARDINALS = {word: str(number) for number, word in enumerate(_COUNTS[1:], start=2)}


@lru_cache(maxsize=1 << 16)  # words repeat across responses; stemming each costs a scan
def _word_form(word: str) -> str:
    """A word's stem; "14th" as "fourteenth", so numerals and words for ordinals match;
    "Plato's" as "Plato"."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 6 and word.endswith(("ist", "ists")):
        word = word[: word.rindex("ist")] + "ism"  # "Impressionist" names "Impressionism"
    if word in _CARDINALS:
        return _CARDINALS[word]  # "six" names the option "6" ("one" stays a word: "the third one")
    ordinal = _NUMERAL_ORDINAL.fullmatch(word)
    if ordinal and 0 < int(ordinal.group(1)) <= len(_ORDINALS):
        word = _ORDINALS[int(ordinal.group(1)) - 1]
    return stem(word)


_DEGREES = re.compile(r"(?<=\d\s)degrees?\s+(celsius|fahrenheit|centigrade)\b")


def _unit_letter(match: re.Match[str]) -> str:
    """"degrees Celsius" as its scale's letter, where its name began, so positions keep."""
    blank = " " * (match.start(1) - match.start(0))
    return blank + match.group(1)[0] + " " * (len(match.group(1)) - 1)


_UNITS = {word: n for n, word in enumerate(_COUNTS[:19], start=1)}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_NUMBER_WORD = rf"(?:{'|'.join([*_TENS, *sorted(_UNITS, key=len, reverse=True)])}|hundred|thousand)"
# "forty-six", "one hundred twenty", "two thousand and five": a number in words
_NUMBER_WORDS = re.compile(rf"\b{_NUMBER_WORD}(?:(?:[- ]|\s+and\s+){_NUMBER_WORD})*\b")
# "1,024", "10 000": a number with its thousands grouped
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:(?:,|[ \u00a0\u202f])\d{3})+(?![\d]|[.,]\d)")


_NUMBER_KEYS = (*_TENS, "hundred", "thousand")


def _number_value(words: str) -> int | None:
    """The value of a number in words; None where it is no single number ("two three")."""
    total = current = 0
    last = None  # the kind of the last word: "unit", "ten", "hundred", "thousand"
    for word in re.split(r"\s+and\s+|[- ]+", words):
        if word in _UNITS:
            if last in ("unit",) or (last == "ten" and _UNITS[word] > 9):
                return None
            current += _UNITS[word]
            last = "unit"
        elif word in _TENS:
            if last in ("unit", "ten"):
                return None
            current += _TENS[word]
            last = "ten"
        elif word == "hundred":
            if last not in ("unit",) or current >= 100:
                return None
            current *= 100
            last = "hundred"
        else:  # thousand
            if last is None or last == "thousand":
                return None
            total, current = total + current * 1000, 0
            last = "thousand"
    return total + current


def _numerals(lowered: str) -> str:
    """Numbers in words and grouped numbers written as plain numerals, each in the span it
    had, so positions keep ("fifty dollars" as "50    dollars", "1,024" as "1024 "); a lone
    count word stays (word forms read "six" as "6", and "one" stays a word)."""
    def digits(match: re.Match[str]) -> str:
        said = match.group(0)
        if " " not in said and "-" not in said:
            return str(_TENS[said]).ljust(len(said)) if said in _TENS else said
        value = _number_value(said)
        return said if value is None else str(value).ljust(len(said))

    if "," in lowered or " " in lowered and any(char.isdigit() for char in lowered):
        lowered = _GROUPED.sub(lambda m: re.sub(r"\D", "", m.group(0)).ljust(len(m.group(0))),
                               lowered)
    if not any(word in lowered for word in _NUMBER_KEYS):
        return lowered  # no tens, hundreds or thousands: no number in words to read
    return _NUMBER_WORDS.sub(digits, lowered)


@lru_cache(maxsize=4096)  # a closing sentence is read several times over
def _words(text: str) -> tuple[tuple[str, int, int], ...]:
    """Stemmed words of (cleaned) ``text`` without articles, each with its span (a last
    "a" is no article: the "A" of "Vitamin A")."""
    lowered = _numerals(_fold(text))
    if "degree" in lowered:  # "100 degrees Celsius" as the option "100 °C" (a sign is blanked)
        lowered = _DEGREES.sub(_unit_letter, lowered)
    found = list(_WORD.finditer(lowered))
    return tuple(
        (_word_form(m.group(0)), m.start(), m.end())
        for position, m in enumerate(found)
        if m.group(0) not in _ARTICLES or (position == len(found) - 1 and text[m.start()].isupper())
    )


def words_of(text: str) -> tuple[str, ...]:
    """The stemmed words of ``text`` (markup dropped, numbers in words as numerals)."""
    return tuple(word for word, _, _ in _words(clean(text)))


def _phrase(text: str) -> tuple[str, ...]:
    """An option's stemmed words, without a leading pronoun ("It halves": "halves")."""
    words = tuple(w for w, _, _ in _words(text))
    return words[1:] if len(words) > 1 and words[0] in _PRONOUNS else words


_PRONOUNS = frozenset({"it", "they", "this", "these", "there"})
# words of ordinary prose that an option may spell in capitals as a name ("AND", "NOT", "IF")
_PROSE_WORDS = frozenset({
    "and", "or", "not", "nor", "if", "then", "else", "for", "while", "all", "none", "any", "is",
    "in", "on", "as", "at", "to", "by", "of", "it", "no", "so", "up", "do", "be", "can", "may",
    "will", "let", "new", "set", "get", "put", "run", "use", "but", "yes", "one", "with", "from",
})


@lru_cache(maxsize=4096)
def phrase_of(text: str) -> tuple[str, ...]:
    """A line's stemmed words as ``Options`` reads an option's text (a leading "A." and
    markup dropped), to compare a line with the options."""
    return _phrase(clean(re.sub(r"^\s*\(?A[).:]\s+", "", text)).strip())


_TWO_NAMES = re.compile(r"^([^()]+?)\s+\(([^()]+)\)\s*$")  # "Fixing (kill-green)"
_NAME_AT_START = re.compile(
    r"\s*(?:(?:da|de|del|der|di|du|la|le|van|von)\s+)?([A-Z][A-Za-zÀ-ÿ-]+)(?:'s)?(?![\w-])"
)
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÿ]+")
_LEADING_PRONOUN = re.compile(r"^(?:it|they|this|these|there|the|an?)\s+")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")
_NAME_GOES_ON = re.compile(r"[ \t]+([A-Z][a-zà-ÿ]+)")
_EPONYM = re.compile(r"^([A-Z][A-Za-zÀ-ÿ-]{2,})'s\s+[a-z]")


def _roman_set(text: str) -> frozenset[str]:
    return frozenset(re.findall(_ROMAN, text))


# an option that is an acronym ("CSS", "SMTP"), and capitalised words that may spell one out
_ACRONYM = re.compile(r"[A-Z]{2,6}")
_SPELLED_OUT = re.compile(
    r"\b(?!The\b)[A-Z][a-z]+(?:[ -]+(?:(?:and|of|for|the)\s+)?[A-Z][a-z]+){1,5}\b")


def _in_expression(text: str, start: int, end: int) -> bool:
    """Whether the number at ``start:end`` is one term of a fraction or power ("3/60" names
    no option "3")."""
    return text[start:end].isdigit() and (text[start - 1 : start] in ("/", "^") and start > 0
                                          or text[end : end + 1] in ("/", "^"))


class Options:
    """The options of one question, prepared once for every response to it."""

    __slots__ = (
        "acronyms", "aliases", "by_first", "capitals", "closed", "contents", "count", "elided",
        "heads", "names", "phrases", "roman", "seen", "squashed", "texts", "twins",
    )

    def __init__(self, choices: Sequence[Any], question: str | None = None) -> None:
        texts = []
        for index, choice in enumerate(choices):
            text = str(choice)
            if index < len(LETTERS):  # a leading "A." / "(A)" the dataset may add
                text = compiled(rf"^\s*\(?{LETTERS[index]}[).:]\s+").sub("", text)
            texts.append(clean(text).strip())
        self.count = min(len(texts), len(LETTERS))
        self.texts = texts[: self.count]  # each option as written (its letter removed)
        # each option as its stemmed words ("It halves" as "halves"), options by first word
        self.phrases = [_phrase(text) for text in self.texts]
        # the content words of each option that has three or more: what ``paraphrased`` weighs
        self.contents = [(index, content) for index, phrase in enumerate(self.phrases)
                         if len(content := set(phrase) - _FUNCTION_WORDS) >= 3]
        # "AND", "NOT": an option in capitals is a name; the same word in lower case ("and")
        # is ordinary prose, not a mention of it
        self.capitals = {i for i, text in enumerate(self.texts)
                         if text.isupper() and text.lower() in _PROSE_WORDS}
        # "HTTP" and "HTTPS" stem alike: such options are told apart by their words as written
        self.twins = {i for i, phrase in enumerate(self.phrases)
                      if phrase and self.phrases.count(phrase) > 1}
        self.by_first: dict[str, list[int]] = {}
        for index, phrase in enumerate(self.phrases):
            if phrase:
                self.by_first.setdefault(phrase[0], []).append(index)
        # options made of Roman numerals ("I and III only"): their sets of numerals
        romans = [_ROMAN_OPTION.match(text) is not None for text in self.texts]
        self.roman = (
            [_roman_set(t) if r else frozenset() for t, r in zip(self.texts, romans, strict=True)]
            if sum(romans) >= 2
            else None
        )
        # "Maslow" -> the index of "Abraham Maslow"; not a word the question uses ("Africa" of
        # "South Africa" when it asks about Africa)
        asked = set(_LATIN_WORD.findall(question or ""))
        self.names = {w: i for w, i in self._distinctive_names().items() if w not in asked}
        self.elided = self._elided_ordinals()  # "third" -> "Third law", among "First law", ...
        # options of several words, closed up ("hypertextmarkuplanguage"), by index
        self.squashed = {i: _squash(text) for i, text in enumerate(self.texts)
                         if " " in text and len(_squash(text)) >= 8}
        # one-word options written as two ("Heapsort" as "heap sort"), by their letters
        self.closed = {_squash(text): i for i, text in enumerate(self.texts)
                       if text.isalpha() and len(text) >= 6}
        # "CSS" -> its index: an acronym option, said in full ("Cascading Style Sheets")
        self.acronyms = {text.upper(): i for i, text in enumerate(self.texts)
                         if _ACRONYM.fullmatch(text)}
        self.seen: dict[str, list[tuple[int, int, int]]] = {}  # mentions of recent sentences
        self.heads = self._distinctive_heads()  # "membran" -> the index of "Cell membrane"
        # ("kill", "green") -> the index of "Fixing (kill-green)"
        self.aliases = self._bracketed_aliases()

    def _bracketed_aliases(self) -> dict[tuple[str, ...], int]:
        """Each of the two names an option gives ("Fixing (kill-green)", "165 °F (74 °C)"):
        either one said alone names the option, where no other option uses it (the bracketed
        one only of two words or more: not the "planet" of "Mercury (planet)")."""
        found: dict[tuple[str, ...], set[int]] = {}
        for index, text in enumerate(self.texts):
            parts = _TWO_NAMES.match(text)
            if parts is None:
                continue
            for part, least in ((parts.group(1), 1), (parts.group(2), 2)):
                phrase = _phrase(part)
                if len(phrase) >= least:
                    found.setdefault(phrase, set()).add(index)
        return {phrase: next(iter(owners)) for phrase, owners in found.items()
                if len(owners) == 1 and phrase not in self.phrases
                and not any(phrase == other[: len(phrase)] for i, other in enumerate(self.phrases)
                            if i not in owners)}

    def _distinctive_heads(self) -> dict[str, int]:
        """The last word of each option of two or more words that no other option uses."""
        uses: dict[str, set[int]] = {}
        for index, phrase in enumerate(self.phrases):
            for word in phrase:
                uses.setdefault(word, set()).add(index)
        return {
            phrase[-1]: index
            for index, phrase in enumerate(self.phrases)
            if len(phrase) > 1 and len(phrase[-1]) >= 4 and uses[phrase[-1]] == {index}
        }

    def _elided_ordinals(self) -> dict[str, int]:
        """Options told apart by an ordinal before a shared noun ("First law", "Second law"):
        "the third" alone names "Third law"."""
        by_tail: dict[tuple[str, ...], dict[str, int]] = {}
        for index, phrase in enumerate(self.phrases):
            if len(phrase) > 1 and phrase[0] in _ORDINAL_STEMS:
                by_tail.setdefault(phrase[1:], {})[phrase[0]] = index
        return {word: index for held in by_tail.values() if len(held) > 1
                for word, index in held.items()}

    def _distinctive_names(self) -> dict[str, int]:
        """Capitalised words of name-like options that no other option shares."""
        owners: dict[str, set[int]] = {}
        for index, text in enumerate(self.texts):
            eponym = _EPONYM.match(text)  # "Dijkstra's algorithm": "Dijkstra" names it
            if eponym:
                owners.setdefault(eponym.group(1), set()).add(index)
            words = _LATIN_WORD.findall(text)
            if len(words) < 2 or not all(
                w[0].isupper() or w in _NAME_PARTICLES for w in words if len(w) > 1
            ):
                continue
            for position, word in enumerate(words):
                # a surname may be short ("Poe"), a first or middle name must be longer
                long_enough = len(word) >= (3 if position == len(words) - 1 else 4)
                if long_enough and word[0].isupper():
                    owners.setdefault(word, set()).add(index)
        for index, text in enumerate(self.texts):  # a word in any other option is not distinctive
            for word in _LATIN_WORD.findall(text):
                if word in owners and index not in owners[word]:
                    owners[word].add(index)
        return {word: next(iter(held)) for word, held in owners.items() if len(held) == 1}

    # -- matching ---------------------------------------------------------------------------

    def at_start(self, span: str) -> int | None:
        """The option whose whole text the span starts with (the longest one), when the
        span does not go on as math ("2^10 = ..." does not state the option "2")."""
        words = _words(span)
        if not words:
            return None
        best: int | None = None
        end = 0
        for index in self.by_first.get(words[0][0], ()):
            phrase = self.phrases[index]
            if tuple(w for w, _, _ in words[: len(phrase)]) == phrase and (
                best is None or len(phrase) > len(self.phrases[best])
            ) and self.as_written(span, words[0][1], words[len(phrase) - 1][2], index):
                best, end = index, words[len(phrase) - 1][2]
        if best is None and self.roman is not None:
            match = _ROMAN_LIST.match(span.strip())
            if match:
                best = self._roman_option(match.group(1))
                end = len(span) - len(span.lstrip()) + match.end()
        if best is not None and _GOES_ON_AS_MATH.match(span, end):
            return None
        return best

    def exact(self, text: str) -> int | None:
        """The option whose whole text ``text`` is, word for word ("It doubles." is "It
        doubles"; stems, articles and a leading pronoun aside)."""
        said = _phrase(text)
        return next((i for i, phrase in enumerate(self.phrases) if said and phrase == said), None)

    def _roman_option(self, listed: str) -> int | None:
        assert self.roman is not None
        wanted = _roman_set(listed)
        found = [i for i, numerals in enumerate(self.roman) if numerals == wanted]
        return found[0] if len(found) == 1 else None

    def mentions(self, text: str) -> list[tuple[int, int, int]]:
        """Options the text names, as (start, end, index); a mention inside a longer one's
        is dropped ("Monopoly" inside "Bilateral monopoly")."""
        found = self.seen.get(text)
        if found is None:
            if len(self.seen) > 256:
                self.seen.clear()  # a closing sentence is read several times, then not again
            found = self.seen[text] = self._mentions(text)
        return found

    def _mentions(self, text: str) -> list[tuple[int, int, int]]:
        words = _words(text)
        found: list[tuple[int, int, int]] = []
        for position, (word, _, _) in enumerate(words):
            for index in self.by_first.get(word, ()):
                phrase = self.phrases[index]
                end = position + len(phrase)
                if tuple(w for w, _, _ in words[position:end]) == phrase and (
                    index not in self.capitals
                    or text[words[position][1] : words[end - 1][2]].isupper()
                ) and not _in_expression(text, words[position][1], words[end - 1][2]) and (
                    self.as_written(text, words[position][1], words[end - 1][2], index)
                ):
                    found.append((words[position][1], words[end - 1][2], index))
        for phrase, index in self.aliases.items():
            for position, (word, _, _) in enumerate(words):
                end = position + len(phrase)
                if word == phrase[0] and tuple(w for w, _, _ in words[position:end]) == phrase:
                    found.append((words[position][1], words[end - 1][2], index))
        for word, index in self.names.items():
            for match in compiled(rf"\b{re.escape(word)}\b").finditer(text):
                after = _NAME_GOES_ON.match(text, match.end())
                if after and after.group(1) not in self.texts[index]:
                    continue  # "South America's" is another name than "South Africa"
                found.append((match.start(), match.end(), index))
        if self.roman is not None:
            for match in _ROMAN_LIST.finditer(text):
                numerals = self._roman_option(match.group(1))
                if numerals is not None:
                    found.append((match.start(), match.end(), numerals))
        for match in _PAREN_LETTER.finditer(text):
            index = LETTERS.index(match.group(1))
            if index < self.count:
                found.append((match.start(), match.end(), index))
        for match in _ORDINAL.finditer(text):
            ordinal = self.ordinal(match)
            if ordinal is not None:
                found.append((match.start(), match.end(), ordinal))
        lowered = text.lower()
        if any(word[:3] in lowered and word[-3:] in lowered for word in self.closed):
            for (_, start, _), (_, _, end) in zip(words, words[1:], strict=False):
                index = self.closed.get(_squash(text[start:end]), -1)
                if index >= 0 and " " in text[start:end]:
                    found.append((start, end, index))
        if self.acronyms:
            for match in _SPELLED_OUT.finditer(text):
                initials = "".join(word[0] for word in re.split(r"[ -]+", match.group(0))
                                   if word[0].isupper())
                if initials in self.acronyms:
                    found.append((match.start(), match.end(), self.acronyms[initials]))
        if self.elided:
            for word, start, end in words:
                if word in self.elided:
                    found.append((start, end, self.elided[word]))
        return [
            (start, end, index)
            for start, end, index in found
            if not any(
                s <= start and end <= e and (e - s) > (end - start) and i != index
                for s, e, i in found
            )
        ]

    def ordinal(self, match: re.Match[str]) -> int | None:
        """The option an ordinal or numbered reference names ("the third option", "choice 2")."""
        if match.group("num"):
            number = match.group("num").lower()
            index = int(number) - 1 if number.isdigit() else _COUNTS.index(number)
        else:
            word = match.group("ord").lower()
            if match.group("noun").lower() == "answer" and word != "last":
                return None  # "the final answer", "the first answer" are not options
            if re.fullmatch(_PENULTIMATE, word):
                index = self.count - 2
            elif word in ("last", "final"):
                index = self.count - 1
            elif word[0].isdigit():
                index = int(re.match(r"\d+", word).group(0)) - 1  # type: ignore[union-attr]
            else:
                index = _ORDINALS.index(word)
        return index if 0 <= index < self.count else None

    def references(self, text: str) -> list[tuple[int, int]]:
        """Sentences that only point at an option ("The first choice."): (start, index)."""
        found = []
        for match in _REFERENCE.finditer(text):
            ordinal = _ORDINAL.fullmatch(match.group("ref"))
            index = self.ordinal(ordinal) if ordinal else None
            if index is not None:
                found.append((match.start("ref"), index))
        return found

    def leading(self, clause: str) -> int | None:
        """The one option whose text the whole clause gives the leading words of, two content
        words or more ("the Inca Empire" for "The Inca Empire under Pachacuti", "the
        ancestors of the Shona" for "Ancestors of the Shona people"): an option shortened."""
        said = _phrase(clause)
        if len(set(said) - _FUNCTION_WORDS) < 2:
            return None
        owners = [i for i, phrase in enumerate(self.phrases)
                  if len(phrase) > len(said) and phrase[: len(said)] == said]
        return owners[0] if len(owners) == 1 else None

    def name_at_start(self, span: str) -> int | None:
        """The option a name at the start of ``span`` belongs to ("van Gogh" for "Vincent van
        Gogh", "Dijkstra" for "Dijkstra's algorithm")."""
        if not self.names:
            return None
        match = _NAME_AT_START.match(span)
        return self.names.get(match.group(1)) if match else None

    def ordinal_at_start(self, span: str) -> int | None:
        """The option an ordinal reference at the start of ``span`` names."""
        match = _ORDINAL.match(span.strip())
        return self.ordinal(match) if match else None

    def named(self, sentence: str) -> set[int]:
        """The options a sentence names and does not deny ("sucrose, not glucose"); failing
        that, the one option it writes closed up ("HyperText" for "Hyper Text") or the one
        long option it paraphrases."""
        named = set()
        mentions = self.mentions(sentence)
        for start, end, index in mentions:
            if not negated(sentence, start, end):
                named.add(index)
        if not mentions:
            squashed = _squash(sentence) if self.squashed else ""
            closed = [i for i, option in self.squashed.items() if option in squashed]
            if len(closed) == 1:
                return {closed[0]}
            closest = self.paraphrased(sentence)
            if closest is not None:
                named.add(closest)
        return named

    def headed(self, sentence: str, asked: set[str]) -> int | None:
        """The one option whose head noun, found in no other option nor in the question, the
        sentence names ("The plasma membrane ..." for "Cell membrane")."""
        said = {word for word, _, _ in _words(sentence)}
        found = {index for head, index in self.heads.items() if head in said and head not in asked}
        return found.pop() if len(found) == 1 else None

    def as_written(self, text: str, start: int, end: int, index: int) -> bool:
        """Whether the words at ``start:end`` are option ``index`` as written, where another
        option stems alike (always true for the rest)."""
        return index not in self.twins or (
            _WORD.findall(_fold(text[start:end])) == _WORD.findall(_fold(self.texts[index])))

    def verbatim(self, index: int, sentence: str) -> bool:
        """Whether the sentence holds the option's own words as written ("It" aside)."""
        words = _LEADING_PRONOUN.sub("", self.texts[index].lower())
        as_written = compiled(rf"(?<![\w]){re.escape(words)}(?![\w])")
        return as_written.search(sentence.lower()) is not None

    def paraphrased(self, sentence: str) -> int | None:
        """The one option of three or more content words that ``sentence`` mostly restates
        ("the market value of all final goods and services produced within a country" is
        "The total value of final goods and services produced in a country")."""
        if not self.contents:
            return None  # no option long enough to be paraphrased
        words = [word for word, _, _ in _words(sentence)]
        # "the Sun's light" says "sunlight": two words may be one compound of an option
        said = set(words) | {stem(a + b) for a, b in zip(words, words[1:], strict=False)}
        scores = [(len(content & said) / len(content), index) for index, content in self.contents]
        scores.sort(reverse=True)
        # the best restated mostly, and clearly more than any other option (options that share
        # words, "Earth's shadow on the Moon" and "the Moon's position ... Sun and Earth")
        if scores and scores[0][0] >= 0.75 and (
            len(scores) == 1 or scores[1][0] < 0.5 or scores[0][0] - scores[1][0] >= 0.3
        ):
            return scores[0][1]
        # options of the same terms in another arrangement ("the heart is cardiac and the
        # diaphragm skeletal" and "the heart is skeletal and ..."): the one said in its order
        ordered = [index for score, index in scores if score == 1 and _in_order(
            [word for word in self.phrases[index] if word not in _FUNCTION_WORDS], words)]
        return ordered[0] if len(ordered) == 1 else None


def _in_order(words: list[str], said: list[str]) -> bool:
    """Whether ``said`` holds ``words`` in their order, other words between."""
    rest = iter(said)
    return all(word in rest for word in words)


def _squash(text: str) -> str:
    """Letters and digits only, lower case: "Hyper Text" and "HyperText" alike."""
    return _NOT_ALPHANUMERIC.sub("", _fold(text))


def negated(sentence: str, start: int, end: int) -> bool:
    """Whether the mention at ``start:end`` is denied ("not X", "X is wrong", "rules out X")."""
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(sentence, 0, start)]
    clause_start = breaks[-1] if breaks else 0
    # "not glucose or fructose": a denial reaches over a list joined by "or"/"and"/"nor"
    denial = _NEGATION_BEFORE.search(sentence, clause_start, start)
    gap = sentence[denial.end() : start] if denial else ""
    # "the one that isn't a mammal is the shark": the subject's own denial; but "neither is
    # aluminium" denies the option its copula names
    inverted = denial is not None and denial.group(0).lower() in ("neither", "nor") and \
        _COPULA_NEXT.fullmatch(gap.lstrip()) is not None
    if denial and (inverted or not (_COPULA_NEXT.search(gap) and not _ABOUT_ANSWER.search(gap))):
        return True
    return _NEGATION_AFTER.match(sentence[end:]) is not None
