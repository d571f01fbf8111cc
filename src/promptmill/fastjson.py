"""JSON on the dispatch path: orjson where it reads and writes what json would, json otherwise.

orjson parses an answer in about a quarter of json's time and writes a body in a twentieth.
Where it would not do what json does, json does it: orjson refuses ``NaN``/``Infinity``
literals (some servers send them; json reads them), lone surrogates, and writing integers
past 64 bits; it writes infinite floats as ``null`` where json writes ``-Infinity``
(logprobs can be ``-inf``), so ``dumps_text`` is for values of strings, ints and None only,
such as plain answers. orjson reads an integer past 64 bits as a float: ``loads`` is for
documents whose numbers are counts and floats (answers, a planned chat or prompt), not for
a user's parameters (a seed); ``loads_exact`` reads those.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# json.dumps with options builds an encoder per call: one, built once.
_json_text = json.JSONEncoder(ensure_ascii=False).encode


def loads(data: bytes | str) -> Any:
    """The value of a JSON document; ValueError where it is not one."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # NaN, Infinity, an integer past 64 bits: json's reading


# orjson refuses NaN, Infinity and lone surrogates, and reads an integer past 64 bits as a
# float: a document orjson refuses, or whose value holds a float this large (perhaps such an
# integer), is read by json, as before.
_LARGE = 9.2e18


def inexact(value: Any) -> bool:
    """Whether orjson's reading of a document may differ from json's: a float of 2**63 or
    more in it (an integer past 64 bits, read as a float)."""
    kind = type(value)
    if kind is float:
        return not -_LARGE < value < _LARGE
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:
        kind = type(item)
        if kind is float:
            if not -_LARGE < item < _LARGE:
                return True
        elif (kind is dict or kind is list) and inexact(item):
            return True
    return False


def loads_exact(text: str | bytes) -> Any:
    """A JSON document's value exactly as ``json.loads`` reads it (a user's row: its integers
    past 64 bits kept), by orjson where that is the same."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return json.loads(text) if inexact(value) else value


# A number orjson may read otherwise than json does is 2**63 or more: 19 digits or more, or an
# exponent of two digits or more. Texts with neither have none: found with every digit made 0
# and E made e (translate and find run in C at memory speed; a regular expression took 4 us a
# row, and ``inexact`` walks every value).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_LARGE_SIGNS = (b"0" * 19, b"e00", b"e+00")


def maybe_inexact(text: bytes) -> bool:
    """Whether JSON ``text`` may hold a number orjson reads otherwise than json does (False:
    it holds none)."""
    shape = text.translate(_DIGITS_AS_ZERO)
    return any(sign in shape for sign in _LARGE_SIGNS)


_LONG_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def may_overflow(text: bytes) -> bool:
    """Whether JSON ``text`` may hold an integer of 2**63 or more, which Arrow cannot take as
    an integer (False: it holds none): 19 digits in a row anywhere."""
    return _LARGE_SIGNS[0] in text.translate(_LONG_DIGITS)


def loads_exact_many(texts: list[str]) -> list[Any]:
    """``loads_exact`` of each of ``texts``, with one check for large numbers over all."""
    try:
        values = list(map(orjson.loads, texts))
    except orjson.JSONDecodeError:
        return list(map(loads_exact, texts))
    if maybe_inexact("\n".join(texts).encode()):
        return [json.loads(text) if inexact(value) else value
                for text, value in zip(texts, values, strict=True)]
    return values


def dumps(value: Any) -> bytes:
    """A request body: UTF-8 JSON bytes, sent as they are."""
    try:
        return orjson.dumps(value)
    except TypeError:  # past 64 bits, a non-string key, a lone surrogate: json escapes them
        return json.dumps(value).encode()


def dumps_text(value: Any) -> str:
    """``value`` (strings, ints, None: no floats) as JSON text, as json would write it."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _json_text(value)


def json_text(value: Any) -> str:
    """``value`` as json writes it (non-ASCII kept): for floats, which may be infinite."""
    return _json_text(value)


_PLAIN = frozenset(("text", "finish_reason"))


def answers_text(responses: list[dict[str, Any]] | None) -> str:
    """A request's responses as the store keeps them, written as the dispatcher writes them
    (a batch's answers export the same bytes as an online run's): plain answers through
    ``dumps_text``, any with logprobs or parsed output (floats) through ``json_text``."""
    if responses is None:
        return "null"
    if all(response.keys() <= _PLAIN for response in responses):
        return dumps_text(responses)
    return json_text(responses)

