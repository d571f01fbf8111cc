"""Instructions per request under valgrind: promptmill's dispatch against the bare aiohttp loop.

Instruction counts are exact and do not move with the machine's load, so they settle what a
loaded machine's req/s cannot: how much more work promptmill's client does per request than
a minimal one. The test server runs in its own process, not under valgrind; each client runs
in a child process under ``valgrind --tool=callgrind`` (no cache simulation), which dumps its
counts at phase boundaries (``callgrind_control --dump``, taken while the client waits idle):

- ``bare``: ``benchmarks/dispatch.py``'s bare loop (one pooled aiohttp session, the same
  bodies, the answer parsed), a warm-up run, then the measured run of N requests;
- ``promptmill``: a warm-up job, then one job of N rows through the same steps as
  ``promptmill.api.execute``, each phase dumped apart: open and plan, dispatch, export.

Printed: instructions per request of each phase, the dispatch ratio (the target of the
dispatch benchmark, at least the bare loop's rate at zero latency (issue 15), is read here as
promptmill's instructions per request at most the bare loop's; VERDICT), and
where the instructions go, by shared object (the interpreter running Python code, SQLite,
the json C module, aiohttp's C parts, libc...).

    python benchmarks/instructions.py                  # 2,000 requests each (some minutes)
    python benchmarks/instructions.py --requests 300   # quick
    python benchmarks/instructions.py --cache          # the response cache's cost
    python benchmarks/instructions.py --cache --loop-thread  # ... on the event loop's thread
    PROMPTMILL_EVENT_LOOP=asyncio python benchmarks/instructions.py  # promptmill on asyncio's loop

promptmill's jobs run on the loop ``promptmill.eventloop`` starts (uvloop where it installs),
the bare loop on asyncio's standard loop, as users write it.

``--cache`` measures, instead, promptmill's dispatch three times at temperature 0: with the
response cache off; on with a fresh cache (a first run: the job's identity never written,
so nothing is looked up, and every answer written); and on with a cache already holding
another job's answers of the same identity (every request looked up, missed, and written).
It prints what the cache adds to the dispatch phase's instructions in both (target: at
most 3%). Every thread of the client is counted, unless ``--loop-thread``: then the event
loop's alone (the cache's copies into its file run on a thread of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dispatch import bare_loop, write_input  # benchmarks/dispatch.py, beside this file

from promptmill import eventloop
from promptmill.engine.dispatch import EngineConfig, EngineStats
from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.testing import serve_in_process

CONCURRENCY = 64
WARM_UP = 200
TARGET_RATIO = 1.0  # promptmill / bare, in requests per second (dispatch benchmark's target)
CACHE_TARGET = 0.03  # the response cache's cost on dispatch instructions, at most
# Shared objects, by a part of their path (first match wins), grouped for the breakdown.
OBJECT_GROUPS = (
    ("sqlite", "SQLite (library and module)"),
    ("/_json.", "json C module"),
    ("/aiohttp/", "aiohttp C parts (HTTP parser...)"),
    ("/httptools/", "httptools (llhttp parser)"),
    ("/uvloop/", "uvloop (event loop, libuv)"),
    ("/orjson/", "orjson"),
    ("/multidict/", "multidict, yarl, propcache, frozenlist"),
    ("/yarl/", "multidict, yarl, propcache, frozenlist"),
    ("/propcache/", "multidict, yarl, propcache, frozenlist"),
    ("/frozenlist/", "multidict, yarl, propcache, frozenlist"),
    ("/libc.so", "libc (malloc, memcpy, syscalls)"),
    ("/bin/python", "interpreter (Python code, objects)"),
    ("/libpython", "interpreter (Python code, objects)"),
)


# -- the child: a client under valgrind ------------------------------------------------------


def dump(label: str, folder: Path) -> None:
    """Ask callgrind to dump the counts so far, and wait (idle) until it has."""
    before = set(glob.glob(str(folder / "callgrind.*")))
    subprocess.run(["callgrind_control", f"--dump={label}", str(os.getpid())],
                   capture_output=True, check=False)
    deadline = time.monotonic() + 120
    while set(glob.glob(str(folder / "callgrind.*"))) == before:
        if time.monotonic() > deadline:
            raise RuntimeError("callgrind did not dump: is this running under valgrind?")
        time.sleep(0.05)


def run_bare(url: str, requests: int, folder: Path) -> None:
    """The bare loop: warm up, dump, the measured run, dump."""
    asyncio.run(bare_loop(url, WARM_UP, CONCURRENCY))
    gc.collect()  # as before promptmill's measured job
    dump("warm-up", folder)
    asyncio.run(bare_loop(url, requests, CONCURRENCY))
    dump("dispatch", folder)


def run_promptmill(url: str, requests: int, folder: Path, cache: str | None = None) -> None:
    """A warm-up job, then a job of ``requests`` rows with each phase dumped apart.

    ``cache`` ("off", "on", "seen"): temperature-0 jobs with the response cache off, on (a
    fresh file each), or on in one file, the warm-up's answers to other prompts in it when
    the measured job starts; None: the plain, sampled job.
    """
    config = EngineConfig(max_concurrency=CONCURRENCY)
    model = f"http!test-model,api_base={url}" + (",temperature=0" if cache else "")
    if cache in ("on", "seen"):
        # The cache writes every 4,096 entries or 2 s. Under callgrind the client runs some
        # 100 times slower, so 2 s would mean a write every few dozen requests, where a job
        # at full speed (thousands a second) writes by count: measure that.
        import promptmill.jobcache

        promptmill.jobcache._WRITE_INTERVAL_S = float("inf")
    for rows, name in ((WARM_UP, "warm-up"), (requests, "measured")):
        source = folder / f"{name}.jsonl"
        seen = cache == "seen"
        # Prompts the measured job does not ask, when the warm-up's answers stay in its cache.
        write_input(source, rows, first=requests if seen and name == "warm-up" else 0)
        spec = JobSpec(input=source, output=folder / f"{name}.out.jsonl",
                       generator=get_generator(model), cache="on" if seen else cache or "auto",
                       # Each job's own file (all misses), or one file (all misses, looked up).
                       cache_path=folder / f"{'seen' if seen else name}.cache.sqlite")
        if name == "measured":
            # A full collection of the objects start-up left lands in the measured phase or
            # not as allocation counts happen to fall (+15k a request when it did: one code
            # change moving another's count): every mode starts measuring with none due.
            gc.collect()
            dump("warm-up", folder)
        job = Job.open(spec, new_job=True)
        try:
            job.plan()
            if name == "measured":
                dump("plan", folder)
            # On the loop a user's job runs on (uvloop where it installs: promptmill.eventloop).
            stats = eventloop.run(job.dispatch(config, EngineStats()))
            assert stats.done == rows, stats
            if name == "measured":
                dump("dispatch", folder)
            assert job.export() == rows
        finally:
            job.close()
    dump("export", folder)


# -- the parent: server, valgrind, report -----------------------------------------------------


# --loop-thread: callgrind counts each thread apart, and only the main thread (the event
# loop's, callgrind's thread 1) is read: the response cache copies answers on a thread of
# its own, beside the loop.
LOOP_THREAD_ONLY = False


def dumps_by_label(folder: Path) -> dict[str, Path]:
    """Each dump file of a callgrind run, by the label it was dumped with."""
    found: dict[str, Path] = {}
    for path in glob.glob(str(folder / "callgrind.*")):
        thread = re.search(r"-(\d+)$", path)
        if LOOP_THREAD_ONLY and thread is not None and int(thread.group(1)) != 1:
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("desc: Trigger:"):
                    found[line.split("Trigger:", 1)[1].strip().removeprefix("dump ")] = Path(path)
                    break
    return found


def total_instructions(path: Path) -> int:
    """The instructions a dump counted (its ``totals:`` line)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def by_object(path: Path) -> dict[str, int]:
    """Instructions of one dump by shared object group: the self cost of each function.

    Read from the callgrind file itself: a cost line counts for the object of the function
    it is in, except the line right after ``calls=``, which is a call's inclusive cost.
    """
    names: dict[str, str] = {}  # callgrind's name compression: "(3)" -> the object's path
    groups: dict[str, int] = defaultdict(int)
    current = ""
    after_call = False
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(("ob=", "cob=")):
                spec = line.split("=", 1)[1].strip()
                found = re.match(r"\((\d+)\)\s*(.*)", spec)
                name = spec
                if found:
                    name = found.group(2) or names.get(found.group(1), "")
                    names.setdefault(found.group(1), found.group(2))
                if line.startswith("ob="):
                    current = name
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if after_call:
                    after_call = False
                    continue
                group = next((g for part, g in OBJECT_GROUPS if part in current), "other")
                groups[group] += int(line.split()[-1])
    return dict(groups)


