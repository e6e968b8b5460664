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

__all__ = ["RankFailedError", "Watchdog", "stop_process"]

_FAILURE_KEY = "fulmen/failure"
_POLL_S = 0.25
# After a peer failed, the main thread gets this long to end through its own exception path (a
# collective with a dead peer usually raises) before the watchdog ends the process.
_GRACE_S = 3.0


class RankFailedError(RuntimeError):
    """Another rank of a distributed run failed, died or stopped, so this one cannot go on."""


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
        self._explained = False
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
        except RuntimeError as err:
            # A collective whose peer died fails with a transport error ("Connection closed by
            # peer") that does not say which rank or why; name them instead.
            explanation = self.explain(err)
            if explanation is None:
                raise
            raise RankFailedError(explanation) from err
        finally:
            self.collective = previous
            self.ticks += 1

    def report_failure(self, message: str) -> None:
        """Tell every rank that this one failed (first failure wins)."""
        try:
            self.store.compare_set(_FAILURE_KEY, "", f"{self.rank}\n{message}")
        except Exception:  # noqa: BLE001 - the store may already be gone; nothing else to do
            pass

    def explain(self, error: BaseException, wait: float = _GRACE_S) -> str | None:
        """Say which rank made a collective fail with `error`, or None if it was not a peer.

        The cause (a peer's published failure, a child that died, the launching process gone)
        may reach this process a little after the transport error does, so look for up to
        `wait` seconds.
        """
        if not _is_transport_error(error):
            return None
        start = time.monotonic()
        while True:
            # A rank launched by rank 0 sees its connections to rank 0 close a moment before the
            # kernel hands it to a new parent: for the first second, only check for that.
            early = self.rank != 0 and time.monotonic() - start < 1.0
            cause = self._extra_cause() if early else self._find_cause()
            if cause is not None or time.monotonic() - start > wait:
                break
            time.sleep(0.05)
        if cause is None:
            return None
        self._explained = True
        positions = self._positions()
        if positions:
            cause += "\nLast known position of each rank:\n" + positions
        return cause

    def _find_cause(self) -> str | None:
        # Rank 0 hosts the store, where a published cause (a traceback, a stuck-run report) says
        # more than its own check of the children. The other ranks look at their own check first
        # (is the launching process gone?): asking a store whose host died makes torch print
        # pages of C++ warnings.
        if self.rank != 0 or self._extra_check is None:
            return self._extra_cause() or self._published_cause()
        return self._published_cause() or self._extra_cause()

    def _extra_cause(self) -> str | None:
        return self._extra_check() if self._extra_check is not None else None

    def _published_cause(self) -> str | None:
        try:
            failure = self._read_failure()
        except Exception:  # noqa: BLE001 - an unreachable store is itself the answer
            return (
                f"fulmen: rank {self.rank} lost contact with the other processes: the process "
                "that hosts the rendezvous store (rank 0) ended."
            )
        if failure is not None and failure[0] != self.rank:
            rank, message = failure
            lines = message.strip().splitlines() or ["an error"]
            if lines[0].startswith("fulmen: "):  # a report (a stuck run, a dead child)
                return f"{lines[0]} (reported by rank {rank}; rank {self.rank} stops too)"
            return (
                f"fulmen: rank {rank} failed ({lines[-1]}), so rank {self.rank} stops too; its "
                "traceback is printed above."
            )
        return None

    def _why_store_is_gone(self) -> str:
        # The store's host ended; a rank launched by it learns a moment later that it was its
        # parent, which says more than the lost connection.
        deadline = time.monotonic() + 0.5
        while self.rank != 0 and time.monotonic() < deadline:
            problem = self._extra_cause()
            if problem is not None:
                return problem
            time.sleep(0.05)
        return (
            f"fulmen: rank {self.rank} lost contact with the other processes (the rank that "
            "hosts the rendezvous store ended); stopping."
        )

    def _positions(self) -> str:
        try:
            states = self._read_states()
        except Exception:  # noqa: BLE001 - the store went away with rank 0
            return ""
        return _describe_states(states) if states else ""

    def _read_states(self) -> list[tuple[float, str, str]]:
        """Every rank's published (idle seconds, collective or "", position); [] until all are."""
        keys = [f"fulmen/state/{r}" for r in range(self.world_size)]
        if not self.store.check(keys):
            return []
        states = []
        for raw in self.store.multi_get(keys):
            idle, collective, where = raw.decode("utf-8", "replace").split("|", 2)
            states.append((float(idle), collective, where))
        return states

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
                self._exit_with(self._why_store_is_gone())
                return

    def check_once(self) -> None:
        """One poll: the launcher's check, peer failures, then the stuck-run rule."""
        if self.rank != 0:
            # Is the launching process gone? Ask before the store it hosted: asking a store
            # whose host died makes torch print pages of C++ warnings.
            problem = self._extra_cause()
            if problem is not None:
                self._exit_with(problem, grace=True)
                return
        failure = self._read_failure()
        if failure is not None:
            rank, message = failure
            if rank != self.rank:
                self._exit_with(
                    f"fulmen: rank {rank} failed, so rank {self.rank} stops too.\n{message}",
                    grace=True,
                )
            return
        if self.rank == 0:
            problem = self._extra_cause()  # a child rank that died
            if problem is not None:
                self.report_failure(problem)
                # Give the main thread the chance to end through its exception path (a
                # collective with the dead rank raises at once), so `on_exception` hooks run.
                self._exit_with(problem, grace=True)
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
        states = self._read_states()
        if not states or any(idle < self.timeout for idle, _, _ in states):
            return  # not every rank has published yet, or somebody is still making progress
        if not any(collective for _, collective, _ in states):
            return  # nobody waits on a peer: long computations, not a hang
        running = [str(r) for r, (_, collective, _) in enumerate(states) if not collective]
        if running:
            # Some ranks wait for the others, who are busy in their own code: a slow or stuck
            # rank, not a mismatched collective.
            cause = (
                f"rank {', '.join(running)} has not reached the collective the others wait in "
                f"for {self.timeout:.0f} s: it is much slower than the others or stuck in its "
                "own code (a long computation, I/O, a lock). If it is only slow, raise "
                "`DDPStrategy(watchdog_timeout=...)` or FULMEN_WATCHDOG_TIMEOUT."
            )
        else:
            cause = (
                f"every rank has waited in a collective for {self.timeout:.0f} s. This usually "
                "means the ranks took different paths (e.g. a `self.log(..., sync_dist=True)`, "
                "`all_gather` or `barrier` that only some ranks reach)."
            )
        report = f"fulmen: the run is stuck: {cause}\nWhere each rank is:\n" + _describe_states(
            states
        )
        self.report_failure(report)
        self._exit_with(report)

    def _exit_with(self, message: str, grace: bool = False) -> None:
        if self._reported_failure:
            return
        self._reported_failure = True
        if not self._explained:  # else the main thread's RankFailedError says it already
            print(message, file=sys.stderr, flush=True)
        if grace and self._stop.wait(_GRACE_S):
            return  # the main thread ended the run on its own
        self._on_exit(1)


def _describe(where: Any) -> str:
    if isinstance(where, tuple) and len(where) == 3:
        stage, epoch, batch = where
        return f"{stage} batch {batch} of epoch {epoch}"
    return str(where)


def _describe_states(states: list[tuple[float, str, str]]) -> str:
    lines = []
    for rank, (_, collective, where) in enumerate(states):
        doing = f"waiting in {collective}" if collective else "running"
        lines.append(f"  rank {rank}: {doing} ({where})")
    return "\n".join(lines)


def _is_transport_error(error: BaseException) -> bool:
    import torch.distributed as dist

    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return any(
        sign in text
        for sign in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo")
    )
