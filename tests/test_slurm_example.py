"""examples/slurm/generate_lora.sbatch run for real, as far as one machine allows: stand-in
``srun`` and ``scontrol`` on PATH run each step here, as an allocation of two "nodes" that
are both this machine, so the script's own logic runs: the Ray head started, a Ray worker
joined, the promptmill job with a LoRA adapter on two replicas, the Ray nodes stopped; then
the script submitted again continues the job and sends nothing twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptmill

SCRIPT = Path(__file__).parent.parent / "examples" / "slurm" / "generate_lora.sbatch"
NODES = ("node1", "node2")

# `srun [options] COMMAND...`: COMMAND here, its node (-w) noted in the calls log.
SRUN = """#!/bin/bash
node=?
while [[ $# -gt 0 && $1 == -* ]]; do
    case $1 in
        -w) node=$2; shift 2 ;;
        -w*) node=${1#-w}; shift ;;
        *) shift ;;
    esac
done
echo "$node $*" >> "$SLURM_STANDIN_LOG"
exec "$@"
"""
# `scontrol show hostnames LIST`: the allocation's node names, one a line.
SCONTROL = """#!/bin/bash
[[ $1 == show && $2 == hostnames ]] || { echo "stand-in: only show hostnames" >&2; exit 1; }
tr ',' '\\n' <<< "$3"
"""


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path, removed after the test."""
    folder = Path(tempfile.mkdtemp(prefix="pm-ray-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# `hostname --ip-address`: the address Ray gives this machine's nodes (this machine's
# /etc/hosts names it 127.0.0.1, which Ray does not take for its node address, as a cluster
# node's own name would give its network address).
HOSTNAME = """#!/bin/bash
[[ $1 == --ip-address ]] && {{ echo {ip}; exit 0; }}
exec /bin/hostname "$@"
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _ray_processes_of(group: int) -> list[int]:
    """Processes still in the script's process group (its Ray nodes, if not stopped)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


@pytest.mark.ray
@pytest.mark.hf
@pytest.mark.timeout(900)
def test_the_sbatch_script_runs_a_lora_job_over_a_two_node_allocation(
        tiny_model: Path, tiny_adapter: Path, tmp_path: Path, short_tmp: Path) -> None:
    pytest.importorskip("ray")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    import ray

    node_ip = ray.util.get_node_ip_address()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL),
                       ("hostname", HOSTNAME.format(ip=node_ip))):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps({"id": i, "question": f"What is {i} plus {i}?"}) + "\n"
                              for i in range(6)))
    out = tmp_path / "generated.jsonl"
    calls = tmp_path / "srun-calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "VENV": sys.prefix, "ENGINE": "transformers", "BASE_MODEL": str(tiny_model),
           "ADAPTER": str(tiny_adapter), "INPUT": str(source), "OUTPUT": str(out),
           "MAX_TOKENS": "4", "BATCH_SIZE": "2", "RAY_PORT": str(_free_port()),
           "SLURM_JOB_NODELIST": ",".join(NODES), "SLURM_CPUS_PER_TASK": "1",
           "SLURM_GPUS_ON_NODE": "0", "SLURM_STANDIN_LOG": str(calls),
           # Ray's own files for these nodes, apart from any other cluster on the machine
           # (a short path: Ray's sockets live there, and a socket path has 107 bytes).
           "RAY_TMPDIR": str(short_tmp)}

    def submit() -> subprocess.CompletedProcess[str]:
        """sbatch the script (here: run it); what it printed, once it has exited."""
        log = tmp_path / "sbatch.log"
        with open(log, "w") as handle:
            child = subprocess.Popen(["bash", SCRIPT], env=env, cwd=tmp_path, text=True,
                                     stdout=handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            child.wait(timeout=600)
        finally:
            time.sleep(1)  # the Ray processes the script stopped, gone
            left = _ray_processes_of(child.pid)
            for pid in left:  # whatever the script failed to stop (it should stop them all)
                os.kill(pid, signal.SIGKILL)
        output = log.read_text()
        assert not left, f"the script left Ray processes running: {left}\n{output[-3000:]}"
        return subprocess.CompletedProcess(child.args, child.returncode, output, "")

    first = submit()
    assert first.returncode == 0, first.stdout[-4000:]
    started = calls.read_text().splitlines()
    assert started[0] == "node1 hostname --ip-address"
    assert started[1].startswith("node1 ray start --head ")
    assert started[2].startswith("node2 ray start --address=")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(6))
    assert all(row["status"] == "done" and row["attempts"] == 1 for row in rows)
    assert "requests 6: 6 done, 0 failed" in first.stdout, first.stdout[-2000:]  # status
    # The answers of the same model and adapter in one process, without Ray or SLURM.
    here = promptmill.run(source, f"transformers!{tiny_model},adapter={tiny_adapter}",
                          params={"temperature": 0, "max_tokens": 4}, cache=False)
    assert [r["responses"] for r in rows] == [r["responses"] for r in here]

    # Submitted again (after a preemption, say): the job is done, nothing is sent again.
    again = submit()
    assert again.returncode == 0, again.stdout[-4000:]
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
