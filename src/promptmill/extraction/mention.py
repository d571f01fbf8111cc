"""Multiple choice: the option a response's closing sentences name, when nothing states one.

"Table sugar is sucrose." names option C; of sentences naming several options, a contrast
("..., but the capital is Ottawa"), a correction ("sorry, I mean ..."), a copula ("the air is
nitrogen, with oxygen at 21%"), the question's counted noun ("five lines and four spaces")
or the clause restating the question decides; one that wavers ("could be X or Y") or lists
options ("Sydney, Perth and Canberra") names none.
"""

from __future__ import annotations

import re
from functools import lru_cache

from promptmill.extraction.options import Options, negated, stem
from promptmill.extraction.text import (
    CORRECTION,
    HOW_MANY,
    LOWER_WORD,
    OR_WORD,
    WEAK,
    Candidate,
    bracketed_aside,
    hedged,
    sentences,
)

SEVERAL = "multiple"  # method of a statement that names more than one option
HEDGE = "hedge"  # method of a statement that wavers between options

_QUESTION = re.compile(r"\?\s*$")
# "sorry, I mean X", "make that X": the option after it replaces the one before
_REPLACED = re.compile(r"\b(?:i\s+mean|i\s+meant|make\s+that|correction|actually|or\s+rather)\b",
                       re.IGNORECASE)
# "only the second highest", "the runner-up": ranked below what the question asks for
_RANKED_BELOW = re.compile(
    r"\b(?:second|third|fourth|fifth|next)[- ](?:\w+est|most\s+\w+)\b|\brunners?[- ]up\b"
    r"|\b(?:is|was|are|were)\s+(?:only\s+)?the\s+(?:second|third|fourth|fifth|next)\b"
    r"(?!\s+(?:option|choice|one|answer|alternative)\b)"  # "is the third one": a place named
    # "Argentina is a distant second.", "Saturn comes second."
    r"|\b(?:is|was|are|were|comes?|came|ranks?|ranked)\s+(?:only\s+)?(?:an?\s+)?"
    r"(?:(?:distant|close)\s+)?(?:second|third|fourth|fifth)\s*(?:[.,;!]|$)"
    r"(?!\s+(?:option|choice|one|answer|alternative)\b)",
    re.IGNORECASE,
)
# an option's name, then "or" and another capitalised name (or the other way round)
_OR_NAME = re.compile(r"^[^,;:]*?\b[A-Z][\w'-]+\s+or\s+(?:maybe\s+|perhaps\s+)?[A-Z][\w'-]+")
_REMARK_DASH = re.compile(r"\s[—–]\s")
_TURN = re.compile(r"\bbut\b|\bhowever\b", re.IGNORECASE)
_WHEREAS = re.compile(r"\bwhereas\b", re.IGNORECASE)
_CIRCUMSTANCE = re.compile(
    r",\s*(?:(?:right|just|shortly|soon|long|well)\s+)?(?:after|before|until|once|unlike|"
    r"rather\s+than|instead\s+of|using|building\s+on|drawing\s+on|based\s+on|thanks\s+to)\b"
    # "stores elastic energy, which is converted into kinetic energy": what becomes of it
    # (not ", which works out to 12.5" or ", which is called the weber": what it is)
    r"|,\s*which\s+(?:(?:is|are|was|were|gets?|can\s+be)\s+)?(?:then\s+|later\s+)?"
    r"(?:(?!(?:call|nam|term|label)ed\b)[a-z]{3,}ed|turns?|changes?|converts?|transforms?)\b"
    r"|\s(?:when|whenever)\s", re.IGNORECASE)  # "Marble forms when limestone is heated"
_REASON = re.compile(r",?\s*\b(?:since|because|given\s+that)\b", re.IGNORECASE)
_TOGETHER = re.compile(r"\b(?:are|were)\s+(?:both|all)\b|\b(?:both|all)\s+(?:are|were)\b",
                       re.IGNORECASE)
