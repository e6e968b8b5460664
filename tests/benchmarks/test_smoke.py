"""Every benchmark script runs at tiny sizes (`--quick`) and reports the summary rows it should.

Nothing here asserts a timing: only that each script finishes, names its scenarios, and measures
numbers where it should (and says why where it cannot). Lightning is left out for speed; the
Lightning side goes through the same runner code as fulmen's.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from common import (  # noqa: E402
    DIFFERENCE,
    RATIO,
    SUMMARY_FILE_VARIABLE,
    VALUE,
    Row,
    format_summary,
    read_rows,
)

# The scenarios each script reports at --quick, in order.
EXPECTED_ROWS = {
    "bench_step_overhead.py": [
        "tiny MLP, per step, everything off",
        "tiny MLP, per step, defaults + self.log",
    ],
    "bench_log_overhead.py": ["cost of one self.log(prog_bar=True) per step, everything off"],
    "bench_compute_bound.py": [
        "compute-bound MLP 64x4 (batch 256), per step, defaults + self.log",
    ],
    "bench_import.py": [
        "import time (fresh process)",
        "heavy modules after import",
        "start-up to first optimizer step, defaults + self.log",
    ],
    "bench_eval_loops.py": [
        "validation loop, per batch, defaults",
        "predict loop, per batch, defaults, return_predictions=False",
        "predict RSS growth over 200 batches, return_predictions=False",
        "predict RSS growth over 200 batches, return_predictions=True",
    ],
    "bench_checkpoint.py": [
        "checkpoint save (hand: torch.save of the same dict)",
        "checkpoint save until on disk (hand: torch.save + fsync)",
        "checkpoint load (hand: torch.load)",
    ],
    "bench_peak_rss.py": [
        "peak RSS, 60-step run, everything off",
        "peak RSS, 60-step run, defaults + self.log",
    ],
    "bench_ddp.py": [
        "DDP, 2 CPU processes (gloo), per step, everything off",
        "DDP, 2 CPU processes (gloo), per step, defaults + self.log",
    ],
    "bench_cuda.py": [
        "CUDA small MLP, per step, everything off",
        "CUDA small MLP, per step, defaults + self.log",
        "CUDA medium MLP, per step, everything off",
        "CUDA medium MLP, per step, defaults + self.log",
        "CUDA syncs per step outside log flushes, small MLP, everything off",
        "CUDA syncs per step outside log flushes, small MLP, defaults + self.log",
    ],
}
# A row may lack a fulmen number only for one of these reasons, stated in its note.
EXCUSES = ("not available yet", "skipped: no CUDA")


def run_benchmark(script: str, tmp_path: Path, *args: str) -> tuple[str, list[Row]]:
    """Run one benchmark at tiny sizes; return its output and the summary rows it handed over."""
    summary = tmp_path / "summary.jsonl"
    env = {**os.environ, SUMMARY_FILE_VARIABLE: str(summary)}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--no-lightning", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout, read_rows(summary) if summary.exists() else []


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_every_benchmark_script_has_expected_rows() -> None:
    # A new bench_*.py must say here what it reports, or its smoke test would not exist.
    assert sorted(EXPECTED_ROWS) == sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))


@pytest.mark.parametrize("script", sorted(EXPECTED_ROWS))
def test_benchmark_runs_and_reports_its_rows(script: str, tmp_path: Path) -> None:
    output, rows = run_benchmark(script, tmp_path)
    assert [row.scenario for row in rows] == EXPECTED_ROWS[script]
    assert "| scenario | hand | fulmen | Lightning | fulmen vs hand | budget | met? |" in output
    for row in rows:
        assert row.lightning is None  # --no-lightning
        if row.fulmen is None:
            assert any(excuse in row.note for excuse in EXCUSES), row
            assert row.met is None
            continue
        assert is_number(row.fulmen), row
        assert is_number(row.fulmen_vs_hand), row
        if row.compare != VALUE:
            assert is_number(row.hand), row
        if row.budget is not None:
            assert row.met is (row.fulmen_vs_hand <= row.budget)
    if script == "bench_import.py":
        # Not a timing: `import fulmen` must not load tensorboard, yaml, rich, torch._dynamo, ...
        heavy = next(row for row in rows if row.scenario == "heavy modules after import")
        assert heavy.fulmen == 0, heavy.note


def test_cuda_benchmark_runs_its_code_on_the_cpu(tmp_path: Path) -> None:
    # Without a GPU the plain run only reports skipped rows; this runs every line on the CPU.
    output, rows = run_benchmark("bench_cuda.py", tmp_path, "--device", "cpu")
    assert [row.scenario for row in rows] == EXPECTED_ROWS["bench_cuda.py"]
    assert all(is_number(row.fulmen) for row in rows)
    assert "| run | per log-flush step | per other step | where (other steps) |" in output


def test_run_all_prints_one_summary_table_of_the_rows_benchmarks_hand_over(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run_all.py"),
            "--quick",
            "--no-lightning",
            "--only",
            "cuda",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = done.stdout.split("== summary: `python benchmarks/run_all.py --quick")[1]
    table = [line for line in summary.splitlines() if line.startswith("| CUDA")]
    assert [line.split(" | ")[0].lstrip("| ").split(" (")[0] for line in table] == EXPECTED_ROWS[
        "bench_cuda.py"
    ]


def test_summary_table_compares_with_the_hand_loop_and_checks_budgets(tmp_path: Path) -> None:
    rows = [
        Row("a", "µs/step", 100.0, 108.0, 180.0, RATIO, 1.10),
        Row("b", "s", 1.5, 1.7, None, DIFFERENCE, 0.15),
        Row("c", "", None, 0, 2, VALUE, 0, note="fulmen: none"),
        Row("d", "µs/step", 100.0, None, None, RATIO, 1.05, note="fulmen DDP: not available yet"),
    ]
    table = format_summary(rows).splitlines()
    assert (
        table[2]
        == "| a | 100 µs/step | 108 µs/step | 180 µs/step (1.800×) | 1.080× | ≤ 1.10× | yes |"
    )
    assert table[3] == "| b | 1.50 s | 1.70 s | — | +0.200 s | ≤ +0.150 s | **no** |"
    assert table[4] == "| c (fulmen: none) | — | 0 | 2 | 0 | ≤ 0 | yes |"
    assert table[5].endswith("| — | — | ≤ 1.05× | — |")
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row.__dict__) + "\n" for row in rows))
    assert read_rows(path) == rows
