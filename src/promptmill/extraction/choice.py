"""Multiple choice: the one option a response finally commits to, or None.

Every answer statement is a candidate with its position and kind (``text.Candidate``): tags,
JSON keys, boxes, "the answer is ...", "B is correct", "so D.", a line holding only a letter,
a headline, a table's bold row, the option the closing sentence names. The last of the
strongest kind wins (``text.decide``); a statement naming two options ("A, C", "A or B")
commits to no single answer and is wrong, never its first letter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from promptmill.extraction.mention import HEDGE, SEVERAL, closing_mention
from promptmill.extraction.options import LETTERS, NUMBERED, Options, clean, negated, phrase_of
from promptmill.extraction.restated import RESTATED, restated_closing
from promptmill.extraction.several import (
    MORE_LETTERS,
    NEXT_LISTED,
    past_own_text,
    several_letters,
    walk_cut,
)
from promptmill.extraction.text import (
    CORRECTION,
    MARKED,
    MEDIUM,
    STRONG,
    UNMARKED,
    WEAK,
    Candidate,
    alternative_after,
    answer_rows,
    asked_fields,
    boxed,
    bracketed_aside,
    conceded,
    corrected_after,
    decide,
    first_line,
    hedged,
    hypothetical,
    json_answers,
    refused,
    settled,
    side_by_side,
    squeeze,
    table_rows,
    tagged,
    unbold,
)

_FILLER = (
    r"(?:(?:therefore|thus|clearly|definitely|indeed|likely|probably|then|actually|still|"
    r"really|simply|just|obviously|certainly|most\s+likely)\s*,?\s+)?"
)
_ANCHOR = re.compile(
    r"""
    (?:
        \b(?:(?:final|correct|right|best|my|the|most\s+likely|only|true)\s+)*answers?
            (?:\s+(?:choice|option))?\s*"?\s*(?:is|are|would\s+be|should\s+be|must\s+be|will\s+be|
            =|:|-|—|–|→|->)
      | \b(?:correct|right|best|final|my|closest|most\s+(?:likely|accurate|appropriate|
            plausible))\s+(?:(?:option|choice|pick|selection|one|match|fit|response)\s*)?
            (?:is|would\s+be|:|=|-|—)
      | \bi(?:\s+would|\s+will|'ll|'d|\s+shall|\s+am\s+going\s+to)?\s+(?:choose|pick|select|
            go\s+with|opt\s+for|answer|say|guess|mark)
      | \b(?:going|go|stick|sticking)\s+with
      | \b(?:change|changing|switch|switching|revise|revising|amend|amending|update|updating)
            \s+(?:it\s+|my\s+answer\s+|the\s+answer\s+)?to
      | \b(?:that|this)\s+leaves
      | \bleaves\s+(?:only\s+|just\s+)?(?=\(?(?-i:[A-Z])\)?(?:[\s.,;!]|$)|option|choice)
      | \bleaving\s+(?:only\s+)?
      | \b(?:we(?:'re|\s+are)|i(?:'m|\s+am)|you(?:'re|\s+are))\s+left\s+with
    )
    \s*"""
    + _FILLER
    + rf"(?:(?!{NUMBERED.pattern})(?:option|choice|answer|letter)\s+)?",
    re.IGNORECASE | re.VERBOSE,
)
# Weaker anchors: only a letter, an ordinal or an option's text right after them counts.
_STRICT_ANCHOR = re.compile(
    r"\b(?:it's|it\s+is|it\s+was|it\s+must\s+be|it\s+must\s+have\s+been|that's|that\s+is|"
    r"that\s+was|that\s+would\s+be|this\s+is|"
    r"which\s+is|so\s+it's|hence|therefore|thus|so)\s*,?\s*"
    + _FILLER
    + rf"(?:(?!{NUMBERED.pattern})(?:option|choice|letter)\s+)?",
    re.IGNORECASE,
)
_LETTER_AT = re.compile(
    r"""\s*[:\-]?\s*(?P<open>[(\["'])?\s*(?P<letter>[A-Za-z])\s*(?P<close>[)\]"'])?"""
    r"(?![A-Za-z0-9'])"
)
_LETTER_IS_CORRECT = re.compile(
    r"(?<![A-Za-z])(?i:option\s+|choice\s+)?(?:\((?P<paren>[A-Za-z])\)|(?P<letter>[A-Z]))"
    r"\s+(?i:is|would\s+be|must\s+be|seems|looks|fits|appears)\s+(?i:the\s+|to\s+be\s+)?"
    r"(?i:correct|right|best|better|true|most\s+(?:likely|accurate|appropriate|plausible))\b"
    r"(?!\s+(?i:only|if|when|for|in))"
)
# "Only statement C holds.", "Option B alone applies", "C is the only one that is true"
_HOLDS = (
    r"(?i:holds|applies|fits|works|qualifies|survives|stands|(?:is|are)\s+(?:true|correct|right|"
    r"valid))"
)
_ONLY_LETTER = re.compile(
    r"\b(?i:only|just)\s+(?i:statement|option|choice|answer|letter)?\s*"
    r"(?:\((?P<paren>[A-Z])\)|(?P<letter>[A-Z]))\s+" + _HOLDS + r"\b|"
    r"\b(?i:statement|option|choice|answer)\s+(?:\((?P<paren2>[A-Z])\)|(?P<letter2>[A-Z]))\s+"
    r"(?i:alone\s+" + _HOLDS + r"|is\s+the\s+only\s+(?:one|statement|option|choice)\s+"
    r"(?:that|which)\s+" + _HOLDS + r")\b"
)
# "Wind is the one that qualifies": the option the clause before it names
_IS_THE_ONE = re.compile(
    r"\s(?i:is|would\s+be)\s+the\s+(?i:only\s+)?one\s+(?i:that|which)\s+" + _HOLDS + r"\b"
)
# "The boxer is Muhammad Ali — option A.": an option's text and then its own letter, closing
# the sentence: the two agree on one answer
_TEXT_THEN_LETTER = re.compile(
    r"(?:\s[—–-]|,|\s\()\s*(?i:option|choice|answer)\s+\(?([A-Z])\)?\)?[ \t]*"
    r"(?:[.!][ \t]*)?(?:\n|$)",
    re.MULTILINE,
)
# "the choice that includes them all", "the one that combines the two": the option that is
# "All of the above" / "Both ..." described rather than quoted
_COVERING_ONE = re.compile(
    r"\b(?:option|choice|answer|one)\s+(?:that|which)\s+(?:includes?|covers?|combines?|"
    r"contains?|lists?|names?|groups?|takes\s+in)\s+(?:(?P<all>(?:them|these|those)\s+all|all\s+"
    r"(?:of\s+)?(?:them|these|those|the\s+others|(?:three|four|five|six)(?:\s+\w+)?)|"
    r"every\s+one\s+of\s+them|each\s+of\s+them)|(?P<both>both|the\s+two|the\s+pair))\b",
    re.IGNORECASE,
)
_ALL_OPTION = re.compile(r"\s*all\s+(?:of\s+)?(?:the\s+)?(?:above|these|those|of\s+them)\b", re.I)
_BOTH_OPTION = re.compile(r"\s*both\b", re.IGNORECASE)


def _covering_option(text: str, options: Options) -> list[Candidate]:
    """The "all of the above" or "both ..." option described by what it covers ("the correct
    choice is the one that includes them all"): the one such option, where there is one."""
    found: list[Candidate] = []
    if " that " not in text and " which " not in text:
        return found
    for match in _COVERING_ONE.finditer(text):
        if hypothetical(text, match.start()):
            continue
        kind = _ALL_OPTION if match.group("all") else _BOTH_OPTION
        owners = [i for i, option in enumerate(options.texts) if kind.match(option)]
        if len(owners) == 1:
            found.append(Candidate(match.start(), owners[0], "covering_option", STRONG))
    return found


_CLAUSE_BREAK = re.compile(r"[.;:!?\n,]|\bbut\b")
# "A B C D.", "Answer: B C E": letters side by side up to the end of the sentence
# what follows a box that states the case it holds in: "\boxed{B} if ...", "\boxed{C} for ..."
_BOX_CONDITION = re.compile(r"[\s)}]*(?:(if|when|assuming|unless)|for|under|with)\b", re.IGNORECASE)
_ANSWER_OBJECT = re.compile(
    r"""["'](?:final_)?(?:answer|choice|selection)["']\s*:\s*\{[^{}]*?"""
    r"""["'](?:letter|label|key|id|answer_letter)["']\s*:\s*["']\s*([A-Za-z])\s*["']""",
    re.IGNORECASE,
)
_LETTER_RUN = re.compile(r"(?:[ \t]+\(?[A-Z]\)?)+[ \t]*(?:[.!]|$)", re.MULTILINE)
_IS_THE_CHOICE = re.compile(
    r"\s(?i:is|would\s+be|must\s+be)\s+(?i:the|my)\s+"
    r"(?!(?i:wrong|incorrect|worst|false|bad|opposite)\b)(?:[a-z]+\s+)?(?i:choice|answer|option|pick)\b"
)
# "The capital is D.", "The one that stays O(n log n) is (C).": a letter closing a sentence
_IS_LETTER = re.compile(
    r"\b(?i:is|would\s+be|must\s+be)\s+(?i:option\s+|choice\s+)?(?:\((?P<paren>[A-Z])\)|(?P<letter>[A-Z]))"
    r"(?=\s*[.!]?\s*$|\s*[.!]\s)",
    re.MULTILINE,
)
# "That makes B the right answer.": the letter a conclusion names as the answer
_MAKES_LETTER = re.compile(
    r"\b(?i:makes?|leaves?)\s+(?:\((?P<paren>[A-Z])\)|(?P<letter>[A-Z]))\s+"
    r"(?i:the\s+(?:right|correct|best|only\s+correct)\s+(?:answer|choice|option|one))\b"
)
# "D, not A.", "B rather than A: ...": the letter kept over the one set aside
_LETTER_NOT_LETTER = re.compile(
    r"(?:^|(?<=[.!?:]\s))[ \t>*]*\(?([A-Z])\)?\**,?\s+(?i:not|rather\s+than|instead\s+of)\s+"
    r"(?i:option\s+)?\(?[A-Z]\)?(?![A-Za-z])",
    re.MULTILINE,
)
# "B. Actually, C.", "No: D.", "A. No wait — B.": a correction that names a letter and nothing more
_CORRECTED_TO = re.compile(
    r"\b(?i:actually|correction|make\s+that|(?<![a-z]\s)no|wait|sorry|i\s+mean)"  # not "carry no A"
    r"(?:[\s,:;—–-]+(?i:no|wait|actually|sorry|i\s+mean))*[ \t]*[,:;—–-]?[ \t]*"
    r"(?i:it's\s+|it\s+is\s+)?\(?([A-Z])\)?(?=\s*[.!,:;]|\s+[—–-]\s|\s*$)",
    re.MULTILINE,
)
# "... on the far side. B.", "The right set is I and III only — **C**.": a letter alone
# closing the text after a sentence (or a dash) states the answer the sentence led to
# "... Ad hominem ✓, ... → G": a letter closing the response after a stop, a dash or an arrow
_CLOSING_LETTER = re.compile(
    r"(?:(?<=[.!?])|\s[—–-]|\s(?:→|⇒|=>|->))[ \t]+\(?([A-Z])\)?[ \t]*[.!]?[ \t]*$"
)
# what a weak anchor's statement says in the conditional mood ("306 (D) would be closer")
_MODAL_AFTER = re.compile(r"[^.!?\n]{1,40}?\s(?:would|could|might)\s+(?:be|have|work|fit|suit)\b")
# "2(1.008) + 16.00 = 18.02 g/mol → B.": an arrow to a letter closing a line concludes it
_ARROW_LETTER = re.compile(r"\s(?:→|⇒|=>|->)[ \t]+\(?([A-Z])\)?[ \t]*[.!]?[ \t]*$", re.MULTILINE)
_CHECKED = re.compile(r"[ \t]*[-*+] \[[xX]\] ")  # a task list's ticked box, "- [x] B. Penguin"
_ABBREVIATION = re.compile(r"\W*([A-Za-z]{3,})\.\W*")
_JOINED = re.compile(
    r"\s*(?:(or)\s+(?:arguably\s+|maybe\s+|perhaps\s+|possibly\s+)?|and\s+)?", re.IGNORECASE
)
_JOINED_TEXTS = re.compile(r"\s*(?:,|and|&|\+|as\s+well\s+as)\s*(?:both\s+)?", re.IGNORECASE)
_WORKING = re.compile(r"\s*(?:leaving|leaves)\b", re.IGNORECASE)
_CONCLUDED_LATER = re.compile(r"[^.;!?\n]*,\s*(?:so|therefore|thus|hence)\b", re.IGNORECASE)
_BOLD_LEAD = re.compile(r"(\*\*|__)(.+?)\1")
_BOLD_LINE = re.compile(r"(\*\*|__)(.+?)\1[\s.:!]*")  # a line all bold
_TEXT_LETTER = re.compile(r"\s*(.+?)\s*\(([A-Z])\)\W*")  # "Neil Armstrong (C)"
_OPENING_TEXT_LETTER = re.compile(r"\s*([^.:;,!?()\n]{1,80}?)\s*\(([A-Z])\)")
_CLAUSE_END = re.compile(r"[.:;,!]\s|\s[—–-]\s|[.:!]$")
_BARE_LINE = re.compile(
    r"^[ \t>#*-]*(?i:(?:final\s+)?answer\s*:?\s*)?(?i:option|choice)?\s*[(\[]?([A-Za-z])[)\]]?"
    r"[.:)]?[ \t*]*$",
    re.MULTILINE,
)
_LETTER_LIST_LINE = re.compile(
    r"^[ \t>#*-]*(?i:(?:final\s+)?answers?\s*:?\s*)?\(?[A-Z]\)?"
    r"(?:\s*(?:,\s*(?:and|or)?|and|or|&|/)\s*\(?[A-Z]\)?)+[ \t.*]*$",
    re.MULTILINE,
)
_COLON_LETTER = re.compile(r":\s*\(?([A-Z])\)?[ \t]*[.!]?[ \t]*$", re.MULTILINE)
_LETTER_PREFIX_LINE = re.compile(r"^[ \t>#-]*[(\[]?([A-Z])[)\].:]\s+(.+?)[ \t]*$", re.MULTILINE)
_LETTER_DASH = re.compile(r"^\s*\(?([A-Z])\)?\s*[—–-]\s+\S")
_DELIMITED_LETTER = re.compile(r"\s*[:\-]?\s*(?:\([A-Z]\)|[A-Z][.):,\]](?:\s|$)|[A-Z]\s*$)")
_NEGATED_START = re.compile(r"\s*(?:not\b|n't\b|never\b|no\s+longer\b)", re.IGNORECASE)
_RELATIVE = re.compile(r",\s*which(?=\s)", re.IGNORECASE)  # ", which is option D"
_TURNS = re.compile(r"\W*(?:but|however|actually|in\s+fact|no)\b", re.IGNORECASE)


def _aside_relative(text: str, start: int, end: int) -> bool:
    """Whether ", which is (option) D" between ``start`` and ``end`` gives a letter to what its
    clause describes ("A guitar has six, which is option D"), not in a sentence that turns
    against what came before ("But it scores 3, which is option C")."""
    relative = _RELATIVE.search(text, max(0, start - 2), end)
    if relative is None:
        return False
    opening = max(text.rfind(". ", 0, relative.start()), text.rfind("\n", 0, relative.start()))
    return _TURNS.match(text, opening + 1) is None


_SENTENCE_END = re.compile(r"[.!?;](?:\s|$)|\n")


def _letter_at(text: str, pos: int, options: Options, strict: bool) -> tuple[object, str] | None:
    """The option of a letter stated at ``pos``; SEVERAL/HEDGE when a list of letters is."""
    match = _LETTER_AT.match(text, pos)
    if match is None:
        return None
    letter = match.group("letter")
    wrapped = match.group("open") or match.group("close")
    after = text[match.end() : match.end() + 1]
    # a lone lower-case letter is usually the article "a" or a word's first letter, and
    # "it's A" / "that's I" can be words too: trust only a wrapped or closed-off letter
    doubtful = letter.islower() or (strict and letter in "AI")
    index = LETTERS.index(letter.upper())
    if index >= options.count:
        return None
    if doubtful and not wrapped and after not in ("", "\n", ".", ",", ";", ":", "!"):
        # "it's A or B": the capital goes on into a list of letters, not a word "A"
        listed = MORE_LETTERS.match(text, match.end()) if letter.isupper() else None
        if listed is None or not listed.group("letter").isupper() or not listed.group("join"):
            return None
    past = past_own_text(text, match.end(), options, index)
    if letter.isupper() and past == match.end() and _LETTER_RUN.match(text, match.end()):
        # "The answer is A B C D.": every letter in a row, none chosen (not "C) K", where
        # the "K" is option C's own text)
        return None, SEVERAL
    more = MORE_LETTERS.match(text, past)
    if more is None and past > match.end():
        more = NEXT_LISTED.match(text, past)  # "(A) Monaco (B) Vatican City": a list of two
    if more and (more.group("letter").isupper() == letter.isupper()):
        other = LETTERS.index(more.group("letter").upper())
        if other != index and other < options.count:
            kind = HEDGE if "or" in more.group("join").lower() else SEVERAL
            return None, kind
    return index, "answer_statement"


def _statement(text: str, pos: int, options: Options, strict: bool) -> tuple[object, str] | None:
    """What the answer statement starting at ``pos`` names: (index or None, method)."""
    line_end = text.find("\n", pos)
    span = text[pos : line_end if line_end >= 0 else len(text)][:300]
    if _NEGATED_START.match(span):
        return None  # "the answer is not A"
    letter = _letter_at(text, pos, options, strict)
    if letter is not None and _DELIMITED_LETTER.match(span):
        return letter  # "A. 1987": the letter, not the article "a"
    index = options.at_start(span)
    if index is not None:
        first = _SENTENCE_END.search(span)
        clause = span[: first.start()] if first else span
        if any(i == index and negated(clause, start, end)
               for start, end, i in options.mentions(clause)[:1]):
            return None  # "so none of the above is wrong": stated only to be denied
        if len(options.named(clause)) > 1 and (hedged(clause) or re.search(r"\bor\b", clause)):
            return None, HEDGE  # "it's merge sort or maybe insertion sort"
        said = options.mentions(clause)
        if len(said) > 1 and said[1][2] != index and _JOINED_TEXTS.fullmatch(
                clause[said[0][1] : said[1][0]]):
            return None, SEVERAL  # "the answer is break and continue": two options, not one
        return index, "option_text"
    if letter is not None:
        return letter
    index = options.ordinal_at_start(span)
    if index is not None:
        return index, "ordinal"
    index = options.name_at_start(span)
    if index is not None:
        return index, "option_text"  # "It was van Gogh.": a name that only one option holds
    end = _SENTENCE_END.search(span)
    index = options.leading(span[: end.start()] if end else span)
    if index is not None:
        return index, "option_shortened"  # "the Inca Empire" for "The Inca Empire under ..."
    if strict:
        return None
    first = _SENTENCE_END.search(span)
    clause = span[: first.start()] if first else span
    named = options.named(clause)
    if len(named) == 1:
        return named.pop(), "option_text"
    if len(named) > 1:
        return None, HEDGE if hedged(clause) or " or " in clause else SEVERAL
    return None


def _wavers_after(text: str, pos: int, options: Options, stated: object) -> bool:
    """Whether the sentence, after stating ``stated``, entertains another option too
    ("The answer is probably B, but it might be C")."""
    if not isinstance(stated, int):
        return False
    start = alternative_after(text, pos)
    if start is None:
        return False
    letter = _letter_at(text, start, options, strict=False)
    other = letter[0] if letter is not None else options.at_start(text[start : start + 200])
    if other is None:
        other = options.ordinal_at_start(text[start : start + 200])
    return isinstance(other, int) and other != stated


def _explicit(raw: str, text: str, options: Options, truncated: bool) -> list[Candidate]:
    """Statements that say outright which option is the answer (in a response cut off by
    the token limit, only those that name the answer in so many words)."""
    found: list[Candidate] = []

    def add(start: int, result: tuple[object, str] | None, method: str | None = None) -> None:
        if result is not None:
            value, how = result
            kind = how if value is None else (method or how)
            found.append(Candidate(start, value, kind, STRONG))

    for start, content in tagged(text):
        add(start, _content(content, options), "answer_tag")
    for start, value in json_answers(raw):
        if isinstance(value, list):
            found.append(Candidate(start, None, SEVERAL, STRONG))
        else:
            add(start, _content(str(value), options), "json")
    for match in _ANSWER_OBJECT.finditer(raw):
        # {"answer": {"letter": "B", "text": ...}}: the letter the answer object holds
        add(match.start(), _content(match.group(1), options), "json")
    previous: tuple[int, object] | None = None  # the last box's end and option
    conditioned: dict[int, int] = {}  # option -> the end of a box a condition follows
    if_said = False  # whether one of those conditions is an "if" ("for", "with" alone: no)
    for start, end, content in boxed(text):
        stated = _content(content, options)
        index = stated[0] if stated else None
        if isinstance(index, int) and (condition := _BOX_CONDITION.match(text, end)):
            conditioned[index] = end
            if_said = if_said or condition.group(1) is not None
        if index is not None and previous and previous[1] not in (None, index) and side_by_side(
                text[previous[0] : start]):
            stated = None, HEDGE  # "\boxed{A} \boxed{B}": two answers offered, neither chosen
        add(start, stated, "boxed")
        previous = end, index
    if len(conditioned) > 1 and if_said:
        # "\boxed{B} if the ramp is frictionless, but \boxed{E} if ...": an answer for each
        # case, none for the question asked
        found.append(Candidate(max(conditioned.values()), None, HEDGE, STRONG))
    anchors = ((_ANCHOR, False),) if truncated else ((_ANCHOR, False), (_STRICT_ANCHOR, True))
    for regex, strict in anchors:
        for match in regex.finditer(text):
            if _WORKING.match(match.group(0)) and _CONCLUDED_LATER.match(text, match.end()):
                continue  # "leaving {2, 3}, so the set has 2 elements": a step, then the answer
            if strict and _MODAL_AFTER.match(text, match.end()):
                continue  # "so 306 (D) would be closer for a baby": a consequence, not a choice
            if bracketed_aside(text, match.start()):
                continue  # "(Macbeth is set in Scotland, which is option D.)": an aside
            stated = _statement(text, match.end(), options, strict)
            if hypothetical(text, match.start()):
                if stated is not None and stated[0] is None:
                    # "depending on what it means, the answer is B or E": two answers, none
                    add(match.start(), (None, HEDGE))
                continue
            if stated is not None and _wavers_after(text, match.end(), options, stated[0]):
                stated = None, HEDGE
            if strict and stated is not None and _aside_relative(
                    text, match.start(), match.start() + 6):
                # "A guitar has six, which is option D": a letter given to what the clause
                # describes, below an answer stated outright
                found.append(Candidate(match.start(), stated[0], stated[1], MEDIUM))
                continue
            add(match.start(), stated)
    for start, index in options.references(text):
        found.append(Candidate(start, index, "ordinal", STRONG))
    found += several_letters(text, options)
    for match in _IS_THE_CHOICE.finditer(text):
        # "helium is the safe choice": the option the clause before it names
        clause = _CLAUSE_BREAK.split(text[max(0, match.start() - 120) : match.start()])[-1]
        named = options.named(clause)
        if len(named) == 1 and not hypothetical(text, match.start()):
            found.append(Candidate(match.start(), named.pop(), "option_text", STRONG))
    found += _covering_option(text, options)
    opening = _TEXT_THEN_LETTER.search(text, 0, 200)
    if opening and not _SENTENCE_END.search(text.lstrip(), 0, len(text.lstrip()) - len(
            text[opening.start() :])):
        # only the response's opening sentence: later, "Linear search would be O(n), option
        # C." names a distractor with its letter
        index = LETTERS.index(opening.group(1))
        clause = _CLAUSE_BREAK.split(text[: opening.start()])[-1]
        if index < options.count and options.named(clause) == {index} and not hypothetical(
                text, opening.start()):
            found.append(Candidate(opening.start(), index, "text_and_letter", STRONG))
    lowered = text.lower()
    for match in _ONLY_LETTER.finditer(text) if "only" in lowered or "alone" in lowered or (
            "just" in lowered) else ():
        letter = next(g for g in match.group("paren", "letter", "paren2", "letter2") if g)
        index = LETTERS.index(letter)
        if index < options.count and not hypothetical(text, match.start()):
            found.append(Candidate(match.start(), index, "only_letter_holds", STRONG))
    for match in _IS_THE_ONE.finditer(text) if " one " in lowered else ():
        clause = _CLAUSE_BREAK.split(text[max(0, match.start() - 120) : match.start()])[-1]
        named = options.named(clause)
        if len(named) == 1 and not hypothetical(text, match.start()):
            found.append(Candidate(match.start(), named.pop(), "option_text", STRONG))
    for match in _LETTER_IS_CORRECT.finditer(text):
        index = LETTERS.index((match.group("paren") or match.group("letter")).upper())
        if index < options.count and not hypothetical(text, match.start()) and not conceded(
            text, match.start()
        ):
            found.append(Candidate(match.start(), index, "letter_is_correct", STRONG))
    for match in (*_IS_LETTER.finditer(text), *_MAKES_LETTER.finditer(text)):
        index = LETTERS.index(match.group("paren") or match.group("letter"))
        if index < options.count and not hypothetical(text, match.start()):
            relative = _aside_relative(text, max(0, match.start() - 8), match.start() + 1)
            found.append(Candidate(match.start(), index, "answer_statement",
                                   MEDIUM if relative else STRONG))
    for regex in (_LETTER_NOT_LETTER, _CORRECTED_TO):
        for match in regex.finditer(text):
            index = LETTERS.index(match.group(1))
            if index < options.count:
                found.append(Candidate(match.start(1), index, "answer_statement", STRONG))
    closing = _CLOSING_LETTER.search(text.rstrip())
    if closing and LETTERS.index(closing.group(1)) < options.count and not (
            truncated and walk_cut(text, closing.start(1))):
        found.append(Candidate(closing.start(1), LETTERS.index(closing.group(1)), "bare", STRONG))
    for match in _ARROW_LETTER.finditer(text):
        if LETTERS.index(match.group(1)) < options.count:
            found.append(Candidate(match.start(1), LETTERS.index(match.group(1)), "bare", STRONG))
    bare = list(_BARE_LINE.finditer(text))
    for match in bare:
        index = LETTERS.index(match.group(1).upper())
        if index < options.count and not (truncated and walk_cut(text, match.start(1))):
            found.append(Candidate(match.start(1), index, "bare", STRONG))
    if len({m.group(1).upper() for m in bare}) > 1 and not _BARE_LINE.sub("", text).strip():
        found.append(Candidate(bare[-1].end(), None, SEVERAL, STRONG))  # "B\nC": two answers
    for match in _LETTER_LIST_LINE.finditer(text):
        kind = HEDGE if re.search(r"\bor\b|/", match.group(0)) else SEVERAL
        found.append(Candidate(match.start(), None, kind, STRONG))
    listing = _listing(text)
    if listing:
        found += _marked_option(raw, text, options)
    for match in _COLON_LETTER.finditer(text):
        index = LETTERS.index(match.group(1))
        if index < options.count and not listing:
            found.append(Candidate(match.start(1), index, "answer_statement", STRONG))
    # a truncated walk through the options, cut on its next heading: its items are no answer
    walked = truncated and bool(bare) and walk_cut(text, bare[-1].start(1))
    for match in _LETTER_PREFIX_LINE.finditer(text):
        # "B. Paris" alone on a line, the option's own text: unless the options are listed
        letter_index = LETTERS.index(match.group(1))
        if (
            not listing
            and not walked
            and letter_index < options.count
            and options.at_start(match.group(2)) == letter_index
        ):
            found.append(Candidate(match.start(), letter_index, "letter_and_text", STRONG))
    found += _verdict_rows(raw, options)
    found += _structured_letters(raw, options)
    ticked: dict[int, int] = {}  # option -> where its line, marked ✓ in a list, starts
    for start, line in _lines(text):
        if line.lstrip().startswith("|"):
            continue  # a table's verdicts are read row by row (_verdict_rows)
        if _LETTER_PREFIX_LINE.match(line) or UNMARKED.search(line):
            continue  # "A. 2": the letter states the answer; "- Law ✗" is ruled out
        marked = MARKED.search(line)
        restated = options.at_start(line)
        if marked and restated is not None:
            ticked.setdefault(restated, start)  # "- Third law ✓"
            continue
        if restated is not None and options.phrases[restated] == phrase_of(line):
            if truncated and _LIST_ITEM.match(line) and start + len(line) >= len(text.rstrip()):
                continue  # "- Vinegar" where the walk through the options was cut off
            found.append(Candidate(start, restated, "bare", STRONG))  # the option's text alone
        elif "." in line or "!" in line:
            found += _bare_sentences(start, line, options)
            shortened = _ABBREVIATION.fullmatch(line)  # "Feb." alone for "February"
            if shortened:
                prefix = shortened.group(1).lower()
                owners = [i for i, text in enumerate(options.texts)
                          if text.lower().startswith(prefix) and len(text) > len(prefix)]
                if len(owners) == 1:
                    found.append(Candidate(start, owners[0], "bare", STRONG))
    if len(ticked) == 1:
        (index, start), = ticked.items()
        found.append(Candidate(start, index, "marked", STRONG))
    boxed_list = _ticked_box(raw, options)
    if boxed_list:
        # a task list's unticked items are its other options, not answers stated bare
        found = [c for c in found if c.method != "bare"] + boxed_list
    return found


_OPTION_SENTENCE = re.compile(r"(?:^|(?<=[.!]\s))([^.!?\n]{1,80})[.!](?=\s|$)")
_STEP_NUMBER = re.compile(r"\s*\d{1,2}\.")
_AFTER_LETTER = re.compile(r"(?:^|\W)([A-Z])\.\s$")


_LIST_ITEM = re.compile(r"\s*(?:[-*•]|\d+[.)])\s|\s")  # "* " is an indent after ``clean``


def _bare_sentences(start: int, line: str, options: Options) -> list[Candidate]:
    """Sentences that are an option's text and nothing more ("Helium. Scratch that: ...
    Hydrogen."): as plain as a line holding only the option."""
    found = []
    for match in _OPTION_SENTENCE.finditer(line):
        letter = _AFTER_LETTER.search(line, 0, match.start(1))
        if letter and LETTERS.index(letter.group(1)) < options.count:
            continue  # the "1987" of "The answer is A. 1987.": the letter states the answer
        if _STEP_NUMBER.fullmatch(line, 0, match.end()) and line[match.end() :].strip():
            continue  # "1. `range(3)` yields ...": the number of a step, not a sentence
        restated = options.exact(match.group(1))
        if restated is not None:
            found.append(Candidate(start + match.start(1), restated, "bare", STRONG))
    return found


_LINE = re.compile(r"[^\n]+")


def _lines(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(0)) for m in _LINE.finditer(text) if m.group(0).strip()]




def _marked_option(raw: str, text: str, options: Options) -> list[Candidate]:
    """The one listed option marked as the answer ("- B. Tanzania ✓" among "✗"s)."""
    marked = [
        m for m in _LETTER_PREFIX_LINE.finditer(text)
        if (MARKED.search(m.group(2)) or _CHECKED.match(raw, m.start()))
        and not UNMARKED.search(m.group(2))
    ]
    if len(marked) != 1:
        return []
    index = LETTERS.index(marked[0].group(1))
    return [Candidate(marked[0].start(), index, "marked", STRONG)] if index < options.count else []


_LETTER_TAG = re.compile(
    r"<([a-z_]*(?:letter|choice|answer|option|selection|pick)[a-z_]*)>\s*\(?([A-Za-z])\)?\s*</\1>",
    re.IGNORECASE,
)
_LETTER_FIELD = re.compile(
    r"""["']([a-z_]*?)["']\s*:\s*\{[^{}]*?["'](?:[a-z_]*_)?(?:letter|option|choice)["']\s*:\s*"""
    r"""["']\s*([A-Za-z])\s*["']""",
    re.IGNORECASE,
)
# a line of configuration or YAML whose key is about the pick: 'letter = "E"', "answer: C"
_KEY_LETTER = re.compile(
    r"""^[ \t]*["']?((?i:[a-z_]*(?:letter|choice|answer|option|selected|selection|pick)"""
    r"""[a-z_]*))["']?[ \t]*[=:][ \t]*["']?\(?([A-Z])\)?["']?[ \t]*,?[ \t]*$""",
    re.MULTILINE,
)
_SET_ASIDE_KEY = re.compile(
    r"reject|exclud|wrong|incorrect|distract|eliminat|alternat|other|ruled|discard|avoid|^not_",
    re.IGNORECASE,
)
_LONE_LETTER = re.compile(r"\(?([A-Z])[).]?\s*")
_BOX_LINE = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?\[([ xX])\][ \t]+(.+)$", re.MULTILINE)


def _structured_letters(raw: str, options: Options) -> list[Candidate]:
    """A letter the response's structure names as its pick: a tag about the letter or the
    choice (``<final_choice>D</final_choice>``, ``<letter>B</letter>``), or a nested object's
    letter field ({"verdict": {"letter": "C", ...}}) unless its key sets it aside
    ("rejected"); two different letters so named commit to none."""
    found: list[tuple[int, int]] = []
    if "<" in raw:
        for match in _LETTER_TAG.finditer(raw):
            found.append((match.start(), LETTERS.index(match.group(2).upper())))
    if "{" in raw:
        for match in _LETTER_FIELD.finditer(raw):
            if not _SET_ASIDE_KEY.search(match.group(1)):
                found.append((match.start(), LETTERS.index(match.group(2).upper())))
    if "=" in raw or "```" in raw:
        for match in _KEY_LETTER.finditer(raw):
            if not _SET_ASIDE_KEY.search(match.group(1)):
                found.append((match.start(), LETTERS.index(match.group(2))))
    found = [(start, index) for start, index in found if index < options.count]
    if not found:
        return []
    if len({index for _, index in found}) > 1:
        return [Candidate(found[-1][0], None, SEVERAL, STRONG)]
    return [Candidate(found[-1][0], found[-1][1], "structured_letter", STRONG)]


def _ticked_box(raw: str, options: Options) -> list[Candidate]:
    """A task list with exactly one box ticked ("- [x] 404 Not Found" among "- [ ]"): the
    option the ticked line starts with; two ticked boxes commit to no single option."""
    if "[" not in raw:
        return []
    boxes = list(_BOX_LINE.finditer(raw))
    ticked = [m for m in boxes if m.group(1) != " "]
    if len(boxes) < 2 or not ticked or len(ticked) == len(boxes):
        return []
    # "- [x] B": a ticked letter alone is that option
    named = [LETTERS.index(letter.group(1)) if (letter := _LONE_LETTER.fullmatch(m.group(2)))
             and LETTERS.index(letter.group(1)) < options.count else options.at_start(m.group(2))
             for m in ticked]
    if len(ticked) > 1:
        return [Candidate(ticked[-1].start(), None, SEVERAL, STRONG)]
    if named[0] is None:
        return []
    return [Candidate(ticked[0].start(), named[0], "ticked_box", STRONG)]


def _verdict_rows(raw: str, options: Options) -> list[Candidate]:
    """A verdict table's ticked rows: one option ticked is the answer ("| B. Away from the
    normal | ✓ |" among "✗ — ..." rows); two or more ticked commit to no single one."""
    ticked: dict[int, int] = {}  # option -> where its row starts
    for start, cells, _ in table_rows(raw):
        filled = [cell for cell in cells if cell]
        if len(filled) < 2 or UNMARKED.search(" ".join(filled)):
            continue
        if not any(MARKED.search(cell) for cell in filled[1:]):
            continue
        result = _content(unbold(filled[0]), options)
        if result is not None and isinstance(result[0], int):
            ticked.setdefault(result[0], start)
    if not ticked:
        return []
    if len(ticked) > 1:
        return [Candidate(min(ticked.values()), None, SEVERAL, STRONG)]
    (index, start), = ticked.items()
    return [Candidate(start, index, "marked", STRONG)]


_CONTENT_LABEL = re.compile(r"^(?i:(?:final\s+)?answer\s*[:=]?\s*|option\s+|choice\s+)")


def _content(content: str, options: Options) -> tuple[object, str] | None:
    """What a tag, a JSON value or a box holds: a letter, a list of letters, or option text."""
    content = clean(content).strip().strip("\"'").strip()
    content = _CONTENT_LABEL.sub("", content)
    if not content:
        return None
    return _statement(content, 0, options, strict=False)


def _listing(text: str) -> bool:
    """Whether the response lists the options ("A) ... B) ...", one a line or several on
    one line) rather than choosing one."""
    if len({m.group(1) for m in _LETTER_PREFIX_LINE.finditer(text)}) > 1:
        return True
    return any(len({m.group(1) for m in _INLINE_OPTION.finditer(line.group(0))}) > 2
               for line in _OPTIONS_LINE.finditer(text))


def _walks_through(text: str, options: Options) -> bool:
    """Whether the response opens on bullets that each lead with a different option's text
    ("- Proton: +1", "- **Neutron**: 0"): a walk-through of the options, not a headline."""
    led = {options.at_start(clean(item.group(1))) for item in _BULLET.finditer(text)}
    return len(led - {None}) > 1


_BULLET = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+(.+)$", re.MULTILINE)
# "A) Apple B) Banana C) Grape": the options, all on one line that starts with the first
_OPTIONS_LINE = re.compile(r"^[ \t]*\(?A[).][ \t]+.*$", re.MULTILINE)
_INLINE_OPTION = re.compile(r"(?:^|(?<=\s))\(?([A-Z])[).]\s+\w")


_RECOMMEND = re.compile(r"^\W*(?:you\s+want|you\s+need|use|go\s+with|pick|choose)\s+",
                        re.IGNORECASE)


def _headline(raw: str, text: str, options: Options) -> list[Candidate]:
    """An answer-first response's opening line, and a table's one bold row."""
    found: list[Candidate] = []
    opening = first_line(raw)
    if opening is not None and not _listing(text) and not _walks_through(raw, options):
        start, line = opening
        bold = _BOLD_LINE.fullmatch(line)
        prefixed = _LETTER_PREFIX_LINE.match(text, start)
        # "**C — Neon.** It is ...": a bold lead that names a letter, whatever follows it
        lead = _BOLD_LEAD.match(line)
        dash = _LETTER_DASH.match(lead.group(2) if lead else line)
        result: tuple[object, str] | None = None
        if bold:
            result = _content(bold.group(2), options)
        elif prefixed:
            result = _letter_at(text, start, options, strict=False)
        elif dash:
            index = LETTERS.index(dash.group(1))
            result = (index, "headline") if index < options.count else None
        elif lettered := (_TEXT_LETTER.fullmatch(clean(lead.group(2))) if lead
                          else _OPENING_TEXT_LETTER.match(clean(line))):
            # "**Octopus (B)** — it has no backbone, unlike ...", "Neil Armstrong (C) stepped
            # onto ...": an opening of an option's text and its letter, agreeing, whatever
            # the sentences after it go on to name
            content = _content(lettered.group(1), options)
            index = LETTERS.index(lettered.group(2))
            result = (index, "headline") if content is not None and content[0] == index else None
        else:
            # "All of the above: ...", "Both A and B. ...": an option's whole text, then more
            # (not the first of a list: "WHERE, HAVING and LIMIT all ...")
            opening_clause = _CLAUSE_END.split(clean(line), maxsplit=1)[0]
            # "You want `HAVING`.", "Go with Neon.": a recommendation of one option's text
            recommended = _RECOMMEND.sub("", opening_clause)
            said = phrase_of(recommended)
            result = next(((i, "headline") for i, phrase in enumerate(options.phrases)
                           if said and phrase == said
                           and options.as_written(recommended, 0, len(recommended), i)), None)
            ending = _CLAUSE_END.search(clean(line))
            rest = clean(line)[ending.end() :] if ending and ending.group(0)[0] == "," else ""
            joined = _JOINED.match(rest)
            assert joined is not None  # the pattern matches the empty string too
            if result is not None and rest and options.at_start(rest[joined.end() :]) is not None:
                # "WHERE, HAVING and LIMIT ...": a list; "I and III only, or III only": a hedge
                result = (result[0], HEDGE) if joined.group(1) else None
        if result is not None and result[0] is not None:
            # "I and II only, or maybe all three": an opening that wavers is no headline
            wavers = result[1] == HEDGE or hedged(clean(line)) or refused(clean(line))
            found.append(Candidate(start, None if wavers else result[0],
                                   HEDGE if wavers else "headline", MEDIUM))
    rows = table_rows(raw)
    for start, value in answer_rows(rows):  # "| Answer | **B** |"
        result = _content(value, options)
        if result is not None and result[0] is not None:
            found.append(Candidate(start, result[0], "table", STRONG))
    marked = [(start, cells) for start, cells, bold in rows if bold]
    if len(marked) == 1 and len(rows) > 1:
        start, cells = marked[0]
        for cell in cells:
            if cell:
                result = _content(unbold(cell), options)
                if result is not None and result[0] is not None:
                    found.append(Candidate(start, result[0], "table", MEDIUM))
                break
    return found


_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_SENTENCE_START = re.compile(r"[.!?](?:\s|$)|\n")
# "roughly 71%" for "About 71%": the approximation an option's text opens with
_APPROXIMATELY = re.compile(
    r"^\s*(?:about|around|approximately|approx\.?|roughly|nearly|almost|~|≈)\s+", re.IGNORECASE)
_OPTION_PARTS = re.compile(r"^(?P<main>[^()]+?)\s+\((?P<other>[^()]+)\)\s*$")
# "... that's option D, the other fixed point": a value said to be which option it is
_IDENTIFIES = re.compile(r"(?i:that's|that\s+is|that\s+would\s+be|which\s+is|this\s+is)\b")
# "it's one of those two": two options named and neither chosen
_ONE_OF_TWO = re.compile(
    r"\b(?:it's|its|it\s+is|it\s+must\s+be|it\s+has\s+to\s+be)\s+one\s+of\s+(?:those|these|the)"
    r"\s+two\b(?!\s+\w+est\b)", re.IGNORECASE)


def _bold_alias(content: str, options: Options) -> int | None:
    """The one option a bold phrase opens with, read as a grader does: an option's text
    without its approximation ("71% of the surface" for "About 71%"), either of the two
    values an option gives ("74 °C" for "165 °F (74 °C)"), or the long option it restates."""
    said = phrase_of(content)
    owners = set()
    for index, text in enumerate(options.texts):
        parts = _OPTION_PARTS.match(text)
        for part in (parts.group("main"), parts.group("other")) if parts else (text,):
            for variant in {phrase_of(part), phrase_of(_APPROXIMATELY.sub("", part))}:
                if variant and said[: len(variant)] == variant:
                    owners.add(index)
    if len(owners) == 1:
        return owners.pop()
    return options.paraphrased(content) if not owners else None


def _bold_answer(raw: str, text: str, options: Options) -> tuple[int, int, int] | None:
    """The one option a response sets in bold amid its prose ("... is **whey**.", "— **B**.",
    "**B (1/4)**. Not C: ..."), with where its first and its last bold statement start: a
    grader reads the bold as what the response commits to, over the options its later
    sentences bring up by way of contrast. Bold that names several options ("**Coal** and
    **oil**", "**C or D**"), denies one ("not **Sydney**"), sits under a condition, or a
    response that lists or walks through the options: none."""
    if "**" not in raw and "__" not in raw:
        return None
    if _listing(text) or _walks_through(raw, options):
        return None
    chosen: set[int] = set()
    first = last = -1
    for match in _BOLD.finditer(raw):
        stated = _content(match.group(2), options)
        if stated is not None and stated[0] is None:
            return None  # "**C or D**": the bold itself names no single option
        index = stated[0] if stated is not None else _bold_alias(clean(match.group(2)), options)
        if not isinstance(index, int):
            continue
        starts = [m.end() for m in _SENTENCE_START.finditer(text, 0, match.start())]
        begin = starts[-1] if starts else 0
        sentence = text[begin : match.end() + 80]
        if negated(sentence, match.start() - begin, match.end() - begin) or hypothetical(
                text, match.start()):
            continue  # "It is not **Sydney**": a bold option denied
        chosen.add(index)
        first = match.start() if first < 0 else first
        last = match.start()
    if len(chosen) != 1:
        return None
    return chosen.pop(), first, last


def _with_bold(
    candidates: list[Candidate], bold: tuple[int, int, int] | None, text: str
) -> list[Candidate]:
    """The candidates and the bold answer, less the statements that only explain another
    option after it."""
    if bold is None:
        return candidates
    kept = [c for c in candidates if not _explains_other(c, bold, text)]
    return [*kept, Candidate(bold[2], bold[0], "bold_option", MEDIUM)]


def _explains_other(candidate: Candidate, bold: tuple[int, int, int], text: str) -> bool:
    """Whether a statement after the bold answer only says which option another value is
    ("five semitones, which is option B", "090° — that's option B, the reciprocal"), with no
    correction between them: a distractor explained, not a new answer."""
    index, first, _ = bold
    if candidate.strength != STRONG or not isinstance(candidate.value, int):
        return False
    if candidate.value == index or candidate.start <= first:
        return False
    if not _IDENTIFIES.match(text, candidate.start):
        return False
    corrected = corrected_after(text, first)
    return corrected is None or corrected > candidate.start


def _opens_clause(text: str, start: int) -> bool:
    """Whether a correction word at ``start`` opens its sentence or clause ("Actually, no",
    "— wait"), as one that takes back an answer does."""
    return _CLAUSE_OPENING.search(text, 0, start) is not None


_CLAUSE_OPENING = re.compile(r"(?:^|[.!?:;,(—–-])[\s*_>]*$")


_NO_OPTION_FITS = re.compile(
    r"\bnone\s+of\s+(?:the\s+|these\s+|those\s+)?(?:\w+\s+)?(?:options|choices|answers|"
    r"alternatives|answer\s+choices)\b(?:\s+(?:listed|given|offered|provided|above|here))?"
    r"\s+(?:is|are|seems?|looks?)\s+(?:\w+\s+)?(?:correct|right|true|accurate|valid)\b|"
    r"\bnone\s+of\s+(?:the\s+|these\s+|those\s+)?(?:\w+\s+)?(?:options|choices|answers)\s+"
    r"(?:fits?|matches?|works?|applies)\b",
    re.IGNORECASE,
)
_NOT_AMONG = re.compile(
    r"\b(?:isn't|is\s+not|aren't|are\s+not)\s+(?:among|one\s+of|in)\s+(?:the\s+)?(?:\w+\s+)?"
    r"(?:options|choices|answers|alternatives)\b",
    re.IGNORECASE,
)
_ASKS_BACK = re.compile(
    r"\b(?:could|can|would)\s+you\s+(?:please\s+)?(?:clarify|specify|confirm|tell\s+me|"
    r"let\s+me\s+know)\b[^?]{0,160}\?|"
    r"(?:^|[.!?]\s+)(?:please\s+)?(?:let\s+me\s+know|tell\s+me)\b[^.!?\n]{0,120}?"
    r"\b(?:and|then)\s+i(?:'ll|\s+will|\s+can|\s+could)\b",
    re.IGNORECASE | re.MULTILINE,
)


_DEPENDS = re.compile(r"\s*(?:well,?\s+)?(?:it|that|this)\s+depends\b", re.IGNORECASE)
_LETTER_IF = re.compile(r"\b([A-J])\b\)?\*{0,2}\s+(?:if|when|for|in\s+case)\b")


def _no_single_option(text: str, options: Options, chosen: Candidate | None) -> str | None:
    """``no_option_fits`` where the response says that none of the options is right ("none of
    the listed choices is correct") after the answer it seemed to give, or with none stated
    outright (and "eight isn't among the answers" where it gives none at all: a thing not
    among the options is often an aside beside the answer); ``asks_back`` where it asks the asker to
    clarify before it picks, with no answer stated outright. None otherwise."""
    lowered = text.lower()
    if "none" not in lowered and "you" not in lowered and "among" not in lowered and (
            "one of" not in lowered and "depend" not in lowered):
        return None
    if any(text_.lower().startswith(("none", "no ")) for text_ in options.texts):
        return None  # "None of the above" is an option: saying it is an answer
    fits = [m for m in _NO_OPTION_FITS.finditer(text) if not hypothetical(text, m.start())
            ] if "none" in lowered else []
    if fits and (chosen is None or chosen.strength < STRONG or chosen.start < fits[-1].start()):
        return "no_option_fits"
    if chosen is None and _NOT_AMONG.search(text):
        return "no_option_fits"  # "eight isn't among the answers" and nothing chosen
    depends = _DEPENDS.match(text) is not None
    if (chosen is None or chosen.strength < STRONG or depends) and _ASKS_BACK.search(text):
        return "asks_back"
    if depends and len({m.group(1) for m in _LETTER_IF.finditer(text)
                        if LETTERS.index(m.group(1)) < options.count}) > 1:
        return HEDGE  # "It depends ... A if the Sun counts, B if it doesn't": one per case
    return None


def extract_choice_method(
    text: str,
    choices: Sequence[Any],
    truncated: bool = False,
    options: Options | None = None,
    question: str | None = None,
) -> tuple[int | None, str]:
    """The chosen option's index (None: no single answer) and the method that decided it;
    the question, where given, helps tell which closing sentence answers it."""
    raw = squeeze(text)
    options = options or Options(choices, question)
    cleaned = clean(raw)
    candidates = _explicit(raw, cleaned, options, truncated)
    if not any(c.method == "json" for c in candidates):
        # {"capital": "Canberra"} answering "What is the capital ...?": the one such field
        # whose value is an option ({"planet": "Mars", "moons": 2} for "Which planet ...")
        fields = [(start, _content(value, options)) for start, value in asked_fields(raw, question)]
        named = [(start, stated[0]) for start, stated in fields if stated and stated[0] is not None]
        if len(named) == 1:
            candidates.append(Candidate(named[0][0], named[0][1], "json", STRONG))
    bold = None
    if not truncated:
        candidates += _headline(raw, cleaned, options)
        bold = _bold_answer(raw, cleaned, options)
        if not settled(_with_bold(candidates, bold, cleaned), cleaned):
            candidates += closing_mention(cleaned, options, question, _listing(cleaned))
            start, restated = restated_closing(cleaned, options, question)
            if isinstance(restated, int):
                candidates.append(Candidate(start, restated, RESTATED, WEAK))
            elif restated == HEDGE:  # the closing sentence wavers: what it names is no choice
                candidates = [c for c in candidates if c.strength > WEAK or c.start < start]
                candidates.append(Candidate(start, None, HEDGE, WEAK))
        candidates = _with_bold(candidates, bold, cleaned)
    chosen = decide(candidates, cleaned) if candidates else None
    if bold is not None and chosen is not None and chosen.strength == WEAK and not any(
            _opens_clause(cleaned, m.start()) for m in CORRECTION.finditer(cleaned, bold[2] + 1)):
        # "gives us **mohair** — angora fibre actually comes from the rabbit": an "actually"
        # inside a statement about another thing takes nothing back; the bold answer stands
        chosen = Candidate(bold[2], bold[0], "bold_option", MEDIUM)
    declined = _no_single_option(cleaned, options, chosen)
    if declined is not None:
        return None, declined
    if chosen is not None and chosen.strength == WEAK and _ONE_OF_TWO.search(cleaned):
        return None, HEDGE  # "english or mandarin, its one of those two": neither chosen
    if chosen is None or chosen.strength == WEAK and refused(cleaned):
        if truncated:
            return None, "truncated"
        return None, "refusal" if refused(cleaned) else "none"
    index = chosen.value if isinstance(chosen.value, int) else None
    return index, chosen.method


def option_letter(index: int | None) -> str | None:
    """The letter of a 0-based option index."""
    return None if index is None else LETTERS[index]


__all__ = ["HEDGE", "SEVERAL", "extract_choice_method", "negated", "option_letter"]
