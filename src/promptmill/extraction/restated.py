"""Multiple choice: the option a closing sentence restates in words of its own.

"So the main cause is the ocean absorbing carbon dioxide from the atmosphere." names no option
word for word, yet a grader reads "Absorption of atmospheric carbon dioxide" in it. The
closing sentence's words are matched against every option's content words: same stems, one
word the other's longer form ("verifiability" and "verifiable"), British and American
spellings ("centre", "oxidised"), numbers in words, digits or thousands ("7k" is "7,000"),
and initialisms either way ("ICAO", "dynamic host configuration protocol" for "DHCP"). A word
several options share counts for each only in part, the question's own words not at all; an
option is chosen only when it is clearly the best match and the sentence commits (no
question, no denial, no wavering between options it matches).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from promptmill.extraction.mention import HEDGE
from promptmill.extraction.options import Options, stem, words_of
from promptmill.extraction.text import OR_WORD, bracketed_aside, hedged, sentences

RESTATED = "option_restated"  # method: the closing sentence restates one option in its words

_THOUSANDS = re.compile(r"\b(\d+(?:\.\d+)?)\s?k\b", re.IGNORECASE)  # "7k", "384k"
_DENIAL = re.compile(r"\b(?:not|never|no|neither|nor)\b|n't\b", re.IGNORECASE)
# "For comparison, ...", "All the other options are ...": about the rest, not the answer
_ASIDE = re.compile(r"\W*(?:for\s+(?:reference|context|comparison)|by\s+(?:contrast|comparison)|"
                    r"in\s+contrast)\b|\b(?:the\s+)?(?:other|remaining)\s+(?:options|choices|"
                    r"answers|ones)\b|\bthe\s+(?:others|rest)\b", re.IGNORECASE)
_MAYBE = re.compile(r"\b(?:might|may|could|perhaps|possibly|maybe)\b", re.IGNORECASE)
_STEM_LETTERS = re.compile(r"[a-z]")
_TOKEN = re.compile(r"[A-Za-z]+")
# words that say a sentence concludes, not which option: never evidence for one
_GENERIC = frozenset({"answer", "option", "choice", "correct", "right", "one", "about",
                      "roughly", "approximately", "around", "nearly", "some"})
_FUNCTION = frozenset({"of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "is",
                       "are", "be", "its", "it", "this", "that", "from", "as", "all", "into",
                       "the", "a", "an", "can", "could", "their", "which", "who", "what"})


def _thousands(match: re.Match[str]) -> str:
    value = float(match.group(1)) * 1000
    return str(int(value)) if value.is_integer() else str(value)


@lru_cache(maxsize=1 << 14)
def _loose(word: str) -> str:
    """A stem that spells British and American forms alike ("centre" and "center",
    "oxidised" and "oxidized", "colour" and "color")."""
    if not _STEM_LETTERS.match(word):
        return word
    word = stem(word.replace("z", "s"))
    if len(word) > 3 and word[-1] == "r" and word[-2] not in "aeiou":
        word = word[:-1] + "er"  # "centre" stems as "centr"
    elif len(word) > 5 and word.endswith("our"):
        word = word[:-3] + "or"
    return word


def _same(said: str, option: str) -> bool:
    """Whether a sentence's word is an option's word: equal loose stems, or one the longer
    form of the other (a shared start of five letters or more, most of the shorter one)."""
    if said == option:
        return True
    if said.isdigit() or option.isdigit() or "." in said or "." in option:
        return False
    shared = len(os.path.commonprefix((said, option)))
    return shared >= 5 and shared >= 0.75 * min(len(said), len(option))


def _initials(text: str) -> set[str]:
    """Each way an option may be abbreviated: the first letters of its words, with or
    without its small words, a word in capitals kept whole ("trna" for "Transfer RNA")."""
    tokens = _TOKEN.findall(text)
    if len(tokens) < 2:
        return set()
    found = set()
    for keep_small in (True, False):
        kept = [t for t in tokens if keep_small or t.lower() not in _FUNCTION]
        if len(kept) >= 2:
            found.add("".join(t.lower() if t.isupper() and len(t) > 1 else t[0].lower()
                              for t in kept))
    return {initials for initials in found if len(initials) >= 3}


class _Prepared:
    """An options list's content words and abbreviations, read once per question."""

    __slots__ = ("abbreviations", "acronyms", "contents", "weights")

    def __init__(self, texts: tuple[str, ...], question: str | None) -> None:
        asked = {_loose(word) for word in words_of(question or "")}
        # each option's content words, loosely stemmed, without the question's own words
        self.contents = [
            {_loose(word) for word in words_of(text)} - asked - _FUNCTION - _GENERIC
            for text in texts
        ]
        holders: dict[str, int] = {}
        for content in self.contents:
            for word in content:
                holders[word] = holders.get(word, 0) + 1
        # a word several options share says less about which one is meant
        self.weights = {word: 1 / count for word, count in holders.items()}
        # "icao" -> the index of "International Civil Aviation Organization"
        self.abbreviations: dict[str, int] = {}
        for index, text in enumerate(texts):
            for initials in _initials(text):
                self.abbreviations.setdefault(initials, index)
        # "dhcp" -> the index of the option "DHCP", said in full
        self.acronyms = {text.lower(): index for index, text in enumerate(texts)
                         if re.fullmatch(r"[A-Z]{3,6}", text)}


