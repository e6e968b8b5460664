"""The fault suite's tally: each test records what it injected and what survived.

At the end of the run pytest prints one table (the one the README shows): for each fault kind,
the injections made, the runs that recovered, the files lost or corrupted and the processes left
behind. `FULMEN_FAULT_REPORT=path` also writes it as JSON, for regenerating the README table.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

import pytest


@dataclass
class FaultRow:
    """One fault kind's outcome."""

    kind: str
    injections: int = 0
    recovered: int = 0
    files_lost: int = 0
    processes_left: int = 0


class FaultReport:
    """Rows by fault kind; a kind recorded twice (by two tests) adds up."""

    def __init__(self) -> None:
        self.rows: dict[str, FaultRow] = {}

    def record(
        self,
        kind: str,
        *,
        injections: int,
        recovered: int,
        files_lost: int = 0,
        processes_left: int = 0,
    ) -> None:
        """Add one test's counts under `kind`."""
        row = self.rows.setdefault(kind, FaultRow(kind))
        row.injections += injections
        row.recovered += recovered
        row.files_lost += files_lost
        row.processes_left += processes_left

    def table(self) -> str:
        """Return the rows as a Markdown table."""
        lines = [
            "| fault | injections | recovered | files lost or corrupted | processes left |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in self.rows.values():
            lines.append(
                f"| {row.kind} | {row.injections} | {row.recovered} | {row.files_lost} "
                f"| {row.processes_left} |"
            )
        return "\n".join(lines)


_REPORT = FaultReport()


_BASELINE: set[int] = set()


@pytest.fixture(autouse=True)
def _process_baseline() -> None:
    # Processes alive when the test starts (a service an earlier test left to the session, such
    # as wandb's, or a module fixture's helper) are not this test's leftovers.
    import psutil

    _BASELINE.clear()
    _BASELINE.update(child.pid for child in psutil.Process().children(recursive=True))


def leftover_processes(timeout: float = 5.0) -> list[str]:
    """Describe the processes this test started that still run after `timeout` seconds.

    Processes a test started must be gone when it ends; a short grace period lets ones that are
    already exiting finish. Zombies are reaped children-to-be and count as gone.
    """
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for child in psutil.Process().children(recursive=True):
            if child.pid in _BASELINE:
                continue
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{child.pid} {' '.join(child.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.fixture
def fault_report() -> FaultReport:
    """The session's tally of injected faults."""
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORT.rows:
        return
    terminalreporter.section("fault injection")
    terminalreporter.write_line(_REPORT.table())
    target = os.environ.get("FULMEN_FAULT_REPORT")
    if target:
        with open(target, "w") as stream:
            json.dump([asdict(row) for row in _REPORT.rows.values()], stream, indent=1)
