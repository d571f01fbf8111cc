"""Custom generators the seed's way: handlers for one call at a time, driven by the engine.

Registered in-process (``register_generator``) or installed as a distribution with a
``promptmill.generators`` entry point (a real dist-info on the path, found by
importlib.metadata as pip's would be), they run through the real store and CLI: concurrency,
limits, retries by kind, exactly once, resume after kill -9. The example in ``examples/``
is run as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import pytest

import promptmill as pm
from promptmill import GeneratedMessage, GeneratedText, GenerateParams, Generator, Message
from promptmill.errors import ServerError, UsageError
from promptmill.testing import kill_when_done

ROOT = Path(__file__).resolve().parents[2]


class Custom(Generator):
    """The seed's example, filled in: echoes the last message, upper-cased if asked."""

    custom_field: bool

    async def generate_messages(
        self,
        messages: t.Sequence[t.Sequence[Message]],
        params: t.Sequence[GenerateParams],
    ) -> t.Sequence[GeneratedMessage]:
        merged = [self.params.merge_with(p).to_dict() for p in params]
        output_messages = []
        for chat, p in zip(messages, merged, strict=True):
            text = str(chat[-1]["content"])
            text = text.upper() if self.custom_field else text
            text = text[: p["max_tokens"]] if "max_tokens" in p else text
            output_messages.append(GeneratedMessage(
                {"role": "assistant", "content": f"{self.model}: {text}"}, stop_reason="stop",
                usage={"input_tokens": len(text), "output_tokens": len(text)}))
        return output_messages


def test_the_seeds_custom_generator_as_written() -> None:
    generator = Custom(model="foo", custom_field=True)
    assert generator.custom_field is True and generator.to_identifier().endswith(
        "foo,custom_field=true")
    reply = generator.chat_sync("hello boats")
    assert reply.text == "foo: HELLO BOATS" and reply.usage is not None
    assert reply.usage.prompt_tokens == 11

    pm.register_generator("custom", Custom)
    custom = pm.get_generator("custom!foo,custom_field=false")
    assert isinstance(custom, Custom) and custom.custom_field is False
    assert pm.get_identifier(custom) == "custom!foo,custom_field=false"
    # The field has no default: leaving it out names it (rigging's pydantic would refuse too).
    with pytest.raises(UsageError, match="Custom needs custom_field: pass custom_field=VALUE"):
        pm.get_generator("custom!foo")
    # Only chats: a text prompt is refused before anything runs.
    assert Custom.supports_chat and not Custom.supports_text
    with pytest.raises(UsageError, match="does not take text prompts: use chat"):
        custom.complete_sync("hello")


def test_a_registered_generator_runs_a_job_concurrently_with_retries(tmp_path: Path) -> None:
    calls: list[str] = []
    in_flight = [0, 0]  # now, most

    class Flaky(Generator):
        """Answers each text prompt reversed after a pause; every 4th call fails (retried)."""

        async def generate_texts(self, texts: t.Sequence[str],
                                 params: t.Sequence[GenerateParams]) -> list[t.Any]:
            calls.append(texts[0])
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            try:
                await asyncio.sleep(0.05)
                if len(calls) % 4 == 0:
                    raise ServerError("busy")
                return [GeneratedText(text[::-1], "stop") for text in texts]
            finally:
                in_flight[0] -= 1

    pm.register_generator("flaky", Flaky)
    rows = [{"id": i, "text": f"row {i}"} for i in range(30)]
    out = tmp_path / "out.jsonl"
    results = pm.run(rows, "flaky!m,max_connections=6", template="{{ text }}", chat=False,
                     output=out)
    assert [r["responses"][0]["text"] for r in results] == [f"row {i}"[::-1] for i in range(30)]
    assert all(r["status"] == "done" for r in results)
    assert len(out.read_text().splitlines()) == 30
    assert len(calls) > 30  # the failed calls were sent again
    assert sorted(set(calls)) == sorted(f"row {i}" for i in range(30))
    assert 1 < in_flight[1] <= 6  # driven concurrently, within max_connections


def test_per_entry_exceptions_fail_only_their_row(tmp_path: Path) -> None:
    class Picky(Generator):
        """Refuses odd rows (returns the exception in their place)."""

        async def generate_messages(self, messages: t.Sequence[t.Sequence[Message]],
                                    params: t.Sequence[GenerateParams]) -> list[t.Any]:
            text = str(messages[0][-1]["content"])
            return [ValueError(f"odd {text}") if int(text) % 2 else f"even {text}"]

    rows = [{"id": i, "prompt": str(i)} for i in range(4)]
    results = pm.run(rows, Picky("p"), output=tmp_path / "out.jsonl")
    assert [r["status"] for r in results] == ["done", "failed", "done", "failed"]
    assert results[0]["responses"][0]["text"] == "even 0"
    assert results[1]["error"].endswith("ValueError: odd 1"), results[1]["error"]


def test_a_generator_answering_nothing_is_refused_when_made() -> None:
    class Nothing(Generator):
        """Implements no handler."""

    with pytest.raises(TypeError, match="implement generate_messages"):
        Nothing("m")


