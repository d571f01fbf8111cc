"""A 120,000-request Batch API job killed with SIGKILL at every step, answered exactly once.

``python -m promptmill run --mode batch`` runs in a child process against a test server in
this process (which keeps the uploaded files and the batches across kills). Each life is
paused by a failpoint (``robustness_helpers.FAILPOINTS``) right after a remote call returned
and before its answer was recorded, or inside the transaction recording a download, and
killed there:

1. after the first upload: the next life must find that upload, not upload again;
2. after the first batch was created: the next life must find it, not create a second one;
3. while polling (the other batches uploaded and created by then);
4. while recording a download (a chunk of lines written, not committed).

The batches split the job in three (50,000 + 50,000 + 20,000); some lines fail and the
second batch expires halfway. The last life waits for everything: every row is done once,
with its own answer, and only the failed and expired lines were sent again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from robustness_helpers import batch_steps, failpoint_env, store_state, wait_for

from promptmill.testing import BatchFaults, serve_in_thread

ROWS = 120_000


def write_questions(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, ROWS, 10_000):
            handle.write("".join(json.dumps({"id": i, "question": f"Question {i}: and then?"})
                                 + "\n" for i in range(start, min(ROWS, start + 10_000))))


@pytest.mark.slow
def test_a_120k_batch_job_survives_a_kill_at_every_step(
    tmp_path: Path, promptmill: Callable[..., subprocess.CompletedProcess[str]],
    start_promptmill: Callable[..., subprocess.Popen[str]], failpoints: Path,
) -> None:
    write_questions(tmp_path / "questions.jsonl")
    store = tmp_path / "answers.jsonl.promptmill.db"
    mark = tmp_path / "failpoint.mark"
    faults = BatchFaults(line_error=0.002, expire_batches=(2,), expire_after=0.5, seed=11)
    with serve_in_thread(batch_faults=faults) as server:
        service = server.batch_service
        assert service is not None
        args = ["run", "questions.jsonl", "-m", f"http!test-model,api_base={server.url}",
                "-o", "answers.jsonl", "--template", "{{ question }}", "--mode", "batch",
                "--poll-interval", "0.2"]

        def life_killed_at(where: str, nth: int, *extra: str) -> None:
            mark.unlink(missing_ok=True)
            process = start_promptmill(*args, *extra,
                                       env=failpoint_env(failpoints, where, nth, mark))
            reached = wait_for(mark.exists, timeout=240, process=process)
            assert reached, f"never reached {where}: {process.communicate()}"
            process.send_signal(signal.SIGKILL)
            process.communicate()
            assert process.returncode == -signal.SIGKILL
            assert store_state(store, outcomes=False).integrity == "ok"

        # 1. Killed after the first upload: the file is at the server, its id not recorded.
        life_killed_at("upload", 1)
        steps = batch_steps(store)
        assert [step for _, step, _, _ in steps] == ["uploading", "prepared", "prepared"]
        assert service.counts["uploads"] == 1 and not service.batches

        # 2. Killed after the first batch was created: the upload was found, not repeated.
        life_killed_at("create", 1)
        assert service.counts["uploads"] == 1 and len(service.batches) == 1
        number, step, file_id, batch_id = batch_steps(store)[0]
        assert step == "creating" and batch_id is None
        assert file_id == next(iter(service.files))

        # 3. Killed while polling: the first batch was found (not created again), the other
        #    two uploaded and created once each.
        life_killed_at("poll", 1, "--wait")
        assert service.counts["uploads"] == 3 and len(service.batches) == 3
        assert [b for _, _, _, b in batch_steps(store)] == list(service.batches)
        assert [b["input_file_id"] for b in service.batches.values()] == [
            f for _, _, f, _ in batch_steps(store)] and number == 1

        # 4. Killed while recording a download: one chunk committed, the next one not.
        life_killed_at("record", 2, "--wait")
        recorded = store_state(store, outcomes=False)
        assert 1000 <= recorded.done < ROWS

        # 5. The last life waits for every batch, sending the failed and expired lines again.
        started = time.monotonic()
        final = promptmill(*args, "--wait", timeout=600)
        assert final.returncode == 0, final.stderr
        print(f"final life: {time.monotonic() - started:.0f}s\n{final.stderr[-3000:]}")

        batches = list(service.batches.values())
        first_three = batches[:3]
        assert [b["request_counts"]["total"] for b in first_three] == [50_000, 50_000, 20_000]
        assert [b["status"] for b in first_three] == ["completed", "expired", "completed"]
        # Half its lines were run (a few of them failed), the other half expired.
        assert 24_800 <= first_three[1]["request_counts"]["completed"] <= 25_000
        # Sent again: exactly the lines that failed or expired, each once per failure.
        failed = sum(b["request_counts"]["failed"] for b in batches)
        assert sum(b["request_counts"]["total"] for b in batches) == ROWS + failed
        assert batches[3]["request_counts"]["total"] == sum(
            b["request_counts"]["failed"] for b in first_three)
        # Every request answered with a 200 exactly once.
        assert len(server.stats.completed_by_prompt) == ROWS
        assert set(server.stats.completed_by_prompt.values()) == {1}

    rows = [json.loads(line) for line in
            (tmp_path / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == list(range(ROWS))
    assert all(row["status"] == "done" and len(row["responses"]) == 1 for row in rows)
    # Each row holds its own answer (the test server echoes the question).
    assert all(f"Question {row['id']}: and" in row["responses"][0]["text"] for row in rows)
    resent = sum(row["attempts"] - 1 for row in rows)
    assert resent == failed
    state = store_state(store, outcomes=False)
    assert state.integrity == "ok" and state.done == ROWS
    assert not list((tmp_path / "answers.jsonl.promptmill.batches").iterdir())