_COPULA_BEFORE = re.compile(
    r"\b(?:is|are|was|were|be|known\s+as|(?<!\ba\s)(?<!\ban\s)(?<!\bthe\s)(?:called|named))"
    # "is mostly nitrogen", "are mainly tin": how much of it, still what it is
    r"\s+(?:(?:mostly|mainly|chiefly|largely|primarily|predominantly|principally)\s+)?"
    r"(?:the\s+|an?\s+)?$",  # not "a named function": an adjective, not a name given
    re.IGNORECASE,
)


def _single_option(
    sentence: str, options: Options, asked: frozenset[str] | set[str] = frozenset()
) -> tuple[set[int], bool]:
    """The options a sentence states (after its contrasts and copulas decide between the
    ones it names; ``asked``: the question's words) and whether it wavers between them."""
    named = options.named(sentence)
    if len(named) > 1 and _THAN.search(sentence):
        # "It is bigger than the Atlantic or the Indian combined": what follows "than" is
        # what the option is compared with
        named = options.named(_THAN.split(sentence, maxsplit=1)[0])
        if len(named) < 2:
            return named, False
    if len(named) > 1:
        # "sodium (Na) is the only one; magnesium is ...": "the only one" singles it out
        only = {index for _, end, index in options.mentions(sentence)
                if _ONLY_ONE.match(sentence, end)}
        if len(only) == 1:
            return only, False
    if len(named) > 1 and _alternatives(sentence, options):
        return named, True  # "is 212 or 273 degrees": no copula chooses between alternatives
    if named:
        # "Finnish (unlike Swedish, which is Indo-European) is ...": a clause in brackets is
        # an aside about another thing, not what the sentence states
        unbracketed = _BRACKETED_CLAUSE.sub(" ", sentence)
        named = options.named(unbracketed) if unbracketed != sentence else named
    if len(named) > 1:
        # "59 is the only prime (51 = 3·17, 57 = 3·19)": the brackets explain the others away
        outside = options.named(_BRACKETED.sub(" ", sentence))
        named = outside if len(outside) == 1 else named
    replaced = list(_REPLACED.finditer(sentence))
    if len(named) > 1 and replaced:
        # "John Adams — sorry, I mean George Washington": what the correction names decides
        # (up to a remark after a dash: "or rather Leonardo — Raphael only sketched a copy")
        after = _REMARK_DASH.split(sentence[replaced[-1].end() :], maxsplit=1)[0]
        named = options.named(after) or named
    dash = _REMARK_DASH.search(sentence)
    statement = sentence  # the part that states: not a remark after a dash
    if len(named) > 1 and dash and not CORRECTION.search(sentence, dash.end()):
        # "Only Iceland is surrounded by sea — Chile has a coast but ...": a remark after a
        # dash comments on the statement before it
        before = options.named(sentence[: dash.start()])
        if before:
            named, statement = before, sentence[: dash.start()]
    colon = _BREAKDOWN.search(sentence)
    if len(named) > 1 and colon:
        # "eleven players: ten outfield players and one goalkeeper": what follows the colon
        # breaks the count before it into parts
        before = options.named(sentence[: colon.start()])
        if len(before) == 1:
            named, statement = before, sentence[: colon.start()]
    if len(named) > 1:
        # "Toronto is the largest city, but the capital is Ottawa": the turn decides
        parts = _TURN.split(sentence)
        if len(parts) > 1:
            named = options.named(parts[-1]) or named
    if len(named) > 1:
        # "..., whereas ...": two things set side by side; the one restating the question
        # decides ("Basalt forms when lava cools, whereas marble needs heat" for "Which rock
        # forms from cooled lava?"), the latter when neither does more
        parts = _WHEREAS.split(sentence)
        if len(parts) > 1:
            kept = parts[0] if _overlap(parts[0], asked) > _overlap(parts[-1], asked) else parts[-1]
            named = options.named(kept) or named
    if len(named) > 1:
        # "You need HAVING, since WHERE runs first": a reason's options do not answer; nor do
        # a circumstance's ("in anaphase, right after the chromosomes line up at the metaphase
        # plate"), nor the means a participle adds (", using Tycho Brahe's observations")
        head = _CIRCUMSTANCE.split(_REASON.split(sentence, maxsplit=1)[0], maxsplit=1)[0]
        named = options.named(head) or named if head != sentence else named
    if len(named) > 1 and _TOGETHER.search(sentence):
        return named, False  # "Tuna and sharks are both fish": several, together
    if len(named) > 1 and hedged(sentence):
        return named, True  # "It could be Neil Armstrong or Buzz Aldrin": no copula decides
    if len(named) == 1 and _OR_NAME.search(statement):
        return named, True  # "São Paulo or Rio": another name offered beside the option
    if _enumerates(sentence, options, named):
        return named, False  # "the cities are Sydney, Perth and Canberra": a list, no choice
    if len(named) > 1:
        # "the air is nitrogen, with oxygen at 21%": what the sentence says something is
        mentions = options.mentions(sentence)
        # "founded by Babur and consolidated by Akbar": two agents, neither the one stated
        agents = sum(_BY_BEFORE.search(sentence[max(0, start - 30) : start]) is not None
                     for start, _, _ in mentions)
        stated = {
            index
            for start, end, index in mentions
            if (_COPULA_BEFORE.search(sentence[max(0, start - 24) : start])
                or agents == 1 and _AGENT_BEFORE.search(sentence[max(0, start - 40) : start]))
            and not negated(sentence, start, end)
        }
        if len(stated) == 1:
            named = stated
    wavers = len(named) > 1 and (hedged(sentence) or OR_WORD.search(sentence) is not None)
    if len(named) > 1 and not wavers:
        # "doubling f halves the wavelength": an option said word for word beats an inflection
        verbatim = {index for index in named if options.verbatim(index, sentence)}
        if len(verbatim) == 1:
            named = verbatim
    return named, wavers


