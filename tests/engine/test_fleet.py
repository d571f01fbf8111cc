"""One job over a fleet of endpoints (``-m`` several times, ``--fleet FILE``), over real HTTP.

The issue's test: three servers limited to 600, 1,200 and 2,400 requests a minute (scaled x5
with 1 s windows, so that 5,000 requests take seconds; headers hidden on one), nothing told:
each endpoint gets at least 90% of its limit while the job runs, under 2% of requests are
refused; a server killed midway has its share carried by the others, nothing lost or doubled.
Then what a user relies on around it: the ``endpoint`` each row records (never a key), resume
when endpoints are added or removed, refusal of a different model, ``--fleet`` files, an
endpoint that is down from the start.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rich.console import Console

from promptmill.api import run
from promptmill.engine.dispatch import EngineStats
from promptmill.engine.fleet import FleetGenerator, fleet_from_identifiers
from promptmill.errors import JobMismatchError, UsageError
from promptmill.progress import ProgressView
from promptmill.testing import TestServer


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"
    spec = importlib.util.spec_from_file_location("promptmill_benchmark_fleet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fleet_benchmark = _benchmark()


def test_each_endpoint_is_paced_by_its_own_limits(tmp_path: Path) -> None:
    result = fleet_benchmark.measure_fleet(tmp_path, requests=5000)
    print("\n".join(result.lines()))
    assert result.rows == result.unique_rows == result.done_rows == 5000
    assert all(share >= 0.90 for share in result.endpoint_shares()), result.lines()
    assert result.refused_share < 0.02, result.lines()


def test_a_server_killed_midway_has_its_share_carried(tmp_path: Path) -> None:
    result = fleet_benchmark.measure_fleet(tmp_path, requests=3000, kill_after=3.0)
    print("\n".join(result.lines()))
    assert result.rows == result.unique_rows == result.done_rows == 3000  # nothing lost or doubled
    killed, others = result.served[1], result.served[0] + result.served[2]
    assert killed > 0 and killed + others == 3000
    # After the kill the others answered at their own limits: its share went to them.
    assert result.served[2] / result.seconds >= 0.9 * result.limits[2]


def rows(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "prompt": f"row {i}"} for i in range(count)]


def test_rows_record_the_endpoint_that_answered_without_its_key(
        make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    a, b = make_server(), make_server()
    out = run(rows(40), [f"http!test-model,api_base={a.url},api_key=sk-pmFleetSecret1234567",
                         f"http!test-model,api_base={b.url},rpm=6000"],
              output=tmp_path / "out.jsonl", params={"max_tokens": 5})
    endpoints = {row["endpoint"] for row in out}
    assert endpoints <= {f"http!test-model,api_base={a.url}",
                         f"http!test-model,api_base={b.url},rpm=6000"}
    assert len(endpoints) == 2  # both took part
    assert all(row["status"] == "done" for row in out)
    assert out[0]["model"] == "http!test-model,max_tokens=5"  # the model, not an endpoint
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"sk-pmFleetSecret1234567" not in files


def test_endpoints_added_or_removed_resume_the_job_a_new_model_is_refused(
        make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    a, b, c = make_server(), make_server(), make_server()
    output = tmp_path / "out.jsonl"

    def ident(server: TestServer, model: str = "test-model") -> str:
        return f"http!{model},api_base={server.url}"

    run(rows(30), ident(a), output=output, limit=10)  # one endpoint, the first 10 rows
    sent = a.stats.total_completed
    out = run(rows(30), [ident(a), ident(b), ident(c)], output=output, limit=20)
    assert [r["id"] for r in out] == list(range(20)) and all(r["status"] == "done" for r in out)
    assert a.stats.total_completed + b.stats.total_completed + c.stats.total_completed \
        == sent + 10  # only the 10 new rows were sent
    before = a.stats.total_completed, b.stats.total_completed + c.stats.total_completed
    out = run(rows(30), [ident(b), ident(c)], output=output)  # a removed: the same job
    assert len(out) == 30 and a.stats.total_completed == before[0]
    assert b.stats.total_completed + c.stats.total_completed == before[1] + 10
    assert run(rows(30), ident(c), output=output)[29]["status"] == "done"  # down to one
    with pytest.raises(JobMismatchError, match="different job"):
        run(rows(30), [ident(b, "other-model"), ident(c, "other-model")], output=output)
    with pytest.raises(UsageError, match="a fleet serves one model"):
        run(rows(30), [ident(b), ident(c, "other-model")], output=output)
    with pytest.raises(UsageError, match="must answer alike"):
        run(rows(30), [ident(b) + ",temperature=0.5", ident(c)], output=output)


def test_an_endpoint_down_from_the_start_is_benched_and_the_others_carry_on(
        make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = free.getsockname()[1]
    live = make_server()
    generator = fleet_from_identifiers([f"http!test-model,api_base=http://127.0.0.1:{dead}/v1",
                                        f"http!test-model,api_base={live.url}"])
    out = run(rows(200), generator, output=tmp_path / "out.jsonl")
    assert [r["status"] for r in out] == ["done"] * 200
    assert {r["endpoint"] for r in out} == {f"http!test-model,api_base={live.url}"}
    assert live.stats.total_completed == 200
    lines = dict(generator.status_lines())
    # Benched as unreachable, or being probed again when the job ended (timing).
    state = lines[f"http!test-model,api_base=http://127.0.0.1:{dead}/v1"]
    assert "0 answered" in state and ("(unreachable)" in state or state.endswith("probing"))
    assert "200 answered" in lines[f"http!test-model,api_base={live.url}"]
    # The progress display shows them: a line per endpoint, with its state.
    console = Console(width=200, record=True, color_system=None)
    console.print(ProgressView(EngineStats(total=200), "http!test-model", generator))
    shown = [line for line in console.export_text().splitlines() if "endpoint" in line]
    assert len(shown) == 2 and "0 answered" in shown[0] and "200 answered" in shown[1]
    assert "(unreachable)" in shown[0] or shown[0].rstrip().endswith("probing")


def test_fleet_file_and_repeated_m_through_the_cli(
        make_server: Callable[..., TestServer], tmp_path: Path,
        promptmill_cli: Callable[..., Any]) -> None:
    a, b = make_server(), make_server()
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(50)))
    (tmp_path / "fleet.txt").write_text(
        f"# my two servers\nhttp!test-model,api_base={a.url},max_concurrency=4\n\n")
    result = promptmill_cli("run", "in.jsonl", "--fleet", "fleet.txt", "-m",
                            f"http!test-model,api_base={b.url},rpm=3000", "-o", "out.jsonl")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(out) == 50 and {r["status"] for r in out} == {"done"}
    assert a.stats.total_completed + b.stats.total_completed == 50
    assert a.stats.total_completed > 0 and b.stats.total_completed > 0
    (tmp_path / "empty.txt").write_text("# nothing\n")
    empty = promptmill_cli("run", "in.jsonl", "--fleet", "empty.txt", "-o", "x.jsonl")
    assert empty.returncode == 2 and "--fleet empty.txt: no identifier" in empty.stderr
    bad = promptmill_cli("run", "in.jsonl", "-m", f"http!test-model,api_base={a.url},rpm=fast",
                         "-m", f"http!test-model,api_base={b.url}", "-o", "y.jsonl")
    assert bad.returncode == 2 and "rpm='fast' must be a positive number" in bad.stderr


def test_a_fleet_is_one_generator_to_the_job() -> None:
    fleet = fleet_from_identifiers([
        "http!m,api_base=http://a:1/v1,max_concurrency=3,supports_n=false",
        "http!m,api_base=http://b:1/v1,api_key_env=B_KEY,supports_n=false,timeout=5"])
    assert isinstance(fleet, FleetGenerator)
    assert fleet.concurrency() == 3 + 64 and not fleet.supports_n
    # The model the job is about: where the endpoints are is not part of it.
    assert fleet.to_identifier() == "http!m,supports_n=false"
    assert [e.label for e in fleet.endpoints] == [
        "http!m,api_base=http://a:1/v1,max_concurrency=3",
        "http!m,api_base=http://b:1/v1,api_key_env=B_KEY,timeout=5"]