def test_a_generator_answering_the_wrong_count_stops_the_job(tmp_path: Path) -> None:
    class Wrong(Generator):
        """Returns two answers for one chat."""

        async def generate_messages(self, messages: t.Any, params: t.Any) -> list[str]:
            return ["a", "b"]

    rows = [{"id": i, "prompt": "x"} for i in range(3)]
    with pytest.raises(pm.PromptmillError, match="returned 2 answers for 1 chats: return one"):
        pm.run(rows, Wrong("w"), output=tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


PLUGIN = '''
"""A generator installed as a distribution with an entry point (acme_generators)."""
import asyncio, os
from promptmill import Generator


class Acme(Generator):
    """Echoes each prompt; logs every call to $ACME_LOG; waits ``delay`` seconds."""

    delay: float = 0.0

    async def generate_messages(self, messages, params):
        with open(os.environ["ACME_LOG"], "a") as log:
            log.write(messages[0][-1]["content"] + "\\n")
        await asyncio.sleep(self.delay)
        return ["acme says " + chat[-1]["content"] for chat in messages]
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``acme_generators`` installed in a folder on the path, its entry point in its
    dist-info (what ``pip install`` leaves); the environment for a CLI run."""
    site = tmp_path / "site"
    info = site / "acme_generators-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "acme_generators.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-generators\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[promptmill.generators]\nacme = acme_generators:Acme\n")
    monkeypatch.syspath_prepend(str(site))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get(
        "PYTHONPATH", "")]), "ACME_LOG": str(tmp_path / "calls.log")}
    monkeypatch.setenv("ACME_LOG", env["ACME_LOG"])
    return env


def test_an_entry_point_generator_is_found_by_name(installed_plugin: dict[str, str]) -> None:
    from promptmill.generators import known_providers

    assert "acme" in known_providers()
    acme = pm.get_generator("acme!m1,delay=0")
    assert type(acme).__name__ == "Acme" and acme.to_identifier() == "acme!m1,delay=0"
    assert acme.chat_sync("hi").text == "acme says hi"


def test_an_entry_point_generator_resumes_after_kill_exactly_once(
        installed_plugin: dict[str, str], tmp_path: Path) -> None:
    rows = 120
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"q{i}"}) + "\n"
                              for i in range(rows)))
    args = [sys.executable, "-m", "promptmill", "run", str(source), "-m",
            "acme!m1,delay=0.05", "-o", str(output), "--max-concurrency", "4"]
    process = subprocess.Popen(args, cwd=tmp_path, env=installed_plugin,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    recorded = len(kill_when_done(process, tmp_path / "out.jsonl.promptmill.db", 30))
    assert 30 <= recorded < rows and not output.exists()
    calls_before = len(Path(installed_plugin["ACME_LOG"]).read_text().splitlines())
    result = subprocess.run(args, cwd=tmp_path, env=installed_plugin, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in out] == list(range(rows))
    assert all(row["responses"][0]["text"] == f"acme says q{row['id']}" for row in out)
    calls = Path(installed_plugin["ACME_LOG"]).read_text().splitlines()
    # The rerun asked only what was not recorded (and what was in flight at the kill).
    assert len(calls) - calls_before <= rows - recorded + 4
    assert set(calls) == {f"q{i}" for i in range(rows)}


def test_the_custom_generator_example_runs_as_a_user_runs_it(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_generator.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("40 of 40 answered into calculator.jsonl;")
    most = int(lines[0].split("at most ")[1].split()[0])
    assert 1 < most <= 8  # concurrent, within its max_connections=8
    assert lines[1] == 'first: "0 times 3 = 0"'
    assert lines[2] == "one-off: 42 | identifier: calculator!v1"
    rows = [json.loads(line) for line in (tmp_path / "calculator.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(40))
    assert all(row["responses"][0]["text"] == f"{i} times {i + 3} = {i * (i + 3)}"
               for i, row in enumerate(rows))


def test_a_chat_only_generator_refuses_a_text_job_before_it_starts(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(UsageError, match=r"(?i)^custom!foo takes chats only: drop --text"):
        pm.run([{"prompt": "x"}], Custom("foo", custom_field=True), chat=False, output=out)
    assert not out.exists() and not (tmp_path / "out.jsonl.promptmill.db").exists()


def test_min_delay_between_requests_paces_the_job_and_limits_leave_resume_alone(
        tmp_path: Path) -> None:
    sent: list[float] = []

    class Timed(Generator):
        """Notes when each call arrives."""

        async def generate_messages(self, messages: t.Any, params: t.Any) -> list[str]:
            sent.append(time.monotonic())
            return ["ok"] * len(messages)

    pm.register_generator("timed", Timed)
    rows = [{"id": i, "prompt": str(i)} for i in range(6)]
    out = tmp_path / "out.jsonl"
    pm.run(rows[:3], "timed!m,min_delay_between_requests=200", output=out)
    # One request every 200 ms at most: 3 requests span at least 2 intervals (and load
    # only slows them further).
    assert sent[-1] - sent[0] >= 0.35
    # Other limits on the same job: it goes on (limits are not in the fingerprint).
    sent.clear()
    results = pm.run(rows[:3], "timed!m,max_connections=2", output=out)
    assert not sent and [r["status"] for r in results] == ["done"] * 3