# between two options' mentions: "or" offering the second as an alternative to the first
# ("Ag or Au", "the femur or the tibia"), not "or rather" correcting it
_ALTERNATIVE = re.compile(r"\W{0,3}(?:or|and/or)\s+(?!rather\b|more\s+precisely\b)"
                          r"(?:(?:maybe|perhaps|possibly)\s+)?(?:the\s+|an?\s+)?\W{0,3}$",
                          re.IGNORECASE)


def _alternatives(sentence: str, options: Options) -> bool:
    """Whether the sentence offers two different options as alternatives ("X or Y")."""
    mentions = sorted(options.mentions(sentence))
    dash = _REMARK_DASH.search(sentence)
    if dash and options.named(sentence[: dash.start()]):
        # "mostly Venus — with Mercury or Mars far smaller": alternatives in the remark after a
        # dash are about other things, the statement before it stands
        mentions = [mention for mention in mentions if mention[1] <= dash.start()]
    # "bigger than the Atlantic or the Indian combined": what it is compared with, not offered
    return any(first[2] != second[2] and _ALTERNATIVE.fullmatch(sentence[first[1]:second[0]])
               is not None and not _COMPARED.search(sentence, 0, first[0])
               for first, second in zip(mentions, mentions[1:], strict=False))


_BREAKDOWN = re.compile(r"(?<=\w):\s+(?=[^:]*\band\b)")
_ONLY_ONE = re.compile(r"\s*(?:\([^()]*\)\s*)?,?\s*(?:is|was|are|remains)\s+the\s+only\b",
                       re.IGNORECASE)
_THAN = re.compile(r"\bthan\b", re.IGNORECASE)
_COMPARED = re.compile(r"\b(?:than|as|like|unlike|between)\s+(?:\S+\s+){0,2}$", re.IGNORECASE)


