"""A custom generator, the way rigging's users write one, run as a promptmill job.

``Calculator`` answers arithmetic questions with Python instead of a model (a reference to
grade models against). It implements one handler, ``generate_messages``, for one call at a
time; promptmill drives it like any backend: many calls in flight (``max_connections``),
failures retried by kind (it fails now and then on purpose: ``fail_every``), every answer
kept exactly once in the job store beside the output, resumable after a crash.

Run it:  python examples/custom_generator.py  (writes calculator.jsonl in the working folder)
"""

from __future__ import annotations

import asyncio
import json
import re
import typing as t
from pathlib import Path

import promptmill as pm
from promptmill import GeneratedMessage, GenerateParams, Generator, Message
from promptmill.errors import ServerError

_QUESTION = re.compile(r"what is (-?\d+) ?([-+*/x]|plus|minus|times) ?(-?\d+)", re.IGNORECASE)
_OPS = {"+": int.__add__, "plus": int.__add__, "-": int.__sub__, "minus": int.__sub__,
        "*": int.__mul__, "x": int.__mul__, "times": int.__mul__, "/": int.__floordiv__}


class Calculator(Generator):
    """Answers "what is A + B" with the exact result."""

    # Options of this generator, given in its identifier (calculator!v1,show_work=true).
    show_work: bool = False
    fail_every: int = 0  # fail every Nth call (0: never), to show the retries

    calls = 0
    in_flight = 0
    most_in_flight = 0

    async def generate_messages(
        self,
        messages: t.Sequence[t.Sequence[Message]],
        params: t.Sequence[GenerateParams],
    ) -> t.Sequence[GeneratedMessage]:
        """One answer per chat: the last user message's arithmetic, worked out."""
        merged = [self.params.merge_with(p).to_dict() for p in params]
        Calculator.calls += 1
        Calculator.in_flight += 1
        Calculator.most_in_flight = max(Calculator.most_in_flight, Calculator.in_flight)
        try:
            await asyncio.sleep(0.05)  # a remote service would take a while
            if self.fail_every and Calculator.calls % self.fail_every == 0:
                raise ServerError("calculator!: overloaded, try again")  # retried
            return [self._answer(chat, p) for chat, p in zip(messages, merged, strict=True)]
        finally:
            Calculator.in_flight -= 1

    def _answer(self, chat: t.Sequence[Message], params: dict[str, t.Any]) -> GeneratedMessage:
        question = str(chat[-1]["content"])
        match = _QUESTION.search(question)
        if match is None:
            text = "I only do arithmetic."
        else:
            a, op, b = int(match[1]), match[2].lower(), int(match[3])
            result = _OPS[op](a, b)
            text = f"{a} {op} {b} = {result}" if self.show_work else str(result)
        limit = params.get("max_tokens")
        text = " ".join(text.split()[:limit]) if limit else text
        return GeneratedMessage(
            {"role": "assistant", "content": text}, stop_reason="stop",
            usage={"input_tokens": len(question.split()), "output_tokens": len(text.split())})


pm.register_generator("calculator", Calculator)


def main() -> None:
    """Run a job over 40 questions, then one one-off question."""
    rows = [{"id": i, "question": f"What is {i} times {i + 3}?"} for i in range(40)]
    output = Path("calculator.jsonl")
    results = pm.run(rows, "calculator!v1,show_work=true,fail_every=7,max_connections=8",
                     template="{{ question }}", output=output)
    done = [row for row in results if row["status"] == "done"]
    print(f"{len(done)} of {len(rows)} answered into {output}; "
          f"{Calculator.calls} calls, at most {Calculator.most_in_flight} at once")
    print("first:", json.dumps(results[0]["responses"][0]["text"]))

    generator = pm.get_generator("calculator!v1")
    reply = generator.with_(GenerateParams(max_tokens=1)).chat_sync("What is 6 times 7?")
    print("one-off:", reply.text, "| identifier:", pm.get_identifier(generator))


if __name__ == "__main__":
    main()
