"""Shared pieces of the benchmarks: the checkout's fulmen, quiet runs, statistics, the tables.

Every benchmark ends by calling `report(rows)`: it prints the benchmark's rows of the summary
table (scenario, hand, fulmen, Lightning, fulmen vs hand, budget, met?) and, when `run_all.py`
started it, also appends them as JSON lines to the file named by `$BENCH_SUMMARY_FILE`, from
which `run_all.py` prints one table for all benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import logging
import os
import platform
import resource
import statistics
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SUMMARY_FILE_VARIABLE = "BENCH_SUMMARY_FILE"

# Measure the fulmen of this checkout, not whatever copy happens to be installed.
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))


def checkout_environment() -> dict[str, str]:
    """Return `os.environ` with this checkout's `src/` first on PYTHONPATH, for child processes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def lightning_available() -> bool:
    """Tell whether the `pytorch_lightning` oracle is installed (without importing it)."""
    return importlib.util.find_spec("pytorch_lightning") is not None


def use_lightning(args: argparse.Namespace) -> bool:
    """Tell whether this run includes Lightning: installed, and not `--no-lightning`."""
    return lightning_available() and not args.no_lightning


def framework_modules(args: argparse.Namespace) -> list[str]:
    """Name the framework modules this run measures, for `silence_frameworks`."""
    return ["fulmen"] + (["pytorch_lightning"] if use_lightning(args) else [])


def base_parser(description: str) -> argparse.ArgumentParser:
    """Build the argument parser every benchmark shares: `--quick` and `--no-lightning`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--no-lightning", action="store_true", help="skip the Lightning runs")
    return parser


def silence_frameworks(*modules: str) -> None:
    """Import the framework `modules` and drop their info lines and warnings.

    Lightning sets its loggers' levels when it is imported, so the levels are set after. A
    process that measures one framework names only that one, so the other is never loaded.
    """
    warnings.filterwarnings("ignore")
    for module in modules:
        importlib.import_module(module)
    for name in ("fulmen", "pytorch_lightning", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def output_to_devnull() -> Iterator[None]:
    """Send stdout and stderr to /dev/null: progress bars still format, but no terminal waits."""
    with open(os.devnull, "w") as sink:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield


def collect_garbage() -> None:
    """Start each run from the same heap, so one run's garbage is not collected in the next."""
    gc.collect()


def rss_mb() -> float:
    """Return this process's resident set size now, in MB (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def machine_description() -> str:
    """Describe the CPU, Python, torch and framework versions in one line."""
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    parts = [
        f"{cpu} ({os.cpu_count()} logical CPUs)",
        f"Python {platform.python_version()}",
        f"torch {torch.__version__} ({torch.get_num_threads()} thread)",
    ]
    import fulmen

    parts.append(f"fulmen from {Path(fulmen.__file__).parent}")
    lightning = sys.modules.get("pytorch_lightning")
    if lightning is not None:
        parts.append(f"pytorch_lightning {lightning.__version__}")
    return "; ".join(parts)


@dataclass
class Samples:
    """One measurement of one scenario, one value per repetition (µs per step unless told)."""

    name: str
    description: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        """The range of the values, as `min–max`."""
        return f"{fmt(min(self.values))}–{fmt(max(self.values))}"


def fmt(value: float) -> str:
    """Format a measured value with as many digits as its size deserves."""
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def paired_ratio(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Return the median of the per-repetition ratios `values[i] / baseline[i]`.

    The repetitions are interleaved, so repetition i of every scenario saw the same state of a
    shared machine: the ratio within a repetition cancels most of its drift.
    """
    return statistics.median(v / b for v, b in zip(values, baseline))