_BRACKETED = re.compile(r"\([^()]*\)")
_BRACKETED_CLAUSE = re.compile(r"\([^()]*\b(?:is|are|was|were)\b[^()]*\)")
# "Bile is actually produced by the liver": the agent of a passive statement is what it states
_AGENT_BEFORE = re.compile(r"\b(?:is|are|was|were)\s+(?:[a-z]+\s+){0,2}?[a-z]+(?:ed|en)\s+by\s+"
                           r"(?:the\s+|an?\s+)?$", re.IGNORECASE)
_BY_BEFORE = re.compile(r"[a-z]+(?:ed|en)\s+by\s+(?:the\s+|an?\s+)?$", re.IGNORECASE)
_LIST_GAP = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|(?:and|or|&)\s+)\s*", re.IGNORECASE)


def _enumerates(sentence: str, options: Options, named: set[int]) -> bool:
    """Whether the options the sentence names all stand in one list of three or more
    ("Sydney, Melbourne, Perth and Canberra"), and no other mention says which one it is
    ("the middle value of 3, 7, 9 is 9" chooses): a list mentions options, chooses none."""
    if len(named) < 3:
        return False
    mentions = sorted((start, end, index) for start, end, index in options.mentions(sentence)
                      if index in named)
    first = 0
    for position in range(len(mentions) + 1):
        joined = 0 < position < len(mentions) and _LIST_GAP.fullmatch(
            sentence[mentions[position - 1][1] : mentions[position][0]]
        )
        if joined:
            continue
        if {index for _, _, index in mentions[first:position]} == named:
            outside = mentions[:first] + mentions[position:]
            return not any(_COPULA_BEFORE.search(sentence[max(0, start - 24) : start])
                           for start, _, _ in outside)
        first = position
    return False


_NEXT_WORDS = re.compile(r"\W*([a-z]{3,})(?:\s+([a-z]{3,}))?", re.IGNORECASE)


def _counting(sentence: str, options: Options, named: set[int], noun: str) -> set[int]:
    """Of the counts a sentence names ("five lines and four spaces"), the one of the noun
    the question counts ("How many lines ...?")."""
    kept = set()
    wanted = stem(noun.lower())
    for _, end, index in options.mentions(sentence):
        following = _NEXT_WORDS.match(sentence, end)  # "six faces", "six square faces"
        if index in named and following and wanted in {
            stem(word.lower()) for word in following.groups() if word
        }:
            kept.add(index)
    return kept if len(kept) == 1 else set()


_CLAUSE_OR_CONTRAST = re.compile(r"[,;:]|\s[—–-]\s|\b(?:while|whereas|but)\b")


def _by_question(sentence: str, options: Options, asked: set[str]) -> set[int]:
    """Of a sentence naming several options, the one named in the clause that restates the
    question ("Water moves up the xylem, while phloem carries sugars": the xylem)."""
    clauses = _CLAUSE_OR_CONTRAST.split(sentence)
    scored = []
    for clause in clauses:
        named = options.named(clause)
        if len(named) == 1:
            scored.append((len(asked & _content_words(clause)), named.pop()))
    scored.sort(reverse=True)
    if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        return {scored[0][1]}
    return set()


