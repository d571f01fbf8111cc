"""Whole process against whole process: a ``promptmill run`` CLI job against a bare-loop script.

Issue 15's "done when": the time a user waits, from typing the command to its exit, for a
``promptmill run`` job of N requests, against a script a user would write by hand (read the
JSONL input, send each prompt with one pooled aiohttp session and C workers on asyncio's
standard loop, write each answer as a JSONL line), run as its own process. Both against the
same test server (its own process, started afresh at one address for every run so that
neither client meets a warmed-up server the other left), with the same concurrency; rounds
interleave bare and promptmill so that the machine's load drifts less within a pair than
across the benchmark. promptmill runs as a user's later job to that address (``--memory
warm``: an earlier job recorded that its answers carry no limit headers, so no slow start)
or as a first job to it (``--memory cold``: slow start's probe, one round trip).

Printed per run: wall seconds from spawn to exit, requests/s, and the client's CPU seconds
(user + system of the child: steadier than wall clock on a loaded machine); then, per setting
and size, the median of each pair's ratio (promptmill's requests/s over the bare script's
just before it), by wall clock and by CPU time.

    python benchmarks/process.py                          # 5,000 and 20,000 rows, both settings
    python benchmarks/process.py --rows 5000 --setting zero --repeat 5
    python benchmarks/process.py --before-src /tmp/before/src    # rounds: bare, before, this
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from as_installed import compile_package

MODEL = "test-model"
SETTINGS = {"zero": (0.0, 64), "latency": (0.2, 500)}  # server latency (s), requests in flight
TARGETS = {"zero": 0.9, "latency": 1.0}  # issue 15: promptmill / bare, whole process


def write_input(path: Path, rows: int) -> None:
    """An input JSONL file of ``rows`` rows with an ``id`` and a ``prompt`` field."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            prompt = f"Question {index}: what is {index} plus {index * 7 % 101}? Answer briefly."
            handle.write(json.dumps({"id": index, "prompt": prompt}) + "\n")


async def bare_script(url: str, source: Path, output: Path, concurrency: int) -> None:
    """The loop a user writes by hand: read every row, send, write each answer as it comes."""
    import aiohttp

    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    endpoint = url + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    pending = iter(rows)
    with open(output, "w", encoding="utf-8") as out:

        async def worker(session: aiohttp.ClientSession) -> None:
            for row in pending:
                body = {"model": MODEL, "messages": [{"role": "user", "content": row["prompt"]}]}
                async with session.post(endpoint, data=json.dumps(body),
                                        headers=headers) as response:
                    raw = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}: {raw[:200]!r}")
                text = json.loads(raw)["choices"][0]["message"]["content"]
                out.write(json.dumps({"id": row["id"], "response": text}) + "\n")

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))


