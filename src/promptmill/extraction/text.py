"""Reading a response the way a grader does: the places where it states an answer.

Shared by multiple choice (``choice.py``) and math (``mathanswer.py``): ``\\boxed{}`` spans,
``<answer>`` tags, JSON answer keys, markdown tables and bold headlines, sentences, and the
words that make a statement hypothetical, a refusal, a hedge or a correction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

STRONG, MEDIUM, WEAK = 2, 1, 0
"""How much a candidate commits: an explicit statement; a headline or a table's marked row;
what the closing sentence happens to name. A weaker one counts only where no stronger one is
found, or after a correction that follows it."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One answer statement found in a response: where, what (None: no single answer), how."""

    start: int
    value: object  # a choice index, a math answer string, or None (several answers, a hedge)
    method: str
    strength: int


_WORD_IN_MATH = re.compile(
    r"(?:\\q?quad\s*)*\\(?:text|mathrm|textrm)\s*\{\s*(or|and)\s*\}(?:\s*\\q?quad)*"
)


LOWER_WORD = re.compile(r"[a-z]{3,}")  # a word of three letters or more, in lower-case text
OR_WORD = re.compile(r"\bor\b")
DIGIT = re.compile(r"\d")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n[ \n]*\n")


@lru_cache(maxsize=4096)
def compiled(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile`` for a pattern built from a question's or an option's words: there are
    thousands, more than ``re``'s own cache holds (512), which then compiles them over and
    over and evicts the fixed patterns with them."""
    return re.compile(pattern, flags)


def squeeze(text: str) -> str:
    """Whitespace runs cut short, so no pattern can backtrack over a long one; "\\quad
    \\text{or} \\quad" in math read as the word it sets ("x = 7 or x = -7")."""
    if "\\text" in text or "\\mathrm" in text:
        text = _WORD_IN_MATH.sub(r" \1 ", text)
    return _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", text))


def closing_braces(text: str) -> dict[int, int]:
    """For each ``{`` that is closed, the index just past its ``}``; one pass, so nested
    unclosed boxes cost linear time, not a scan to the end per box."""
    closes: dict[int, int] = {}
    opened: list[int] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # \{ and \} are literal braces, not grouping
            continue
        if char == "{":
            opened.append(i)
        elif char == "}" and opened:
            closes[opened.pop()] = i + 1
        i += 1
    return closes


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed\s+(-?[\w.]+)")


def boxed(text: str) -> list[tuple[int, int, str]]:
    """Every complete ``\\boxed{...}`` / ``\\fbox{...}`` as (start, end, content)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    closes = closing_braces(text)
    found = []
    for match in _BOXED.finditer(text):
        end = closes.get(match.end() - 1)
        if end is not None:  # an unclosed box: the response was cut inside it
            found.append((match.start(), end, text[match.end() : end - 1]))
    found += [(m.start(), m.end(), m.group(1)) for m in _BOXED_BARE.finditer(text)]
    outer: list[tuple[int, int, str]] = []
    for box in sorted(found):
        if outer and box[0] < outer[-1][1]:
            continue  # a box inside a box: the outer one states the answer
        outer.append(box)
    return outer


# "\boxed{7} or \boxed{3}", "\boxed{38} \boxed{46}", "\boxed{4} \quad \text{or} \quad
# \boxed{-4}": two boxes side by side, nothing between them but layout, "or" or punctuation
_LAYOUT = re.compile(r"\\(?:q?quad|[,;:! ])|\\(?:text|mathrm|textrm)\s*\{\s*(or)?\s*\}|\$+")
_OR_BETWEEN = re.compile(
    r"[\s)\]]*(?:\bor\b|,|;|/)?(?:\s+(?:possibly|maybe|perhaps|even))?[\s(\[]*", re.IGNORECASE
)


def side_by_side(between: str) -> bool:
    """Whether two boxes with ``between`` them offer two answers side by side: nothing
    between but spaces, layout, punctuation or "or" (no word that corrects or chooses)."""
    plain = _LAYOUT.sub(lambda m: f" {m.group(1) or ''} ", between)
    return _OR_BETWEEN.fullmatch(plain) is not None


_TAG = re.compile(
    r"<(answer|final[_ ]answer|final|ans|choice|result)>\s*(.*?)\s*</\1>",
    re.IGNORECASE | re.DOTALL,
)


def tagged(text: str) -> Iterator[tuple[int, str]]:
    """``<answer>...</answer>`` (and ``<final_answer>``) contents with their positions."""
    if "<" not in text:
        return
    for match in _TAG.finditer(text):
        yield match.start(), match.group(2)


_ANSWER_KEYS = (
    # {"solutions": [4, 5]}, {"roots": [-1, 3]}: the values of a question asking several
    "solutions|roots?|answers|values|results|"
    "answer|final_answer|finalanswer|final|answer_letter|answer_choice|choice|correct_answer|"
    "correct_option|correct_choice|option|selected|selection|result|solution|value|"
    # "selected_option", "chosenChoice": the option the response picked, by any such name
    "(?:selected|chosen|picked)[_ -]?(?:option|choice|answer|letter)|answer[_ -]?option"
)
_JSON_ANSWER = re.compile(
    rf"""(?P<q>["'])(?P<key>{_ANSWER_KEYS})(?P=q)\s*:\s*(?P<value>"(?:[^"\\\n]|\\.)*"|"""
    r"""'[^'\n]*'|\[[^\]\n]*\]|-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?|"""
    r"""true|false|null)""",
    re.IGNORECASE,
)


def json_answers(text: str) -> Iterator[tuple[int, object]]:
    """Values of answer-like keys in JSON (or Python-dict) text: a string, number or list."""
    if "{" not in text:
        return
    for match in _JSON_ANSWER.finditer(text):
        raw = match.group("value")
        value: object
        if raw.startswith("'"):
            value = raw[1:-1]
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw.strip("\"'")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = raw  # "1,000" or "0.50" as written, not as Python prints it
        if value is not None and not isinstance(value, bool):
            yield match.start(), value


_JSON_FIELD = re.compile(
    r"""["'](?P<key>[A-Za-z][\w ]{0,40})["']\s*:\s*(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|"""
    r"""-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?)"""
)


def asked_fields(
    text: str, question: str | None, heads: set[str] | frozenset[str] = frozenset()
) -> list[tuple[int, str]]:
    """In a JSON object without an answer key, the fields the question asks for
    (``{"probability": "1/6", "total": 36}`` answers "What is the probability ...?"):
    (where, value) each; of several, the one naming the asked quantity's head noun, if one
    does (``{"flour_grams": 900, "cookies": 36}`` for "How many grams of flour ...?")."""
    if not question or "{" not in text:
        return []
    asked = {word.rstrip("s") for word in LOWER_WORD.findall(question.lower())}
    found, headed = [], []
    for match in _JSON_FIELD.finditer(text):
        words = {w.rstrip("s") for w in LOWER_WORD.findall(match.group("key").lower())}
        if words and words <= asked:
            found.append((match.start(), match.group("value").strip("\"'")))
            if words & heads:
                headed.append(found[-1])
    return headed if len(found) > 1 and len(headed) == 1 else found


_TABLE_ROW = re.compile(r"^[ \t]*\|(.+)\|[ \t]*$", re.MULTILINE)
_SEPARATOR_CELL = re.compile(r"^\s*:?-{2,}:?\s*$")
_BOLD = re.compile(r"^\s*(\*\*|__)(.+?)\1\s*$")


def table_rows(text: str) -> list[tuple[int, list[str], bool]]:
    """Markdown table rows of the response's last table: (start, cells, marked in bold)."""
    if "|" not in text:
        return []
    rows: list[tuple[int, list[str], bool]] = []
    previous_end = -1
    for match in _TABLE_ROW.finditer(text):
        cells = [cell.strip() for cell in match.group(1).split("|")]
        if all(_SEPARATOR_CELL.match(cell) or not cell for cell in cells):
            previous_end = match.end()
            continue
        if previous_end >= 0 and text[previous_end : match.start()].strip():
            rows = []  # prose between: a new table starts, and the last one is what counts
        bold = any(_BOLD.match(cell) for cell in cells if cell)
        rows.append((match.start(), cells, bold))
        previous_end = match.end()
    return rows


_ANSWER_LABEL = re.compile(r"^(?:final\s+)?(?:answer|choice|result|solution)\b", re.IGNORECASE)


def answer_rows(rows: list[tuple[int, list[str], bool]]) -> list[tuple[int, str]]:
    """Rows labelled as the answer ("| Answer | **B** |"): (start, the value beside the label)."""
    found = []
    for start, cells, _ in rows:
        filled = [unbold(cell) for cell in cells if cell.strip()]
        if len(filled) == 2 and _ANSWER_LABEL.match(filled[0]):
            found.append((start, filled[1]))
    return found


def unbold(cell: str) -> str:
    """A cell or line without the ``**``/``__`` around it."""
    match = _BOLD.match(cell)
    return match.group(2).strip() if match else cell.strip()


def first_line(text: str) -> tuple[int, str] | None:
    """The first non-empty line (outside a ``<think>`` block, without a leading check mark or
    bullet) and where it starts."""
    start = 0
    think = _THINK.match(text)
    if think:
        start = think.end()
    match = _LINE.search(text, start)
    if match is None:
        return None
    line = match.group(0)
    lead = _LEADING_MARK.match(line)
    skip = lead.end() if lead else len(line) - len(line.lstrip())
    return match.start() + skip, line[skip:].strip()


_THINK = re.compile(r"\s*<think>.*?</think>", re.DOTALL)
_LINE = re.compile(r"[^\n]*\S[^\n]*")
_LEADING_MARK = re.compile(r"\s*(?:[✅✔✓☑→➡👉]\ufe0f?|[-•]\s)\s*")
# A listed option marked as the answer: "- B. Tanzania ✓", "C) Oxygen (correct)".
MARKED = re.compile(r"[✅✔✓☑]|\((?:correct|answer)\)|<-+\s*(?:correct|answer)|←", re.IGNORECASE)
UNMARKED = re.compile(r"[✗✘❌×]|\((?:incorrect|wrong)\)", re.IGNORECASE)


# "Let's check whether the answer is B" states a hypothesis, not an answer.
# "Many people think it's Sydney", "a common misconception is that it's the Sahara": what
# others say, reported, not what the response states
_REPORTED = (r"\b(?:people|students|folks|learners|many|some|others)\s+(?:often\s+|usually\s+|"
             r"commonly\s+|wrongly\s+|mistakenly\s+)?(?:think|believe|assume|say|guess|pick|"
             r"choose)\b|\bcommon\s+(?:mistake|misconception|error|trap|confusion|myth)\b")
_HYPOTHETICAL = re.compile(
    r"(?:\b(?:if|whether|suppose|supposing|assume|assuming|unless|would\s+have\s+been)\b"
    rf"|{_REPORTED})[^.!?\n]*$",
    re.IGNORECASE,
)



def hypothetical(text: str, start: int) -> bool:
    """Whether the statement at ``start`` sits in a clause that only entertains an answer."""
    return _HYPOTHETICAL.search(text[max(0, start - 120) : start]) is not None


# a bracket opening a sentence of its own, not yet closed: "(Macbeth, by contrast, is set in
# Scotland, which is option D.)" is an aside after the answer
_ASIDE_OPEN = re.compile(r"(?:^|[.!?:]\s+|\n\s*)\([^()]*$")


def bracketed_aside(text: str, start: int) -> bool:
    """Whether the statement at ``start`` sits in a sentence wholly in brackets (an aside)."""
    return _ASIDE_OPEN.search(text, max(0, start - 200), start) is not None


# "It's B, although in semiconductors (A) is true": a concession joined to the statement
# before it grants another case; what it names is not the answer
_CONCEDED = re.compile(
    r"(?:,|\s[—–-])\s*(?:although|though|even\s+though|whereas|while)\b[^.,;!?\n]*$",
    re.IGNORECASE,
)


def conceded(text: str, start: int) -> bool:
    """Whether the statement at ``start`` sits in a concession after another statement."""
    return _CONCEDED.search(text[max(0, start - 120) : start]) is not None


# "x = 3 or x = -3, I'd need to check the signs to know which one", "either is acceptable":
# two answers named, and the response says it has not chosen between them
UNDECIDED = re.compile(
    r"\b(?:not\s+(?:sure|certain)|unsure|uncertain|(?:would|'d|will|'ll)\s+(?:need|have)\s+to\b"
    r"[^.!?\n]{0,60}?\b(?:know|tell|decide|see))\s+which\b|\beither\s+(?:one\s+|of\s+them\s+|"
    r"answer\s+|value\s+)?(?:is|would\s+be)\s+(?:equally\s+)?(?:acceptable|fine|correct|right|"
    r"ok(?:ay)?|valid)\b",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(?:i(?:\s+(?:cannot|can't|can\s+not|am\s+unable\s+to|am\s+not\s+able\s+to|won't|"
    r"will\s+not|do\s+not\s+(?:know|remember|recall)|don't\s+(?:know|remember|recall)|"
    r"can't\s+(?:remember|recall))|'m\s+(?:unable|not\s+able)\s+to)"
    r"(?:\s+(?:determine|answer|solve|tell|say|decide|choose|pick|provide|help|give|take|"
    r"compute|calculate|be\s+certain|be\s+sure|handle|do|how|which|what|whether)|\s*[.!]|$)|"
    r"cannot\s+be\s+(?:determined|answered)|not\s+enough\s+information|"
    r"insufficient\s+information|impossible\s+to\s+(?:determine|tell|say)|"
    r"as\s+an\s+ai\b|i'm\s+sorry,?\s+(?:but\s+)?i\s+can|(?:hard|difficult)\s+to\s+(?:say|tell)|"
    r"i(?:'d|\s+would)\s+rather\s+not|"
    # "I'll leave it to you which applies": the choice is handed back, none is made
    r"leav(?:e|ing)\s+it\s+(?:up\s+)?to\s+you|(?:is|it's)\s+up\s+to\s+you|whichever\s+applies|"
    r"your\s+(?:call|choice|pick)\b|"
    # undecided: "I can't narrow it down", "either could be right", "Could be C, could be D",
    # "I would pick between A and B": two answers left open is no answer
    r"can(?:'t|not)\s+narrow\b|\beither\s+(?:one\s+|of\s+them\s+)?(?:could|might|may)\s+"
    r"(?:be\s+(?:right|correct)|work)|\b(?:could|might|may)\s+be\s+[^.,;!?\n]{1,30},\s*"
    r"(?:or\s+)?(?:it\s+)?(?:could|might|may)\s+be\b|\bmaybe\s+[^.,;!?\n]{1,30},\s*maybe\b|"
    r"\bi\b[^.!?\n]{0,20}?\b(?:choose|pick|decide)\s+between\b|"
    # "I'll leave both as candidates", "I'd keep both options open"
    r"\b(?:leav|keep)(?:e|s|ing)?\s+(?:them\s+)?(?:both|the\s+two)\b[^.!?\n]{0,30}?"
    r"\b(?:open|candidates?|possible|in\s+play)\b|"
    # "If you can tell me which definition you use, I can give you a precise answer": the
    # answer put off until the asker replies
    r"\bif\s+you\s+(?:can\s+|could\s+)?(?:tell|let)\s+me\b[^.!?\n]{0,80}?\bi(?:'ll|\s+can|"
    r"\s+will|\s+could)\s+(?:then\s+)?(?:give|tell|answer|pick|choose|confirm|work\s+out))|"
    + UNDECIDED.pattern,
    re.IGNORECASE,
)


def refused(text: str) -> bool:
    """Whether the response declines to answer or says it cannot tell."""
    return REFUSAL.search(text) is not None


# Words after which the response goes back on what it said before.
CORRECTION = re.compile(
    r"\b(?:wait|actually|correction|oops|on\s+second\s+thought|hmm+|hold\s+on\b|let\s+me\s+re-?(?:check|"
    r"do|calculate|compute|consider)|re-?checking|i\s+made\s+(?:an?\s+)?(?:error|mistake)|"
    r"that(?:'s|\s+is)\s+(?:wrong|incorrect|not\s+right)|but\s+that\s+(?:double[- ]?counts|"
    r"counts|is\s+wrong|ignores|forgets)|no\s*[—–-]|no,|no\s*:|no\.|scratch\s+that|"
    r"strike\s+that|never\s*mind|i\s+take\s+(?:it|that)\s+back|sorry,?\s+i\s+mean|i\s+meant|"
    r"just\s+kidding)",
    re.IGNORECASE,
)


def corrected_after(text: str, position: int) -> int | None:
    """Where the first correction after ``position`` starts, if the response makes one."""
    match = CORRECTION.search(text, position)
    return match.start() if match else None


HEDGE = re.compile(
    r"\b(?:either\b.{1,60}?\bor\b|not\s+sure|unsure|i\s+can(?:'t|not)\s+tell|"
    r"depending\s+on|depends\s+on|somewhere\s+between|could\s+be\s+.{1,40}?\bor\b|"
    r"or\s+maybe|or\s+perhaps|\b(?:arguably|possibly|maybe|perhaps|could\s+be)\s+both\b|"
    # "G and E both fit", "B could also be argued", "I'm about 50/50", "I'm torn"
    r"\bboth\s+(?:fit|work|apply|qualify|seem\s+right|look\s+right)\b|"
    r"\b(?:could|can|might)\s+(?:also\s+)?be\s+argued\b|\b50\s*/\s*50\b|\bi(?:'m|\s+am)\s+torn\b|"
    # "There are two reasonable answers here", "I'd give both": two answers offered as one
    r"\btwo\s+(?:reasonable|possible|valid|plausible|defensible|different)\s+answers\b|"
    r"\b(?:present|give|offer|accept)\s+both\b)",
    re.IGNORECASE,
)


# "probably B, but it might be C": a second answer entertained in the same sentence
_ALTERNATIVE = re.compile(
    r"\b(?:(?:but|or|though|although|yet|and)\b[^.!?\n]{0,40}?\b(?:might|could|may)\s+"
    r"(?:also\s+|well\s+|instead\s+|even\s+)?be|or\s+(?:possibly|maybe|perhaps))\s+",
    re.IGNORECASE,
)
_SENTENCE_ENDS = re.compile(r"[.!?](?:\s|$)|\n")


# "I'd say A, but D is possible too": the second answer named before it is allowed for
_ALLOWED_TOO = re.compile(
    r"\b(?:but|though|although|yet)\s+(?=[^.!?\n,;]{1,40}?\s+(?:is|seems|looks|sounds)\s+"
    r"(?:also\s+|equally\s+)?(?:possible|plausible|defensible|likely|reasonable)\s+"
    r"(?:too|as\s+well)\b)", re.IGNORECASE)


def alternative_after(text: str, position: int) -> int | None:
    """Where a second answer, entertained after the statement at ``position`` in the same
    sentence, starts ("The answer is probably B, but it might be C", "but D is possible too")."""
    end = _SENTENCE_ENDS.search(text, position)
    stop = end.start() if end else len(text)
    match = _ALTERNATIVE.search(text, position, stop) or _ALLOWED_TOO.search(text, position, stop)
    return match.end() if match else None


def hedged(text: str) -> bool:
    """Whether a statement wavers between answers ("either ... or", "not sure", "depends")."""
    return HEDGE.search(text) is not None


_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?])(?<!\be\.g\.)(?<!\bi\.e\.)[\"')\]]*\s+(?=[\"'(\[$\\A-Z0-9−α-ωΑ-Ω√-])"
    r"|\n+|;\s+"
)


def sentences(text: str) -> list[tuple[int, str]]:
    """The response split into sentences (and lines), with where each starts."""
    return list(_sentences(text))


@lru_cache(maxsize=64)  # several rules split the same response in turn
def _sentences(text: str) -> tuple[tuple[int, str], ...]:
    found = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        piece = text[start : match.start()]
        if piece.strip():
            found.append((start + len(piece) - len(piece.lstrip()), piece.strip()))
        start = match.end()
    piece = text[start:]
    if piece.strip():
        found.append((start + len(piece) - len(piece.lstrip()), piece.strip()))
    return tuple(found)


# Where a closing sentence's conclusion starts ("..., so x = 3").
CONCLUSION = re.compile(
    r"(?:,|;|:)\s*(?:and\s+)?(?:so|therefore|thus|hence|then|which\s+means)\b|,\s+and\s+(?=[\w\\$(-])"
    # "11 × 10 = 110, minus 11 gives 99": a further step of the working
    r"|,\s*(?=(?:minus|plus|times|less|divided\s+by|multiplied\s+by|take\s+away|add(?:ing)?|"
    r"subtract(?:ing)?)\b[^,.;]*(?:\b(?:gives?|makes?|leaves?|yields?|is|equals?)\b|:))"
    r"|,\s*(?=(?:giving|yielding|leaving|making)\s)"  # "x² = 16, giving {-4, 4}": its result
    r"|\b(?:so|therefore|thus|hence)\s*,|,\s*but\s+(?:since|because|as|given)\b[^,]*,"
    r"|,\s*but\b"
    # "-5 < 2x + 1 < 5 → -3 < x < 2": each arrow leads to the next step of the working
    r"|\s*(?:→|⇒|⟹|⇔|⟺|\\Rightarrow|\\Leftrightarrow|\\iff|\\implies|\\to)\s*"
    r"|\s(?:so|therefore|thus|hence)\s+(?=[a-zA-Z]\s*(?:[=<>≤≥≠∈]|\\(?:le|ge|leq|geq|ne|neq|in)\b))",
    re.IGNORECASE,
)

HOW_MANY = re.compile(r"\bhow\s+many\s+([a-z]{3,})", re.IGNORECASE)
"""A question that counts, and the noun it counts ("How many edges ...?": edges)."""

# "x = -1 is extraneous", "x = -3 doesn't work": a statement that rejects the value it names
REJECTED = re.compile(
    r"\b(?:extraneous|spurious|rejected|discarded|introduced\s+by\s+squaring|excluded|invalid|not\s+valid|not\s+a\s+(?:solution|root)|"
    r"(?:does\s*n[o']t|do\s*n[o']t|won't|can't|cannot)\s+(?:work|check|satisfy|hold)|fails)\b",
    re.IGNORECASE,
)

# A sentence that checks, explains or comments on an answer already given ("Check: ...",
# "This is because ...", "(5, 12, 13 is a triple too.)"), rather than giving one.
CHECK = re.compile(
    r"^\W*(?:check(?:ing)?|test(?:ing)?|verif(?:y|ication|ying)|indeed|note|p\.?s\.?|sanity\s+check|"
    r"double[- ]check|because|as\s+a\s+check|for\s+(?:example|instance)|e\.g\.|"
    r"(?:this|that)(?:\s+is|'s)\s+because|(?:substituting|plugging)\s+"
    r"(?:(?:it|this|that|them)\s+)?back)\b|^\s*\([^()]*\)\W*$|✓|✔|\bchecks\s+out\b"
    r"|\b(?:both|all|each)\s+(?:\w+\s+)?(?:checks?|verify|verifies)\b",  # "Both roots check: ..."
    re.IGNORECASE,
)


def last_value(values: list[Candidate]) -> Candidate | None:
    """The last candidate by position (on a tie, the first found)."""
    best = None
    for candidate in values:
        if best is None or candidate.start > best.start:
            best = candidate
    return best


def _strongest(candidates: list[Candidate], strengths: tuple[int, ...]) -> Candidate | None:
    """The last candidate of the strongest of ``strengths`` that any candidate has."""
    for strength in strengths:
        chosen = last_value([c for c in candidates if c.strength == strength])
        if chosen is not None:
            return chosen
    return None


def settled(candidates: list[Candidate], text: str) -> bool:
    """Whether ``decide`` picks the same among ``candidates`` whatever WEAK candidates join
    them: its pick is stronger, outside a hypothetical, and no correction follows it. Then
    the rules that find only weak candidates (the closing sentences') need not run."""
    chosen = _strongest(candidates, (STRONG, MEDIUM))
    return chosen is not None and not hypothetical(text, chosen.start) and corrected_after(
        text, chosen.start + 1) is None


def decide(candidates: list[Candidate], text: str) -> Candidate | None:
    """The final commitment: the last strongest statement, unless a correction follows it
    and a weaker statement after the correction says something else (``settled`` follows
    these steps: a change here is one there)."""
    chosen = _strongest(candidates, (STRONG, MEDIUM, WEAK))
    if chosen is None:
        return None
    if hypothetical(text, chosen.start) and any(
        c.value != chosen.value and c.value is not None and hypothetical(text, c.start)
        for c in candidates
    ):  # "If ^ is a power: \boxed{17}. If it is XOR: ... \boxed{2}": no single answer
        return Candidate(chosen.start, "hedge", "hedge", chosen.strength)
    corrected = corrected_after(text, chosen.start + 1)
    if corrected is not None:
        later = last_value(
            [c for c in candidates if c.strength < chosen.strength and c.start >= corrected]
        )
        if later is not None:
            return later
    return chosen
