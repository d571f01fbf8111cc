"""The scale benchmark, run small: memory stays flat while sending, a resume starts at once,
and a batch-mode job's memory stays within 2x of the online job's.

``benchmarks/scale.py`` runs a million rows; here 20,000 (and a resume of 100,000) through the
same script, so that the script keeps working and its verdicts (peak RSS, RSS growth while
sending, time to the first request of a resumed job, batch vs online peak RSS) hold at a size
CI can afford.
The verdicts scale with the run: RSS may grow by a fixed 4 MB plus 16 bytes per request sent
(a leak of a few hundred bytes a request fails), and the first request of a resumed job may
come 4 us per done row later than a job with none done (an O(n) resume fails).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def test_scale_benchmark_verdicts_at_20k_rows(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "20000", "--resume-rows", "100000",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=280,
    )
    print(result.stdout)
    verdicts = [line for line in result.stdout.splitlines() if "VERDICT" in line]
    assert len(verdicts) == 4, result.stdout + result.stderr
    assert all(line.endswith("PASS") for line in verdicts), result.stdout
    assert result.returncode == 0, result.stderr
    # The verdicts are the scaled ones, judged over the requests and rows of this run.
    assert "bytes a request (limit 4 MB + 16 B x " in verdicts[1]
    assert "with 99,000 rows done" in verdicts[2] and "+ 4 us x 99,000 = " in verdicts[2]
    # The job's own output is complete: one line per input row.
    assert len((tmp_path / "full.jsonl").read_bytes().splitlines()) == 20_000
    assert len((tmp_path / "resume.jsonl").read_bytes().splitlines()) == 100_000
    # The batch job's export is the online job's, row for row (but for the model identifier:
    # each run had its own server, on its own port).
    def rows(name: str) -> list[dict[str, object]]:
        lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "model"} for line in lines]

    assert rows("batch.jsonl") == rows("full.jsonl")