def closing_mention(
    text: str, options: Options, question: str | None, listing: bool
) -> list[Candidate]:
    """The one option the closing sentences name (and do not deny): "Table sugar is sucrose.".

    Of the last few sentences, those naming one option are candidates; where they name
    different ones, the sentence that restates the question ("the smallest country") wins,
    then the later one. A closing sentence that wavers between options ("B or C") is a hedge.
    """
    if listing:
        return []  # it ends by listing the options, not by choosing one
    found: list[tuple[int, int, int]] = []  # (start, index, overlap with the question)
    several = None
    conditional: set[int] = set()  # options named under a condition ("if ..."); -1: not
    what_ifs: set[int] = set()  # where those options are said
    asked = set(_question_words(question)) if question else set()
    ranked = question is None or _RANKED_BELOW.search(question) is None
    counted = HOW_MANY.search(question) if question else None
    closing_paragraph = False  # the last sentence, a paragraph of its own, names one option
    quoted = _denying_quotes(question)
    for start, sentence in reversed(sentences(text)[-4:]):
        if _QUESTION.search(sentence) or (ranked and _RANKED_BELOW.search(sentence)):
            continue  # a question, or "Mount Kenya is only the second highest"
        if _FOR_REFERENCE.match(sentence) or bracketed_aside(text, start + 1):
            continue  # "For context, 200 is OK, ...": the other options explained, no answer
        if quoted:  # "404 is Not Found." for "means 'Not Found'": the question's words, no denial
            sentence = quoted.sub(lambda m: "x" * len(m.group(0)), sentence)
        named, wavers = _single_option(sentence, options, asked)
        if len(named) == 1 and _in_leading_time_clause(sentence, options):
            named = set()  # "After the leaves have been tossed ..., they are heated": a step before
        cleft = _CLEFT.search(sentence)
        if cleft:  # "but it is the vacuole that maintains it": what the cleft singles out
            one = options.named(cleft.group(1))
            headed = one.pop() if len(one) == 1 else options.headed(cleft.group(1), asked)
            named = {headed} if headed is not None else named
        if wavers and not found:
            return [Candidate(start, None, HEDGE, WEAK)]
        if (len(named) > 2 and not cleft and len(sentences(text)) > 1
                and not _enumerates(sentence, options, named)):
            # "Nitrogen makes up 78%, argon 0.93%, and carbon dioxide 0.04%.": three options
            # or more, none singled out, walk through the options; they answer nothing
            continue
        if len(named) > 1 and asked:
            # "`def` defines a named function" for "Which keyword defines a function?": an
            # option made of the question's own words is the question echoed, not a choice
            named = {i for i in named if not set(options.phrases[i]) <= asked} or named
        if len(named) > 1 and counted:
            named = _counting(sentence, options, named, counted.group(1)) or named
        if len(named) > 1:  # what the sentence concludes, before what echoes the question
            named = _concluded(sentence, options) or named
        if len(named) > 1 and asked and not _enumerates(sentence, options, named):
            named = _by_question(sentence, options, asked) or named
        if len(named) == 1:
            index = named.pop()
            # where the option is said, so a correction earlier in the sentence precedes it
            spans = [(m_start, m_end) for m_start, m_end, i in options.mentions(sentence)
                     if i == index]
            said = [m_start for m_start, _ in spans]
            # "Florey and Chain later turned it into a drug": what came after, on equal terms
            # with the question, ranks below the sentence it follows
            rank = 2 * _overlap(sentence, asked) + (_FOLLOW_ON.search(sentence) is None)
            # "Resistance is measured in ohms." answers: the question's subject, then the
            # option; "The siemens is the unit of conductance." explains another option
            rank += bool(said) and _overlap(sentence[: said[0]], asked) > 0
            if any(_ONLY_ONE.match(sentence, m_end) for _, m_end in spans):
                rank += 100  # "Neon is the only one": singled out, whatever echoes the question
            found.append((start + (said[-1] if said else 0), index, rank))
            closing_paragraph = closing_paragraph or (
                len(found) == 1 and start + len(sentence) >= len(text.rstrip()) - 1
                and _PARAGRAPH_BREAK.search(text, 0, start) is not None
                and _concludes_with(sentence, spans))
            if _CONDITION.search(sentence):
                conditional.add(index)
                what_ifs.add(found[-1][0])
            elif len(found) == 1:
                conditional.add(-1)  # the closing statement is not under a condition
        elif named and several is None and not found:
            several = start
    if not found and several is None:
        # nothing named outright: the closing sentence's head noun of one option, if any
        closing = [(start, sentence) for start, sentence in sentences(text)[-1:]
                   if not _QUESTION.search(sentence)]
        headed = options.headed(closing[0][1], asked) if closing else None
        if headed is None:
            return []
        return [Candidate(closing[0][0], headed, "option_mention", WEAK)]
    if not found:
        return [Candidate(several, None, SEVERAL, WEAK)] if several is not None else []
    if -1 not in conditional and len(conditional) > 1:
        # "If it is window glass, then I and III (C); if it is molten, then all three (E)."
        return [Candidate(found[0][0], None, HEDGE, WEAK)]
    unconditional = [item for item in found if item[0] not in what_ifs]
    if len(unconditional) < len(found) and unconditional and len(conditional) == 1:
        # "If the question were about the lightest, the electron (B) would be the one.": what
        # another case would make the answer; the statement outside any condition answers
        found = unconditional
    if closing_paragraph:
        # "That describes a queue." alone after the working: the response's conclusion, however
        # much more an earlier sentence of the working echoes the question
        start, index, _ = found[0]
    else:
        start, index, _ = max(found, key=lambda item: (item[2], item[0]))
    return [Candidate(start, index, "option_mention", WEAK)]