def format_table(rows: Sequence[Samples], baseline: Samples, unit: str = "µs/step") -> str:
    """Render times, overhead over `baseline` and ratios as a Markdown table.

    Overhead is given twice: between medians, and between minimums. On a shared machine the
    minimum is the run that other processes disturbed least, so it is the steadier estimate.
    The last column is the median of the per-repetition ratios (see `paired_ratio`).
    """
    lines = [
        f"| scenario | median {unit} | min–max {unit} | overhead (median) "
        "| overhead (min) | ratio (median) | ratio (paired) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row is baseline:
            by_median = by_min = "—"
        else:
            by_median = f"{row.median - baseline.median:+.{_digits(row.median)}f}"
            by_min = f"{min(row.values) - min(baseline.values):+.{_digits(row.median)}f}"
        ratio = row.median / baseline.median
        paired = paired_ratio(row.values, baseline.values)
        lines.append(
            f"| {row.name} | {fmt(row.median)} | {row.spread} | {by_median} | {by_min} "
            f"| {ratio:.3f}× | {paired:.3f}× |"
        )
    return "\n".join(lines)


def _digits(value: float) -> int:
    return 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2


# ------------------------------------------------------------------------- the summary table

# How a row compares fulmen with the hand-written baseline, and what its budget bounds.
RATIO, DIFFERENCE, VALUE = "ratio", "difference", "value"


@dataclass
class Row:
    """One line of the summary table: one scenario measured by hand, with fulmen and Lightning.

    `compare` says what the "fulmen vs hand" column holds: `ratio` (fulmen / hand: the median of
    per-repetition ratios when the runs were paired), `difference` (fulmen − hand) or `value`
    (fulmen's own value, for counts). The budget bounds that number from above; `met` is None
    when there is no budget or no fulmen value.
    """

    scenario: str
    unit: str
    hand: float | None
    fulmen: float | None
    lightning: float | None = None
    compare: str = RATIO
    budget: float | None = None
    fulmen_vs_hand: float | None = None
    lightning_vs_hand: float | None = None
    note: str = ""
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.compare not in (RATIO, DIFFERENCE, VALUE):
            raise ValueError(f"Row(compare={self.compare!r}): expected ratio, difference or value")
        if self.fulmen_vs_hand is None:
            self.fulmen_vs_hand = self._versus(self.fulmen)
        if self.lightning_vs_hand is None:
            self.lightning_vs_hand = self._versus(self.lightning)
        if self.budget is not None and self.fulmen_vs_hand is not None:
            self.met = self.fulmen_vs_hand <= self.budget

    def _versus(self, value: float | None) -> float | None:
        if value is None:
            return None
        if self.compare == VALUE:
            return value
        if self.hand is None:
            return None
        return value / self.hand if self.compare == RATIO else value - self.hand


def paired_row(
    scenario: str,
    hand: Samples,
    fulmen: Samples | None,
    lightning: Samples | None,
    budget: float | None,
    unit: str = "µs/step",
    note: str = "",
) -> Row:
    """Build a ratio row from interleaved samples: medians, and the medians of paired ratios."""
    return Row(
        scenario,
        unit,
        hand.median,
        fulmen.median if fulmen else None,
        lightning.median if lightning else None,
        RATIO,
        budget,
        paired_ratio(fulmen.values, hand.values) if fulmen else None,
        paired_ratio(lightning.values, hand.values) if lightning else None,
        note,
    )


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{fmt(value)} {unit}".rstrip()


def _versus_cell(value: float | None, compare: str, unit: str) -> str:
    if value is None:
        return "—"
    if compare == RATIO:
        return f"{value:.3f}×"
    if compare == DIFFERENCE:
        return f"{'+' if value >= 0 else '−'}{fmt(abs(value))} {unit}".rstrip()
    return f"{fmt(value)} {unit}".rstrip()


def _budget_cell(row: Row) -> str:
    if row.budget is None:
        return "—"
    if row.compare == RATIO:
        return f"≤ {row.budget:.2f}×"
    if row.compare == DIFFERENCE:
        return f"≤ +{fmt(row.budget)} {row.unit}".rstrip()
    return f"≤ {fmt(row.budget)}"


def format_summary(rows: Sequence[Row]) -> str:
    """Render summary rows as the Markdown table the READMEs show."""
    lines = [
        "| scenario | hand | fulmen | Lightning | fulmen vs hand | budget | met? |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        lightning = _cell(row.lightning, row.unit)
        if row.lightning_vs_hand is not None and row.compare != VALUE:
            lightning += f" ({_versus_cell(row.lightning_vs_hand, row.compare, row.unit)})"
        budget = _budget_cell(row)
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        scenario = f"{row.scenario} ({row.note})" if row.note else row.scenario
        lines.append(
            f"| {scenario} | {_cell(row.hand, row.unit)} | {_cell(row.fulmen, row.unit)} "
            f"| {lightning} | {_versus_cell(row.fulmen_vs_hand, row.compare, row.unit)} "
            f"| {budget} | {met} |"
        )
    return "\n".join(lines)


def report(rows: Sequence[Row]) -> None:
    """Print this benchmark's summary rows; hand them to `run_all.py` when it is listening."""
    print("\nSummary:\n" + format_summary(rows), flush=True)
    target = os.environ.get(SUMMARY_FILE_VARIABLE)
    if target:
        with open(target, "a", encoding="utf-8") as stream:
            for row in rows:
                stream.write(json.dumps(asdict(row)) + "\n")


def read_rows(path: str | Path) -> list[Row]:
    """Read the summary rows benchmarks appended to `path`."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            fields: dict[str, Any] = json.loads(line)
            rows.append(Row(**fields))
    return rows
