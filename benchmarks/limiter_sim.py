"""The rate limiter on a fake clock: many jobs against every window kind, in seconds.

Runs ``tests/engine/test_limiter.py``'s ``simulate`` (the limiter driven by workers against
``promptmill.testing.limits``' provider, a loaded loop's stalls and the network's jitter
simulated, deterministic for a seed) over seeds and phases of the clock (where the
provider's windows fall when the job starts), and prints what was refused and what rate was
reached. Studies:

- ``learned``: headers hidden, quarter-second slices of 25 (100/s), 5 ms away, a tenth (then
  three tenths) of the loop's tenths of a second stalled: jobs over the fidelity suite's
  bounds (steady state refused >= 2%, or more refused than the 64 in flight at the first
  refusal plus 2%), and the worst steady state;
- ``headers``: headers sent, every window kind, three cells of latency, stalls and jitter:
  refused (max / mean) and the steady-state rate (min / mean);
- ``noise``: headers hidden, a real limit plus that share of accepted requests refused anyway
  (0-20%): the steady state's rate and refused share, mean and worst of four jobs a cell.

    python benchmarks/limiter_sim.py                     # all three
    PYTHONPATH=/path/to/older/checkout/src python benchmarks/limiter_sim.py --study headers
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from promptmill.testing import limits

RATE = 100


def _harness() -> ModuleType:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))
    return importlib.import_module("test_limiter")


harness = _harness()


@contextmanager
def clock_phase(phase: float) -> Iterator[None]:
    """The provider's windows as if the job began ``phase`` of a window past a window's start
    (``limits`` reads the wall clock's ``time.time`` to place them)."""
    real = time.time
    setattr(time, "time", lambda: phase)  # noqa: B010
    try:
        yield
    finally:
        setattr(time, "time", real)  # noqa: B010


def job(kind: str, *, headers: bool, seed: int, phase: float, latency: float, stalls: float,
        jitter: float, duration: float = 13.0, noise: float = 0.0) -> tuple[int, int, float, float]:
    """One simulated job: (refused, sent, steady-state refused share, steady-state rate)."""
    with clock_phase(phase):
        clock = harness.FakeClock()
        lim = harness.limiter(clock, slow_start=True)
        out = harness.simulate(
            lim, clock, limits.RateLimits(requests=RATE, window=1.0, kind=kind, quanta=4),
            duration=duration, headers=headers, workers=64, latency=latency, stalls=stalls,
            jitter=jitter, seed=seed, noise=noise)
    sent = len(out.accepted) + len(out.refused)
    return len(out.refused), sent, out.refused_share(start=2), out.steady_rate(2, duration)


def learned() -> None:
    # The fidelity suite's cell (a tenth of the tenths stalled), and a more loaded loop.
    for stalls, jitter, seeds in ((0.1, 0.001, 20), (0.3, 0.003, 10)):
        over = most = 0
        worst = 0.0
        for seed in range(seeds):
            for phase in (0.0, 0.3, 0.6, 0.9):
                refused, sent, steady, _ = job("quantized", headers=False, seed=seed,
                                               phase=phase, latency=0.005, stalls=stalls,
                                               jitter=jitter)
                most, worst = max(most, refused), max(worst, steady)
                over += steady >= 0.02 or refused > 64 + 0.02 * sent
        print(f"learned (headers hidden, quantized, {stalls:.0%} of tenths stalled, jitter "
              f"{jitter * 1000:g} ms, {seeds * 4} jobs): {over} over the bounds, at most {most} "
              f"refused in a job, steady state refused at most {worst:.2%}")


def headers() -> None:
    cells = ((0.005, 0.3, 0.01), (0.005, 0.5, 0.03), (0.2, 0.1, 0.01))
    for latency, stalls, jitter in cells:
        print(f"headers, {latency * 1000:g} ms away, {stalls:.0%} of tenths stalled, "
              f"jitter {jitter * 1000:g} ms (15 jobs a kind):")
        for kind in limits.WINDOW_KINDS:
            runs = [job(kind, headers=True, seed=seed, phase=phase, latency=latency,
                        stalls=stalls, jitter=jitter)
                    for seed in range(5) for phase in (0.0, 0.45, 0.9)]
            refused = [r[0] for r in runs]
            rates = [r[3] for r in runs]
            print(f"  {kind:9s} refused max {max(refused)} mean {sum(refused) / len(runs):.1f};"
                  f" steady state min {min(rates):.1f}/s mean {sum(rates) / len(runs):.1f}/s")


def noise() -> None:
    print("noise (headers hidden, 100/s, 10 ms away; 4 jobs a cell: seeds 1-2, phases 0 and "
          "0.5); ideal: 100 x (1 - noise)/s accepted, noise refused")
    for share in (0.0, 0.02, 0.05, 0.1, 0.2):
        for kind in ("bucket", "fixed", "quantized"):
            runs = [job(kind, headers=False, seed=seed, phase=phase, latency=0.01, stalls=0.0,
                        jitter=0.0, duration=20, noise=share)
                    for seed in (1, 2) for phase in (0.0, 0.5)]
            rates = [run[3] for run in runs]
            refused = [run[2] for run in runs]
            print(f"  noise {share:4.0%} {kind:9s} steady state {sum(rates) / len(runs):6.1f}/s "
                  f"(min {min(rates):5.1f}), refused {sum(refused) / len(runs):6.2%} "
                  f"(max {max(refused):6.2%})")


STUDIES = {"learned": learned, "headers": headers, "noise": noise}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=[*STUDIES, "all"], default="all")
    args = parser.parse_args(argv)
    for name, study in STUDIES.items():
        if args.study in (name, "all"):
            study()
    return 0


if __name__ == "__main__":
    sys.exit(main())
