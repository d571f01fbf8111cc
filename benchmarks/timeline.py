"""Where a whole ``promptmill run`` process spends its time, phase by phase, beside the bare script.

Issue 15's whole-process comparison (``benchmarks/process.py``) says how long each client
takes from spawn to exit; this says where. Each client runs as its own process, as
``process.py`` runs it, with a small probe in front that stamps the clock at phase bounds
(the interpreter's start is the spawn; imports are timed by wrapping ``__import__``, garbage
collection by ``gc.callbacks``, both subtracted from the phase they fall in and shown on
their own; the first POST and the last answer by wrapping the client's request method:
aiohttp's ``ClientSession._request`` for the bare script, ``HTTPClient.request`` for promptmill).
The probe's own cost is a few µs a request on both sides alike.

    python benchmarks/timeline.py --rows 5000 --repeat 5            # medians of 5, ms
    python benchmarks/timeline.py --rows 5000 --callgrind           # + instructions, whole client

``--callgrind`` runs each client once more, unprobed, under valgrind (client process only; the
test server is not counted) and prints its instruction total.
"""

from __future__ import annotations

import os
import sys
import time

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--child":
    _BORN = time.time()  # the probe's first line: the interpreter is up


def _probe(client: str, stamps_path: str, argv: list[str]) -> None:
    """Run one client (``bare`` or ``promptmill``) with phase stamps written to ``stamps_path``."""
    import atexit
    import builtins
    import gc
    import json

    stamps: dict[str, float] = {"born": _BORN}
    spent = {"import": 0.0, "gc": 0.0}
    by_phase: dict[str, dict[str, float]] = {}
    phase = ["imports"]
    depth = [0]
    real_import = builtins.__import__

    def timed_import(*args: object, **kwargs: object) -> object:
        depth[0] += 1
        start = time.perf_counter()
        try:
            return real_import(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                took = time.perf_counter() - start
                spent["import"] += took
                by_phase.setdefault(phase[0], {"import": 0.0, "gc": 0.0})["import"] += took

    gc_start = [0.0]

    def on_gc(event: str, info: dict[str, int]) -> None:
        if event == "start":
            gc_start[0] = time.perf_counter()
        else:
            took = time.perf_counter() - gc_start[0]
            spent["gc"] += took
            by_phase.setdefault(phase[0], {"import": 0.0, "gc": 0.0})["gc"] += took

    def stamp(name: str, next_phase: str) -> None:
        stamps[name] = time.time()
        phase[0] = next_phase

    def write() -> None:  # registered first, so it runs after every other atexit handler
        stamps["atexit_done"] = time.time()
        with open(stamps_path, "w", encoding="utf-8") as handle:
            json.dump({"stamps": stamps, "by_phase": by_phase}, handle)

    atexit.register(write)
    builtins.__import__ = timed_import
    gc.callbacks.append(on_gc)

    # The first POST and the last answer: aiohttp's session sends the bare script's requests,
    # promptmill's own client (promptmill.httpclient) promptmill's.
    owner: type
    if client == "bare":
        import aiohttp

        owner, name = aiohttp.ClientSession, "_request"
    else:
        from promptmill import httpclient

        owner, name = httpclient.HTTPClient, "request"
    real_request = getattr(owner, name)
    concurrency = int(argv[argv.index("--max-concurrency") + 1] if client == "promptmill"
                      else argv[3])
    flight = [0, 0]  # requests in flight now, POSTs sent so far

    async def probed_request(self: object, method: str, *args: object, **kwargs: object) -> object:
        if method == "POST":
            flight[0] += 1
            flight[1] += 1
            if flight[1] == 1:
                stamp("first_post", "dispatch")
            elif flight[1] == 2:
                stamps["second_post"] = time.time()
            if flight[0] == concurrency and "full" not in stamps:
                stamps["full"] = time.time()
            stamps["last_post"] = time.time()
        try:
            return await real_request(self, method, *args, **kwargs)
        finally:
            if method == "POST":
                flight[0] -= 1
                stamps["last_answer"] = time.time()

    setattr(owner, name, probed_request)

    if client == "bare":
        import asyncio
        from pathlib import Path

        import process

        stamp("imported", "reading")
        url, source, output, concurrency = argv
        asyncio.run(process.bare_script(url, Path(source), Path(output), int(concurrency)))
        stamp("loop_closed", "exit")
        return

    from promptmill import eventloop
    from promptmill.cli.app import main
    from promptmill.job import Job

    stamp("imported", "cli")

    def around(name: str, before: str, after: str, next_phase: str, is_async: bool = False
               ) -> None:
        real = getattr(Job, name)
        if is_async:
            async def wrapped_async(*args: object, **kwargs: object) -> object:
                stamp(before, phase[0])
                try:
                    return await real(*args, **kwargs)
                finally:
                    stamp(after, next_phase)
            setattr(Job, name, wrapped_async)
            return

        def wrapped(*args: object, **kwargs: object) -> object:
            stamp(before, phase[0])
            try:
                return real(*args, **kwargs)
            finally:
                stamp(after, next_phase)
        setattr(Job, name, wrapped)

    around("open", "open_start", "store_open", "planning")
    around("plan", "plan_start", "planned", "to first POST")
    around("dispatch", "dispatch_start", "dispatched", "after dispatch", is_async=True)
    around("export", "export_start", "exported", "close")
    around("close", "close_start", "closed", "loop shutdown")
    real_run = eventloop.run

    def probed_run(coro: object) -> object:
        stamp("loop_start", "open")
        try:
            return real_run(coro)  # type: ignore[arg-type]
        finally:
            stamp("loop_closed", "exit")

    eventloop.run = probed_run  # type: ignore[assignment]
    sys.argv = ["promptmill", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    stamp("main_returned", "exit")


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--child":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _probe(sys.argv[2], sys.argv[3], sys.argv[4:])
    sys.exit(0)


import argparse  # noqa: E402  (the child above must start with as little as possible)
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from as_installed import compile_package  # noqa: E402
from process import MODEL, SETTINGS, write_input  # noqa: E402

PROCESS = str(Path(__file__).with_name("process.py"))
# (label, stamp it ends at) in order; a phase starts where the one before it ended.
PM_PHASES = [("interpreter start", "born"), ("imports (probe, cli, job)", "imported"),
             ("cli: parse, spec, generator", "loop_start"), ("loop start, checks", "open_start"),
             ("store open/create, fingerprint", "store_open"), ("reading and planning", "planned"),
             ("to the first POST", "first_post"), ("first POST to last answer", "last_answer"),
             ("last answer to dispatch's end", "dispatched"), ("to export", "export_start"),
             ("export", "exported"), ("store close", "closed"), ("loop shutdown", "loop_closed"),
             ("summary, main's return", "main_returned"), ("atexit", "atexit_done"),
             ("interpreter exit", "exit")]
BARE_PHASES = [("interpreter start", "born"), ("imports (probe, process.py)", "imported"),
               ("reading, to the first POST", "first_post"),
               ("first POST to last answer", "last_answer"), ("loop shutdown", "loop_closed"),
               ("atexit", "atexit_done"), ("interpreter exit", "exit")]


def client_argv(client: str, url: str, source: Path, output: Path, concurrency: int
                ) -> list[str]:
    """The arguments ``process.py`` gives each client."""
    if client == "bare":
        return [url, str(source), str(output), str(concurrency)]
    return ["run", str(source), "-m", f"http!{MODEL},api_base={url}", "-o", str(output),
            "--max-concurrency", str(concurrency)]


def probed_run(client: str, latency: float, concurrency: int, source: Path, folder: Path
               ) -> dict[str, float]:
    """One probed client process against a fresh server: ms per phase (plus imports, gc)."""
    from promptmill.testing import serve_in_process

    output, stamps_path = folder / f"{client}.jsonl", folder / f"{client}.stamps.json"
    for stale in folder.glob(f"{client}.jsonl*"):
        stale.unlink()
    with serve_in_process(latency=latency) as server:
        command = [sys.executable, __file__, "--child", client, str(stamps_path),
                   *client_argv(client, server.url, source, output, concurrency)]
        spawned = time.time()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{client} failed ({done.returncode}): {done.stderr[-800:]}")
    recorded = json.loads(stamps_path.read_text(encoding="utf-8"))
    stamps = {"spawn": spawned, **recorded["stamps"], "exit": ended}
    phases = PM_PHASES if client == "promptmill" else BARE_PHASES
    result: dict[str, float] = {}
    previous = stamps["spawn"]
    for label, name in phases:
        result[label] = (stamps[name] - previous) * 1000
        previous = stamps[name]
    result["total"] = (ended - spawned) * 1000
    # Within "first POST to last answer": the wait before the second request (slow start's
    # probe, promptmill only), the ramp to every worker in flight, the tail after the last send.
    result["first POST to the second"] = (stamps["second_post"] - stamps["first_post"]) * 1000
    if "full" in stamps:
        result["second POST to all in flight"] = (stamps["full"] - stamps["second_post"]) * 1000
    result["last POST sent to last answer"] = (stamps["last_answer"] - stamps["last_post"]) * 1000
    for kind in ("import", "gc"):
        result[f"of which {kind}"] = 1000 * sum(p[kind] for p in recorded["by_phase"].values())
    result["import after the imports phase"] = 1000 * sum(
        p["import"] for name, p in recorded["by_phase"].items() if name != "imports")
    for name in ("imports", "planning", "dispatch"):  # exit's comes after the stamps are written
        result[f"gc in {name}"] = 1000 * recorded["by_phase"].get(name, {"gc": 0.0})["gc"]
    return result


def instructions(client: str, latency: float, concurrency: int, source: Path, folder: Path
                 ) -> int:
    """Instructions of one unprobed client process under callgrind (the server uncounted)."""
    from promptmill.testing import serve_in_process

    output, out = folder / f"{client}.jsonl", folder / f"callgrind.{client}.out"
    for stale in folder.glob(f"{client}.jsonl*"):
        stale.unlink()
    with serve_in_process(latency=latency) as server:
        if client == "bare":
            program = [PROCESS, "--bare", *client_argv(client, server.url, source, output,
                                                      concurrency)]
        else:
            program = ["-m", "promptmill",
                       *client_argv(client, server.url, source, output, concurrency)]
        done = subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=no",
                               f"--callgrind-out-file={out}", sys.executable, *program],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"valgrind {client} failed: {done.stderr[-800:]}")
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(encoding="utf-8"), re.M)
    if found is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    """Interleaved probed runs of both clients; the median of each phase, in ms."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--setting", choices=list(SETTINGS), default="zero")
    parser.add_argument("--callgrind", action="store_true",
                        help="also count each whole client's instructions (valgrind)")
    parser.add_argument("--keep", type=Path,
                        help="copy callgrind's output files here (for callgrind_annotate)")
    args = parser.parse_args(argv)
    compile_package()
    latency, concurrency = SETTINGS[args.setting]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows, {args.setting}, "
          f"median of {args.repeat}", flush=True)
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "promptmill": []}
    if args.repeat == 0 and not args.callgrind:
        parser.error("--repeat 0 needs --callgrind")
    with tempfile.TemporaryDirectory(prefix="pm-timeline-") as tmp:
        folder = Path(tmp)
        source = folder / "input.jsonl"
        write_input(source, args.rows)
        for _ in range(args.repeat):
            for client in runs:
                runs[client].append(probed_run(client, latency, concurrency, source, folder))
        for client, results in runs.items():
            if not results:
                continue
            print(f"\n{client}:")
            for label in results[0]:
                values = [r[label] for r in results]
                print(f"  {label:34} {statistics.median(values):8.1f} ms  "
                      f"(min {min(values):.1f})")
        if args.callgrind:
            print()
            for client in runs:
                count = instructions(client, latency, concurrency, source, folder)
                print(f"{client}: {count / 1e9:.3f} G instructions (whole client process)",
                      flush=True)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(folder / f"callgrind.{client}.out", args.keep)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
