"""Shared pieces of the benchmarks: the checkout's fulmen, quiet runs, statistics, the table."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import platform
import statistics
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Measure the fulmen of this checkout, not whatever copy happens to be installed.
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))


def lightning_available() -> bool:
    """Tell whether the `pytorch_lightning` oracle can be imported."""
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:
        return False
    return True


def silence_frameworks() -> None:
    """Drop the info lines and warnings both frameworks print, so only the table is left."""
    warnings.filterwarnings("ignore")
    # Import first: Lightning sets its loggers' levels when it is imported.
    import fulmen  # noqa: F401

    if lightning_available():
        import pytorch_lightning  # noqa: F401
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
    if lightning_available():
        import pytorch_lightning

        parts.append(f"pytorch_lightning {pytorch_lightning.__version__}")
    return "; ".join(parts)


@dataclass
class Samples:
    """Per-step times of one scenario, one value per repetition, in microseconds."""

    name: str
    description: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def format_table(rows: Sequence[Samples], baseline: Samples) -> str:
    """Render per-step times, overhead over `baseline` and ratio as a Markdown table.

    Overhead is given twice: between medians, and between minimums. On a shared machine the
    minimum is the run that other processes disturbed least, so it is the steadier estimate.
    """
    lines = [
        "| scenario | median µs/step | min–max µs/step | overhead µs/step (median) "
        "| overhead µs/step (min) | ratio (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        spread = f"{min(row.values):.0f}–{max(row.values):.0f}"
        if row is baseline:
            by_median = by_min = "—"
        else:
            by_median = f"{row.median - baseline.median:+.0f}"
            by_min = f"{min(row.values) - min(baseline.values):+.0f}"
        ratio = row.median / baseline.median
        lines.append(
            f"| {row.name} | {row.median:.0f} | {spread} | {by_median} | {by_min} | {ratio:.2f}× |"
        )
    return "\n".join(lines)