# "After the leaves have been tossed and ..., ": a clause of what came before or after
_LEADING_TIME_CLAUSE = re.compile(r"\W*(?:after|before|once|until)\b[^,;:.!?]{3,}?,", re.IGNORECASE)


def _in_leading_time_clause(sentence: str, options: Options) -> bool:
    """Whether every option the sentence names stands in a leading clause of time ("After the
    leaves have been tossed and the edges have oxidised, they are heated ..."), the main
    clause naming none: the sentence states what happens then, not that option."""
    lead = _LEADING_TIME_CLAUSE.match(sentence)
    if lead is None:
        return False
    mentions = options.mentions(sentence)
    return bool(mentions) and all(end <= lead.end() for _, end, _ in mentions)


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*$")
# (also after the sentence's subject: "OPEC, by contrast, is a cartel of oil exporters.")
_FOR_REFERENCE = re.compile(r"\W*(?:[\w'() -]{1,40},\s*)?(?:for\s+(?:reference|context|"
                            r"comparison|completeness)|by\s+(?:contrast|comparison)|in\s+"
                            r"contrast)\b", re.IGNORECASE)
_FOLLOW_ON = re.compile(r"\b(?:later|subsequently|afterwards|went\s+on\s+to)\b", re.IGNORECASE)
# "it is the vacuole that ...", "it's Kepler who ...": a cleft singles out what it states
_CLEFT = re.compile(r"\bit\s*(?:is|was|'s)\s+(?:the\s+|an?\s+)?([\w' -]{2,40}?)\s+"
                    r"(?:that|which|who)\b", re.IGNORECASE)
_QUOTED = re.compile(r"['\"‘“]([^'\"‘’“”?]{2,40})['\"’”]")
_DENYING = re.compile(r"\b(?:not|no|never|none|nothing)\b|n't\b", re.IGNORECASE)


@lru_cache(maxsize=1024)  # a question's samples share it
def _denying_quotes(question: str | None) -> re.Pattern[str] | None:
    """The question's quoted phrases that hold a denial ("'Not Found'"), to find in a response
    as the question's words rather than as a denial of the option before them."""
    phrases = [m.group(1) for m in _QUOTED.finditer(question or "") if _DENYING.search(m.group(1))]
    if not phrases:
        return None
    return re.compile("|".join(re.escape(p) for p in phrases), re.IGNORECASE)


def _concludes_with(sentence: str, spans: list[tuple[int, int]]) -> bool:
    """Whether a closing sentence ends on the option it names, as a conclusion does ("That
    describes a queue.", "It was signed at Versailles."), rather than remarking on it as its
    subject ("Sydney is larger."), in the conditional ("(A) would be closer") or as a belief
    ("Many assume it is Sydney.")."""
    if not spans or _MODAL.search(sentence) or _BELIEF.search(sentence):
        return False
    opening = sentence[: spans[0][0]].strip(" \t*_>-")
    return bool(opening) and len(sentence[spans[-1][1] :].strip(" \t.!*_)")) <= 12
