"""Keep a multi-process run from hanging: failures reach every rank, stuck collectives are named.

A distributed run hangs when one process stops taking part: it raised, it was killed, or it
skipped a collective the others entered. `torch.distributed` then waits for its own timeout
(30 minutes by default) and says little about why. Each rank runs a `Watchdog` thread that talks
through the c10d store every rank already shares:

- a rank that raises writes its traceback under `fulmen/failure`; the others see it within a
  fraction of a second, print it and stop;
- every rank publishes where it is (hook, epoch, batch) once per poll; when every rank has made no
  progress for `timeout` seconds and at least one waits in a collective, the run is declared stuck
  and each rank stops with a report that names what every rank is doing.

The main thread only assigns two attributes per step (`where`, `ticks`); all store traffic
happens in the watchdog thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

__all__ = ["Watchdog", "stop_process"]

_FAILURE_KEY = "fulmen/failure"
_POLL_S = 0.25
# After a peer failed, the main thread gets this long to end through its own exception path (a
# collective with a dead peer usually raises) before the watchdog ends the process.
_GRACE_S = 3.0


def stop_process(code: int) -> None:
    """End this process now: the main thread may be blocked in a collective that never returns."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Watchdog:
    """One rank's view of the run's health, checked from a daemon thread."""

    def __init__(
        self,
        store: Any,
        rank: int,
        world_size: int,
        timeout: float,
        on_exit: Callable[[int], None] = stop_process,
        extra_check: Callable[[], str | None] | None = None,
    ) -> None:
        self.store = store
        self.rank = rank
        self.world_size = world_size
        self.timeout = timeout
        self.where: Any = "setup"
        self.ticks = 0
        self.collective: str | None = None
        self._on_exit = on_exit
        self._extra_check = extra_check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported_failure = False
        self._last_ticks = -1
        self._last_progress = time.monotonic()

    # ------------------------------------------------------------------ main-thread side

    def mark(self, where: Any) -> None:
        """Record progress: a description, or (stage, epoch, batch) formatted only when reported."""
        self.where = where
        self.ticks += 1

    @contextmanager
    def waiting(self, name: str) -> Generator[None]:
        """Mark a collective this rank is blocked in, for the stuck-run report."""
        previous, self.collective = self.collective, name
        try:
            yield
        finally:
            self.collective = previous
            self.ticks += 1

    def report_failure(self, message: str) -> None:
        """Tell every rank that this one failed (first failure wins)."""
        try:
            self.store.compare_set(_FAILURE_KEY, "", f"{self.rank}\n{message}")
        except Exception:  # noqa: BLE001 - the store may already be gone; nothing else to do
            pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fulmen-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * _POLL_S)
        self._thread = None

    # ------------------------------------------------------------------ watchdog thread

    def _run(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001
                # The store lives in rank 0's process (or the launcher's): unreachable means it
                # is gone. End unless we are shutting down anyway.
                if self._stop.is_set():
                    return
                self._exit_with(
                    f"fulmen: rank {self.rank} lost contact with the other processes (the rank "
                    "that hosts the rendezvous store ended); stopping."
                )
                return

    def check_once(self) -> None:
        """One poll: peer failures, the launcher's check, then the stuck-run rule."""
        failure = self._read_failure()
        if failure is not None:
            rank, message = failure
            if rank != self.rank:
                self._exit_with(
                    f"fulmen: rank {rank} failed, so rank {self.rank} stops too.\n{message}",
                    grace=True,
                )
            return
        if self._extra_check is not None:
            problem = self._extra_check()
            if problem is not None:
                self.report_failure(problem)
                self._exit_with(problem)
                return
        self._check_stuck()

    def _read_failure(self) -> tuple[int, str] | None:
        if not self.store.check([_FAILURE_KEY]):
            return None
        raw = self.store.get(_FAILURE_KEY).decode("utf-8", "replace")
        if not raw:
            return None
        rank, _, message = raw.partition("\n")
        return int(rank), message

    def _check_stuck(self) -> None:
        now = time.monotonic()
        if self.ticks != self._last_ticks:
            self._last_ticks = self.ticks
            self._last_progress = now
        idle = now - self._last_progress
        state = f"{idle:.1f}|{self.collective or ''}|{_describe(self.where)}"
        self.store.set(f"fulmen/state/{self.rank}", state)
        if idle < self.timeout:
            return
        keys = [f"fulmen/state/{r}" for r in range(self.world_size)]
        if not self.store.check(keys):
            return
        states = [v.decode("utf-8", "replace") for v in self.store.multi_get(keys)]
        parsed = [s.split("|", 2) for s in states]
        if any(float(p[0]) < self.timeout for p in parsed):
            return  # somebody is still making progress
        if not any(p[1] for p in parsed):
            return  # nobody waits on a peer: long computations, not a hang
        lines = []
        for r, (_, collective, where) in enumerate(parsed):
            doing = f"waiting in {collective}" if collective else "running"
            lines.append(f"  rank {r}: {doing} ({where})")
        report = (
            f"fulmen: the run is stuck: no rank has made progress for {self.timeout:.0f} s and "
            "at least one waits for the others in a collective. This usually means the ranks "
            "took different paths (e.g. a `self.log(..., sync_dist=True)`, `all_gather` or "
            "`barrier` that only some ranks reach). Where each rank is:\n" + "\n".join(lines)
        )
        self.report_failure(report)
        self._exit_with(report)

    def _exit_with(self, message: str, grace: bool = False) -> None:
        if self._reported_failure:
            return
        self._reported_failure = True
        print(message, file=sys.stderr, flush=True)
        if grace and self._stop.wait(_GRACE_S):
            return  # the main thread ended the run on its own
        self._on_exit(1)


def _describe(where: Any) -> str:
    if isinstance(where, tuple) and len(where) == 3:
        stage, epoch, batch = where
        return f"{stage} batch {batch} of epoch {epoch}"
    return str(where)
