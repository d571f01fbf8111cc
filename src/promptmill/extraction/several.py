"""Statements that name several letters: lists, hedges between letters, a walk through the
options.

A grader reads "B (6) or C (7)", "the prime ones are C and E", "It's either E or B" as no
single answer; a truncated walk through the options cut on its next heading as no answer.
``choice.py`` asks here whether a letter it found goes on into a list.
"""

from __future__ import annotations

import re

from promptmill.extraction.mention import HEDGE, SEVERAL
from promptmill.extraction.options import LETTERS, Options
from promptmill.extraction.text import STRONG, Candidate, hypothetical

MORE_LETTERS = re.compile(
    # "(B) (C)": two bracketed letters side by side are a list too
    r"""\s*(?P<join>,\s*(?:and|or)?|and|or|&|/|\+|(?<=[)\]])(?=\s*[(\[]))\s*(?:both\s+|either\s+)?"""
    r"""[(\["']?"""
    r"""(?P<letter>[A-Za-z])[)\]"']?(?![A-Za-z0-9'])(?!\s+(?:is|was|are)\b)"""
)
# "Both A and B are correct.", "A and C could both be right": more than one option endorsed
_LETTERS_ARE_CORRECT = re.compile(
    r"(?<![A-Za-z])(?i:both\s+|options\s+|choices\s+)?\(?[A-Z]\)?"
    r"(?:\s*(?:,\s*(?:and|or)?|and|or|&|/)\s*\(?[A-Z]\)?)+\s+"
    r"(?i:are|were|could|might|may|would|both|seem|look)\b(?i:\s+(?:both|all|be|equally|have))*\s+"
    # "Options A and B both have a case": each argued for, neither chosen
    r"(?i:correct|right|true|valid|acceptable|possible|plausible|defensible|a\s+(?:case|claim))\b"
)
# "So the prime ones are C and E.", "The mammals here are B and D.": a plural subject the
# statement gives two letters for, each an answer (not "the wrong ones are A and C")
_PLURAL_LETTERS = re.compile(
    r"\b(?i:the)\s+(?P<subject>(?:[A-Za-z-]+\s+){0,3}?[a-z]+s)\s+(?i:here\s+|of\s+these\s+)?"
    r"(?i:are|were)\s+(?i:options\s+|choices\s+)?\(?[A-Z]\)?"
    r"(?:\s*(?:,\s*(?:and\s+)?|and\s+|&\s*)\(?[A-Z]\)?)+(?![A-Za-z0-9])"
)
_SET_ASIDE = re.compile(r"(?i)\b(?:wrong|incorrect|false|bad|other|remaining|eliminated|"
                        r"rejected|distractors?|errors?|mistakes?|ruled)\b")
# "It's either E or B", "Could be A or B.", "Choose A or B based on ...": two letters offered,
# neither chosen (an option whose text is "OR" or "B-" is not named by them)
_EITHER_LETTERS = re.compile(
    r"\b(?i:either|could\s+be|choose|pick|go\s+with)\s+(?i:option\s+|choice\s+)?\(?([A-Z])\)?\s+(?i:or)\s+"
    r"(?i:option\s+|choice\s+)?\(?([A-Z])\)?(?![A-Za-z0-9])"
)
# "I'd put it as C or B depending on ...", "I'd say A or D": a first person offering two letters
_OFFERS_LETTERS = re.compile(
    r"\b[Ii](?:'d|\s+would|'ll|\s+will)\s+(?:[a-z]+\s+){1,3}?\(?([A-Z])\)?\s+(?i:or)\s+"
    r"\(?([A-Z])\)?(?![A-Za-z0-9])"
)
# "I'd choose B. Or maybe C — ...": a second letter entertained after the first
_OR_MAYBE_LETTER = re.compile(r"[Oo]r\s+(?:maybe|perhaps|possibly)\s+\(?[A-Z]\)?(?![A-Za-z0-9])")
_OWN_TEXT_LEAD = re.compile(r"\s*(?:[(,:]\s*|[—–-]\s+)?")
_OWN_TEXT_END = re.compile(r"(?:\s*\))?(?![\w'])")
NEXT_LISTED = re.compile(r"\s+(?P<join>)[(\[](?P<letter>[A-Z])[)\]]")


def past_own_text(text: str, pos: int, options: Options, index: int) -> int:
    """Where a statement goes on after a letter, past that option's own text ("B (6) or C",
    "A, Iron, or C"): a letter named with its text is still one item of a list."""
    lead = _OWN_TEXT_LEAD.match(text, pos)
    own = options.texts[index].strip()
    start = lead.end() if lead else pos
    if own and text[start : start + len(own)].lower() == own.lower():
        end = _OWN_TEXT_END.match(text, start + len(own))
        if end is not None:
            return end.end()
    return pos


_HEADING_LETTER = re.compile(r"^[ \t>#*-]*[(\[]?([A-Z])[)\].:]", re.MULTILINE)


def walk_cut(text: str, start: int) -> bool:
    """Whether the letter at ``start`` heads the line a truncated response was cut on, after
    lines headed by other letters: the walk through the options cut off ("**A. Liver** ...
    **B."), not an answer."""
    if "\n" in text[start:].rstrip():
        return False
    letter = text[start]
    return any(m.group(1) != letter for m in _HEADING_LETTER.finditer(text, 0, start))


def several_letters(text: str, options: Options) -> list[Candidate]:
    """Statements that endorse, list or waver between several letters ("Both A and B are
    correct", "the mammals here are B and D", "either E or B", "Or maybe C")."""
    found: list[Candidate] = []
    for match in _LETTERS_ARE_CORRECT.finditer(text):
        if hypothetical(text, match.start()):
            continue
        listed = options.at_start(match.group(0))  # "Both A and B" may be an option itself
        if listed is not None:
            found.append(Candidate(match.start(), listed, "option_text", STRONG))
        else:
            wavers = re.search(r"(?i)\b(?:or|could|might|may)\b|/", match.group(0))
            kind = HEDGE if wavers else SEVERAL
            found.append(Candidate(match.start(), None, kind, STRONG))
    for match in _PLURAL_LETTERS.finditer(text):
        if not _SET_ASIDE.search(match.group("subject")) and not hypothetical(text, match.start()):
            found.append(Candidate(match.start(), None, SEVERAL, STRONG))
    for match in [*_EITHER_LETTERS.finditer(text), *_OFFERS_LETTERS.finditer(text)]:
        letters = {LETTERS.index(letter) for letter in match.groups()}
        if len(letters) == 2 and max(letters) < options.count:
            found.append(Candidate(match.start(), None, HEDGE, STRONG))
    found += [Candidate(m.start(), None, HEDGE, STRONG) for m in _OR_MAYBE_LETTER.finditer(text)
              if text[: m.start()].rstrip()[-1:] in ("", ".", "!", ";")]  # opening a sentence
    return found


__all__ = ["MORE_LETTERS", "NEXT_LISTED", "past_own_text", "several_letters", "walk_cut"]