def measure(client: str, url: str, requests: int, folder: Path) -> dict[str, Path]:
    """Run one client under callgrind; its dumps by label."""
    folder.mkdir(parents=True, exist_ok=True)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.%p",
               *(["--separate-threads=yes"] if LOOP_THREAD_ONLY else []),
               sys.executable, __file__, "--client", client, "--url", url,
               "--requests", str(requests), "--folder", str(folder)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{client} under valgrind failed:\n{done.stderr[-3000:]}")
    print(f"  {client}: {time.monotonic() - started:.0f}s under valgrind", flush=True)
    return dumps_by_label(folder)


def main(argv: list[str] | None = None) -> int:
    """Measure both clients and print the counts, the ratio, the verdict and the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests")
    parser.add_argument("--client", choices=["bare", "promptmill", "cache-off", "cache-on",
                                             "cache-seen"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--cache", action="store_true",
                        help="also measure the response cache's cost on dispatch")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--loop-thread", action="store_true",
                        help="count the event loop's thread only (not the cache's copies)")
    args = parser.parse_args(argv)
    global LOOP_THREAD_ONLY
    LOOP_THREAD_ONLY = args.loop_thread
    if args.client:  # the child, under valgrind
        if args.client == "bare":
            run_bare(args.url, args.requests, args.folder)
        else:
            cache = None if args.client == "promptmill" else args.client.split("-")[1]
            run_promptmill(args.url, args.requests, args.folder, cache)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    n = args.requests
    loop = "uvloop" if eventloop.uses_uvloop() else "asyncio"
    print(f"instructions per request under callgrind: {n:,} requests, {CONCURRENCY} in flight, "
          f"zero latency, Python {sys.version.split()[0]}; client process only; promptmill on "
          f"{loop}'s loop")
    if args.cache:
        return measure_cache(n)
    with tempfile.TemporaryDirectory(prefix="pm-instructions-") as scratch, \
            serve_in_process() as server:
        bare = measure("bare", server.url, n, Path(scratch) / "bare")
        ours = measure("promptmill", server.url, n, Path(scratch) / "promptmill")
        per = {label: total_instructions(path) / n for label, path in ours.items()
               if label in ("plan", "dispatch", "export")}
        bare_per = total_instructions(bare["dispatch"]) / n
        ratio = bare_per / per["dispatch"]
        print(f"  bare aiohttp loop:     {bare_per / 1000:7.0f}k instructions a request")
        print(f"  promptmill dispatch:   {per['dispatch'] / 1000:7.0f}k "
              f"({(per['dispatch'] - bare_per) / 1000:+.0f}k beside the bare loop)")
        print(f"  promptmill planning:   {per['plan'] / 1000:7.0f}k a row (open, read, "
              "render, check, plan)")
        print(f"  promptmill export:     {per['export'] / 1000:7.0f}k a row")
        print(f"  VERDICT client-bound ratio bare/promptmill dispatch {ratio:.2f} (target >= "
              f"{TARGET_RATIO}): {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
        bare_groups = by_object(bare["dispatch"])
        our_groups = by_object(ours["dispatch"])
    print("  where a request's instructions go (k, dispatch phase):")
    print(f"    {'shared object':42s}{'bare':>8s}{'promptmill':>12s}{'extra':>8s}")
    for name in sorted(set(bare_groups) | set(our_groups),
                       key=lambda g: -our_groups.get(g, 0)):
        b, o = bare_groups.get(name, 0) / n / 1000, our_groups.get(name, 0) / n / 1000
        print(f"    {name:42s}{b:8.0f}{o:12.0f}{o - b:+8.0f}")
    return 0 if ratio >= TARGET_RATIO else 1


def measure_cache(n: int) -> int:
    """The response cache's cost: temperature-0 dispatch with it off, then on (all misses):
    a first run of its identity, and one whose identity the cache holds."""
    clients = ("cache-off", "cache-on", "cache-seen")
    with tempfile.TemporaryDirectory(prefix="pm-instructions-") as scratch, \
            serve_in_process() as server:
        runs = {client: measure(client, server.url, n, Path(scratch) / client)
                for client in clients}
        per = {c: total_instructions(runs[c]["dispatch"]) / n for c in clients}
        groups = {c: by_object(runs[c]["dispatch"]) for c in runs}
    off = per["cache-off"]
    print(f"  temperature 0, cache off: {off / 1000:7.0f}k instructions a request")
    worst = 0.0
    for client, what in (("cache-on", "a first run: nothing looked up, every answer written"),
                         ("cache-seen", "its identity held: every request looked up, "
                          "missed, written")):
        on = per[client]
        cost = on / off - 1
        worst = max(worst, cost)
        print(f"  cache on, {what}: {on / 1000:7.0f}k ({(on - off) / 1000:+.1f}k, "
              f"{cost:+.1%})")
        for name in sorted(set(groups["cache-off"]) | set(groups[client]),
                           key=lambda g: -groups[client].get(g, 0)):
            a, b = (groups[c].get(name, 0) / n / 1000 for c in ("cache-off", client))
            print(f"    {name:42s}{a:8.1f}{b:10.1f}{b - a:+8.1f}")
    ok = worst <= CACHE_TARGET
    print(f"  VERDICT response cache cost on dispatch, the worse of the two {worst:+.1%} "
          f"(target <= {CACHE_TARGET:.0%}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