@lru_cache(maxsize=1024)  # a question's samples share it
def _prepared_for(texts: tuple[str, ...], question: str | None) -> _Prepared:
    return _Prepared(texts, question)


def _prepared(options: Options, question: str | None) -> _Prepared:
    return _prepared_for(tuple(options.texts), question)


def _abbreviated(sentence: str, prepared: _Prepared) -> set[int]:
    """The options the sentence names by initials, or spells out when they are initials."""
    found = set()
    for token in _TOKEN.findall(sentence):
        index = prepared.abbreviations.get(token.lower())
        if index is not None and (token.isupper() or token[1:].isupper()):
            found.add(index)  # "ICAO", "tRNA"
    if prepared.acronyms:
        tokens = [t.lower() for t in _TOKEN.findall(sentence)]
        for acronym, index in prepared.acronyms.items():
            size = len(acronym)
            if any("".join(t[0] for t in tokens[i : i + size]) == acronym
                   for i in range(len(tokens) - size + 1)):
                found.add(index)  # "subject-object-verb" for "SOV"
    return found


def scores(sentence: str, options: Options, question: str | None) -> list[float]:
    """How strongly the sentence restates each option (an option it abbreviates: no less
    than every content word it has)."""
    prepared = _prepared(options, question)
    expanded = _THOUSANDS.sub(_thousands, sentence) if "k" in sentence.lower() else sentence
    said = {_loose(word) for word in words_of(expanded)} - _FUNCTION - _GENERIC
    by_start: dict[str, list[str]] = {}  # longer words by their first five letters
    for word in said:
        if len(word) >= 5:
            by_start.setdefault(word[:5], []).append(word)
    result = []
    for content in prepared.contents:
        result.append(sum(prepared.weights[word] for word in content if word in said or any(
            _same(other, word) for other in by_start.get(word[:5], ()))))
    for index in _abbreviated(sentence, prepared):
        result[index] = max(result[index], float(len(prepared.contents[index]) or 1))
    return result


def restated_closing(text: str, options: Options, question: str | None) -> tuple[int, object]:
    """Where the closing sentence starts and the one option it restates (None: it names
    none clearly; ``HEDGE``: it wavers between two it restates)."""
    found = sentences(text)
    if not found:
        return 0, None
    start, sentence = found[-1]
    if "?" in sentence or _ASIDE.search(sentence) or bracketed_aside(text, start + 1):
        return start, None
    wavers = hedged(sentence) or bool(_MAYBE.search(sentence) and OR_WORD.search(sentence))
    named = bool(options.mentions(sentence))
    if not named and not wavers and OR_WORD.search(sentence):
        return start, None  # "X or Y" without a modal: a comparison or a list, no choice
    if named and not wavers or _DENIAL.search(sentence):
        return start, None  # an option said word for word: the other rules read it
    ranked = sorted(((score, index) for index, score in
                     enumerate(scores(sentence, options, question))), reverse=True)
    if not ranked or ranked[0][0] < 1:
        return start, None
    best, index = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    if wavers:
        # "it might be the one about wetlands or the one about the ozone layer": two offered
        return start, HEDGE if second >= 1 else None
    if named or second > 0 and best < 2 * second:
        return start, None
    return start, index


__all__ = ["RESTATED", "restated_closing", "scores"]