def timed(command: list[str], src: str | None = None, env: dict[str, str] | None = None
          ) -> tuple[float, float]:
    """Run ``command`` to its end: (wall seconds, CPU seconds of the child); ``src``: another
    checkout's ``src`` to import promptmill from; ``env``: variables to set."""
    env = {**os.environ, **(env or {}), **({"PYTHONPATH": src} if src else {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def free_port() -> int:
    """A loopback port free now: every run's server listens there (one address, as a user's
    server has), each run's a fresh process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def one_run(client: str, latency: float, concurrency: int, source: Path, folder: Path,
            src: str | None = None, *, port: int = 0, memory: str = "warm"
            ) -> tuple[float, float]:
    """One client process against a fresh server at ``port``: (wall seconds, CPU seconds).

    promptmill's user cache directory (its endpoint record, ``promptmill/endpoints.py``) is
    the benchmark's own, kept across runs (``memory`` "warm") or new for each run ("cold": a
    first job to the endpoint). Its requests are sampled (no temperature given), so the
    response cache is off, as in a user's run of the same command; no run answers from
    another's.
    """
    from promptmill.testing import serve_in_process  # here: the bare script imports none of it

    output = folder / f"{client}.jsonl"
    for stale in folder.glob(f"{client}.jsonl*"):  # the output and promptmill's store beside it
        stale.unlink()
    cache_home = folder / "cache-home"
    if memory == "cold":
        shutil.rmtree(cache_home, ignore_errors=True)
    with serve_in_process(latency=latency, port=port) as server:
        if client == "bare":
            command = [sys.executable, __file__, "--bare", server.url, str(source), str(output),
                       str(concurrency)]
        else:
            command = [sys.executable, "-m", "promptmill", "run", str(source), "-m",
                       f"http!{MODEL},api_base={server.url}", "-o", str(output),
                       "--max-concurrency", str(concurrency)]
        wall, cpu = timed(command, src, {"XDG_CACHE_HOME": str(cache_home)})
    with open(output, "rb") as handle, open(source, "rb") as given:
        lines, rows = sum(1 for _ in handle), sum(1 for _ in given)
    assert lines == rows, f"{client} wrote {lines} lines for {rows} rows"
    return wall, cpu


def run_setting(name: str, rows: int, repeat: int, before_src: str | None = None,
                memory: str = "warm") -> tuple[float, float]:
    """Interleaved rounds of one setting and size: medians of the paired ratios (with
    ``before_src``, each round also runs that checkout's promptmill, printed beside).

    ``memory`` "warm": a job of 100 rows to the same address first, as a user's earlier job
    (its endpoint record then holds whether answers carry limit headers); "cold": every
    promptmill run is a first job to the endpoint.
    """
    latency, concurrency = SETTINGS[name]
    by_wall: list[float] = []
    by_cpu: list[float] = []
    before_wall: list[float] = []
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pm-process-") as tmp:
        folder = Path(tmp)
        source = folder / "input.jsonl"
        if memory == "warm":
            write_input(source, 100)
            one_run("promptmill", latency, concurrency, source, folder, port=port)
        write_input(source, rows)
        run = functools.partial(one_run, port=port, memory=memory)
        for attempt in range(repeat):
            bare_wall, bare_cpu = run("bare", latency, concurrency, source, folder)
            if before_src:
                old_wall, old_cpu = run("promptmill", latency, concurrency, source, folder,
                                        before_src)
                before_wall.append(bare_wall / old_wall)
                print(f"  {name} {rows:,} run {attempt + 1}: before ({before_src}) "
                      f"{old_wall:.2f} s (CPU {old_cpu:.2f} s): {before_wall[-1]:.2f}x",
                      flush=True)
            pm_wall, pm_cpu = run("promptmill", latency, concurrency, source, folder)
            by_wall.append(bare_wall / pm_wall)
            by_cpu.append(bare_cpu / pm_cpu)
            print(f"  {name} {rows:,} run {attempt + 1}: bare {bare_wall:.2f} s "
                  f"({rows / bare_wall:,.0f} req/s, CPU {bare_cpu:.2f} s), promptmill "
                  f"{pm_wall:.2f} s ({rows / pm_wall:,.0f} req/s, CPU {pm_cpu:.2f} s): "
                  f"{by_wall[-1]:.2f}x", flush=True)
    if before_wall:
        print(f"  {name} {rows:,}: before {statistics.median(before_wall):.2f}x, this "
              f"checkout {statistics.median(by_wall):.2f}x (medians of pairs with the bare "
              "script)", flush=True)
    return statistics.median(by_wall), statistics.median(by_cpu)


def main(argv: list[str] | None = None) -> int:
    """Run the settings and sizes asked for; print the paired ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="input rows (repeatable; default 5000 and 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size (default 3)")
    parser.add_argument("--setting", choices=[*SETTINGS, "both"], default="both")
    parser.add_argument("--before-src", metavar="SRC",
                        help="another checkout's src: each round also runs its promptmill")
    parser.add_argument("--memory", choices=["warm", "cold"], default="warm",
                        help="warm (default): an earlier job to the same address first, as a "
                        "user's; cold: every promptmill run a first job to its endpoint")
    parser.add_argument("--bare", nargs=4, metavar=("URL", "INPUT", "OUTPUT", "CONCURRENCY"),
                        help=argparse.SUPPRESS)  # the bare script's own process
    args = parser.parse_args(argv)
    if args.bare:
        url, source, output, concurrency = args.bare
        asyncio.run(bare_script(url, Path(source), Path(output), int(concurrency)))
        return 0
    compile_package(args.before_src)  # the children run it as an installed copy does
    settings = list(SETTINGS) if args.setting == "both" else [args.setting]
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)
    results = []
    for name in settings:
        for rows in args.rows or [5000, 20000]:
            wall, cpu = run_setting(name, rows, args.repeat, args.before_src, args.memory)
            results.append((name, rows, wall, cpu))
    print("\nsetting  rows    promptmill/bare (wall clock)  (CPU time)  target")
    for name, rows, wall, cpu in results:
        verdict = "met" if wall >= TARGETS[name] else "NOT met"
        print(f"{name:8} {rows:<7,} {wall:>8.2f}x {cpu:>26.2f}x {TARGETS[name]:>8.1f}x  {verdict}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
