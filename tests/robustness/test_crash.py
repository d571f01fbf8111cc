"""Kill the real CLI at random moments and check that no answer is lost or doubled.

``python -m promptmill run`` runs in a child process against a test server living in this
process, so the server outlives every kill. The job is killed with SIGKILL again and again,
each time restarted with the same command, and the final export must be byte-identical to an
uninterrupted run's: every input row exactly once, each with its k responses.

Kill moments come from an RNG seeded afresh on every run (the seed is printed, and
``PROMPTMILL_CRASH_SEED=N`` replays a run) and from watching the job: its store's done count,
the export's temporary file. To land a kill *inside* a transaction (a chunk of planning, a
commit of results) or halfway through the export, some lives run with a failpoint
(``robustness_helpers.FAILPOINTS``) that pauses the child right there.

Which phase each kill hit is read from what the killed process had reached, never from what
the test meant to do: the store after the kill (planning complete or not, requests finished),
the export's temporary file on disk, and for a kill inside a transaction, what the child saw
from inside it (written to the failpoint's mark) against what the store kept: fewer rows or
results after the kill than the child saw means its open transaction was cut.

Graceful stops (SIGINT, SIGTERM) are checked apart: the exit code, the message saying how to
resume, the store left consistent, and the printed command really resuming the job.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from robustness_helpers import (
    StoreState,
    done_count,
    failpoint_env,
    read_jsonl,
    store_state,
    wait_for,
    write_jsonl,
)

from promptmill.engine.dispatch import EngineConfig
from promptmill.testing import TestServer, serve_in_thread

ROWS = 8000  # planning takes a few tenths of a second: kills can land in it
K = 2
CONCURRENCY = 32
LATENCY = 0.02  # seconds per answer: requests are in flight when a kill lands
# A kill loses at most what was answered but not yet committed: one commit's worth of
# results plus the requests in flight (sent again on restart, never exported twice).
FLUSH_SIZE = EngineConfig().flush_size
LOST_PER_KILL = FLUSH_SIZE + 2 * CONCURRENCY


@pytest.fixture(scope="module")
def slow_server() -> Iterator[TestServer]:
    """A deterministic test server answering after LATENCY, shared by this module."""
    with serve_in_thread(latency=LATENCY) as server:
        yield server


def questions(count: int) -> list[dict[str, object]]:
    return [{"id": i, "question": f"Question {i}: what comes after {i}?"} for i in range(count)]


def run_args(source: Path, out: Path, server: TestServer, *extra: str) -> list[str]:
    return ["run", str(source.name), "-m", f"http!test-model,api_base={server.url}",
            "-o", str(out.name), "-k", str(K), "--template", "{{ question }}", *extra]


def reference_export(tmp_path: Path, source: Path, server: TestServer,
                     promptmill: Callable[..., subprocess.CompletedProcess[str]]) -> bytes:
    """The export of an uninterrupted run of the same job (same server, same command)."""
    reference = tmp_path / "reference.jsonl"
    done = promptmill(*run_args(source, reference, server, "--max-concurrency", "64"))
    assert done.returncode == 0, done.stderr
    return reference.read_bytes()


def crash_seed() -> int:
    """PROMPTMILL_CRASH_SEED, or a fresh seed for this run."""
    given = os.environ.get("PROMPTMILL_CRASH_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 32)


# Every phase a kill must reach in a run, as read from the killed process's state. (A kill
# by the clock while planning is tried too, but planning may be over by then: not required.)
PHASES = ("planning, inside a transaction", "dispatch", "dispatch, inside a commit",
          "export, mid-write")


@dataclass
class Kill:
    """One SIGKILL: where it landed, and what the store and server said right after."""

    phase: str  # read from the state the kill left (``reached``)
    done: int
    answered: int  # answers the server gave during this life
    recorded: int  # results this life committed to the store
    temp_files: int

    @property
    def lost(self) -> int:
        """Answers given but not committed: they are simply asked again after restart."""
        return self.answered - self.recorded


def reached(state: StoreState, mark: dict[str, Any] | None, temp_files: int) -> str:
    """The phase a killed job was in, from its store, its export files and its failpoint mark.

    ``mark`` is what the child saw from inside a paused transaction, if it reached one: more
    than the store kept means that transaction was open when the kill came.
    """
    finished = sum(state.counts.get(status, 0) for status in ("done", "failed"))
    if not state.planned_complete:
        inside = mark is not None and mark["where"] == "plan" and mark["visible"] > state.rows
        return "planning, inside a transaction" if inside else "planning"
    if finished < ROWS:
        inside = mark is not None and mark["where"] == "commit" and mark["visible"] > finished
        return "dispatch, inside a commit" if inside else "dispatch"
    return "export, mid-write" if temp_files else "export, not begun"


def sigkill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, slow_server: TestServer,
    promptmill: Callable[..., subprocess.CompletedProcess[str]],
    start_promptmill: Callable[..., subprocess.Popen[str]], failpoints: Path,
) -> None:
    server = slow_server
    seed = crash_seed()
    print(f"crash suite seed {seed} (PROMPTMILL_CRASH_SEED={seed} replays this run)")
    source = write_jsonl(tmp_path / "questions.jsonl", questions(ROWS))
    expected = reference_export(tmp_path, source, server, promptmill)
    out = tmp_path / "answers.jsonl"
    store = tmp_path / "answers.jsonl.promptmill.db"
    args = run_args(source, out, server, "--max-concurrency", str(CONCURRENCY))
    mark = tmp_path / "failpoint.mark"
    rng = random.Random(seed)
    kills: list[Kill] = []
    kept: dict[int, tuple[object, ...]] = {}  # every result seen committed after some kill
    server.stats.reset()

    def life(failpoint: str | None = None) -> subprocess.Popen[str]:
        mark.unlink(missing_ok=True)
        if failpoint is None:
            return start_promptmill(*args)
        where, nth = failpoint.split(":")
        return start_promptmill(*args, env=failpoint_env(failpoints, where, int(nth), mark))

    def kill(process: subprocess.Popen[str], before: StoreState,
             answered_before: int) -> StoreState:
        sigkill(process)
        temp_files = len(list(tmp_path.glob(".answers.jsonl.*.tmp")))
        time.sleep(3 * LATENCY)  # let the server finish the requests that were in flight
        after = store_state(store)
        reported = json.loads(mark.read_text()) if mark.exists() else None
        phase = reached(after, reported, temp_files)
        assert after.integrity in ("ok", "missing", "empty"), (seed, after.integrity)
        # Nothing committed before is lost or changed, whatever the kill interrupted.
        changed = [rid for rid, outcome in kept.items() if after.finished.get(rid) != outcome]
        assert not changed, (f"seed {seed}: results changed or lost after a kill {phase}: "
                             f"{changed[:5]}")
        kept.update(after.finished)
        kills.append(Kill(phase, after.done, server.stats.total_completed - answered_before,
                          after.done - before.done, temp_files))
        return after

    state = store_state(store)
    # 1. Inside a planning transaction: a chunk of rows written, not committed.
    process = life(f"plan:{rng.randint(1, 2)}")
    wait_for(mark.exists, process=process)
    state = kill(process, state, server.stats.total_completed)
    assert not state.planned_complete and state.rows in (0, 5000) and state.done == 0

    # 2. Planning by the clock: shortly after the store appears.
    answered = server.stats.total_completed
    process = life()
    wait_for(store.exists, process=process)
    time.sleep(rng.uniform(0.0, 0.15))
    state = kill(process, state, answered)

    # 3. Dispatch: kills by the done count, every other one inside a commit of results.
    for number in range(7):
        answered = server.stats.total_completed
        if number % 2:
            process = life(f"commit:{rng.randint(1, 6)}")
            wait_for(mark.exists, process=process)
            time.sleep(rng.uniform(0.0, 0.01))
        else:
            target = min(state.done + rng.randint(700, 1900), ROWS - 300)
            process = life()
            wait_for(lambda target=target: done_count(store) >= target, process=process)
            time.sleep(rng.uniform(0.0, 0.03))
        state = kill(process, state, answered)
        assert process.returncode == -signal.SIGKILL

    # 4. Export: halfway through writing its temporary file, then by watching for that file.
    answered = server.stats.total_completed
    process = life("export:1")
    wait_for(mark.exists, timeout=120, process=process)
    state = kill(process, state, answered)
    assert state.done == ROWS and not out.exists() and kills[-1].temp_files == 1
    for _ in range(10):
        stale = set(tmp_path.glob(".answers.jsonl.*.tmp"))  # left by the kill above
        process = life()
        wait_for(lambda stale=stale: set(tmp_path.glob(".answers.jsonl.*.tmp")) - stale,
                 process=process, interval=0.001)
        if process.poll() is None:
            state = kill(process, state, server.stats.total_completed)
            break
        process.communicate()
        out.unlink()  # it finished before the kill: try again on a fresh export

    # 5. The last life finishes the job.
    final = promptmill(*args)
    report = f"seed {seed}: {len(kills)} kills\n" + "\n".join(
        f"  kill {i + 1:2}: {k.phase:31} done {k.done:5}  answered {k.answered:5}  "
        f"lost {k.lost:4}" for i, k in enumerate(kills))
    print(report)
    assert final.returncode == 0, final.stderr
    assert f"wrote {out.name}" in final.stderr

    assert len(kills) >= 10
    missed = [phase for phase in PHASES if phase not in {k.phase for k in kills}]
    assert not missed, f"no kill reached {missed}:\n{report}"
    # The same bytes as the uninterrupted run: each row once, in order, all k responses.
    assert out.read_bytes() == expected, report
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == list(range(ROWS))
    assert all(len(row["responses"]) == K and row["status"] == "done" for row in rows)
    # A kill loses at most the answers in flight or awaiting their commit, asked again later.
    assert all(0 <= k.lost <= LOST_PER_KILL for k in kills), report
    assert server.stats.total_completed == ROWS + sum(k.lost for k in kills), report
    final_state = store_state(store)
    assert final_state.integrity == "ok" and final_state.done == ROWS
    assert all(final_state.finished[rid] == outcome for rid, outcome in kept.items())
    assert not list(tmp_path.glob(".answers.jsonl.*.tmp"))  # killed exports cleaned up


RESUME = re.compile(r"run (promptmill .+?) to continue")


def resume_command(stderr: str) -> list[str]:
    """The command the stop message says to run, as argv."""
    found = RESUME.search(stderr)
    assert found, f"no resume command in: {stderr}"
    return shlex.split(found.group(1))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_requests_in_flight_and_says_how_to_resume(
    signum: signal.Signals, tmp_path: Path, slow_server: TestServer,
    promptmill: Callable[..., subprocess.CompletedProcess[str]],
    start_promptmill: Callable[..., subprocess.Popen[str]],
) -> None:
    server = slow_server
    source = write_jsonl(tmp_path / "questions.jsonl", questions(1000))
    expected = reference_export(tmp_path, source, server, promptmill)
    out = tmp_path / "answers.jsonl"
    store = tmp_path / "answers.jsonl.promptmill.db"
    args = run_args(source, out, server, "--max-concurrency", "8")
    server.stats.reset()
    # Started with --new-job: the command to resume must not repeat it (it would discard
    # what this run stored).
    process = start_promptmill(*args, "--new-job")
    wait_for(lambda: done_count(store) >= 150, process=process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert resume_command(stderr) == ["promptmill", *args]
    assert not out.exists()  # no partial export passed off as results
    state = store_state(store)
    assert state.integrity == "ok" and state.rows == 1000 and state.requests == 1000
    assert state.counts.get("failed", 0) == 0 and 150 <= state.done < 1000
    # Requests in flight were finished and recorded, not dropped: every answer is stored.
    assert server.stats.total_completed == state.done

    resumed = promptmill(*resume_command(stderr)[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == expected
    assert server.stats.total_completed == 1000  # nothing asked twice


def test_second_signal_abandons_requests_in_flight(
    tmp_path: Path, promptmill: Callable[..., subprocess.CompletedProcess[str]],
    start_promptmill: Callable[..., subprocess.Popen[str]],
) -> None:
    source = write_jsonl(tmp_path / "questions.jsonl", questions(50))
    out = tmp_path / "answers.jsonl"
    store = tmp_path / "answers.jsonl.promptmill.db"
    with serve_in_thread(latency=30) as server:  # nothing in flight will finish in time
        args = run_args(source, out, server, "--max-concurrency", "8")
        process = start_promptmill(*args)
        wait_for(lambda: server.stats.received["/v1/chat/completions"] >= 8, process=process)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert process.poll() is None  # still waiting for the requests in flight
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert time.monotonic() - stopped_at < 10  # did not wait for the 30 s answers
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert resume_command(stderr) == ["promptmill", *args]
    state = store_state(store)
    assert state.integrity == "ok" and state.counts == {"pending": 50}

    with serve_in_thread() as server:
        args = run_args(source, out, server)
        resumed = promptmill(*args)
        assert resumed.returncode == 0, resumed.stderr
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == list(range(50))
    assert all(len(row["responses"]) == K for row in rows)


def test_sigterm_while_planning_rolls_back_the_chunk_and_resumes(
    tmp_path: Path, slow_server: TestServer, failpoints: Path,
    promptmill: Callable[..., subprocess.CompletedProcess[str]],
    start_promptmill: Callable[..., subprocess.Popen[str]],
) -> None:
    server = slow_server
    source = write_jsonl(tmp_path / "questions.jsonl", questions(5100))
    out = tmp_path / "answers.jsonl"
    store = tmp_path / "answers.jsonl.promptmill.db"
    args = run_args(source, out, server, "--max-concurrency", "128")
    mark = tmp_path / "failpoint.mark"
    server.stats.reset()
    # Paused inside the second chunk's transaction: 5000 rows committed, 100 written.
    process = start_promptmill(*args, env=failpoint_env(failpoints, "plan", 2, mark))
    wait_for(mark.exists, process=process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert resume_command(stderr) == ["promptmill", *args]
    state = store_state(store)
    assert state.integrity == "ok" and not state.planned_complete
    assert state.rows == state.planned_rows == 5000 and state.requests == 5000
    assert server.stats.total_completed == 0

    resumed = promptmill(*args)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == list(range(5100))
    assert server.stats.total_completed == 5100