_MODAL = re.compile(r"\b(?:would|could|might|may)\b", re.IGNORECASE)
_BELIEF = re.compile(r"\b(?:assumes?|thinks?|believes?|supposes?|mistakes?|confuses?)\b",
                     re.IGNORECASE)


_CONDITION = re.compile(r"\bif\b", re.IGNORECASE)  # an option named under a condition
# where a sentence's working gives way to what it concludes: "..., so len returns 3", "...:
# none of the above", "..., which works out to 12.5", "... and the pH is 10"
_CONCLUDES = re.compile(
    r"(?:[,;:]\s*(?:and\s+)?|\s)(?:so|therefore|thus|hence)\b|(?<=\S):\s+|;\s+"
    r"|,\s*which\s+(?:is|works\s+out\s+to|comes\s+to|gives|equals|means)\b"
    r"|\s+and\s+(?=(?:the|its)\s+\w+\s+(?:is|are|was|were|returns?|gives?)\b)",
    re.IGNORECASE,
)


def _concluded(sentence: str, options: Options) -> set[int]:
    """Of a sentence naming several options in its working, the one option its last
    conclusion names (empty: none, or still several)."""
    if _TOGETHER.search(sentence) or hedged(sentence):
        return set()  # "either A or D; the joule and the newton are both ...": no conclusion
    ends = [m.end() for m in _CONCLUDES.finditer(sentence)]
    for end in reversed(ends):
        named = {index for start, _, index in options.mentions(sentence[end:])
                 if not negated(sentence, end + start, end + start)}
        if named:
            return named if len(named) == 1 else set()
    return set()


# "not keys", "they don't make antibodies": a question word the sentence denies
_DENIED_WORD = re.compile(
    # "has never been the capital": "been" and "the" come between the denial and what it denies
    r"\b(?:not|no|never|without|(?:do|does|did|is|are|can)n't)\s+"
    r"(?:(?:been|be|the|an?|its|their|ever|even|really|actually)\s+)*(?:\w+\s+)??([a-z]{4,})",
    re.IGNORECASE)


def _overlap(sentence: str, asked: set[str] | frozenset[str]) -> int:
    """How far a sentence restates the question (its words, or their initials: "ICs" for
    "integrated circuits"); a question word it denies ("a guitar has frets, not keys" for
    "Which instrument has 88 keys?") counts against it."""
    denied = {stem(word.lower()) for word in _DENIED_WORD.findall(sentence)} & asked
    initials = {word.lower() for word in _INITIALS.findall(sentence)}
    return len(asked & (_content_words(sentence) | initials)) - 2 * len(denied)


_INITIALS = re.compile(r"\b([A-Z]{2,4})s?\b")


@lru_cache(maxsize=1024)  # a question's samples share it: read the question once
def _question_words(question: str) -> frozenset[str]:
    """The question's longer words, stemmed, and its acronyms."""
    return frozenset(_content_words(question) | _acronyms(question))


def _acronyms(question: str) -> set[str]:
    """The initials of each run of two or three words in the question ("ic" for
    "integrated circuits"), to know the question again when a response abbreviates it."""
    words = LOWER_WORD.findall(question.lower())
    return {"".join(w[0] for w in words[i : i + n]) for n in (2, 3)
            for i in range(len(words) - n + 1)}


_LONGER_WORD = re.compile(r"[a-z]{4,}")


def _content_words(text: str) -> set[str]:
    """A sentence's longer words, stemmed: enough to tell which sentence restates the question."""
    return {stem(word) for word in _LONGER_WORD.findall(text.lower())} - _COMMON


_COMMON = frozenset({"which", "what", "that", "this", "these", "with", "from", "following",
                     "their", "there", "when", "than", "have", "does", "into", "about",
                     # prepositions say no more of the question than "into" does
                     "through", "between", "among", "during", "under", "over", "after", "before",
                     "within", "across", "along"})


__all__ = ["HEDGE", "SEVERAL", "closing_mention"]
