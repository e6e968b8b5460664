"""SLURM: `srun` started every process; ranks, nodes and the job id come from SLURM_* variables."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys

from fulmen.plugins.environments._variables import read_int, read_optional_int
from fulmen.plugins.environments.cluster_environment import ClusterEnvironment
from fulmen.utilities.rank_zero import rank_zero_warn
from fulmen.utilities.warnings import PossibleUserWarning

__all__ = ["SLURMEnvironment"]

log = logging.getLogger(__name__)

# Job names with which a user says "I only asked SLURM for resources; I launch processes myself".
_INTERACTIVE_JOB_NAMES = ("bash", "interactive")
_DEFAULT_PORT = 12910
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


class SLURMEnvironment(ClusterEnvironment):
    """Read ranks from SLURM; MASTER_ADDR and MASTER_PORT, where set, override SLURM's choice.

    Args:
        auto_requeue: whether the Trainer should requeue the job when SLURM signals the end of
            its time limit.
        requeue_signal: the signal SLURM sends for that (`#SBATCH --signal=USR1@90`); defaults
            to SIGUSR1 (None on Windows, which has no SIGUSR1).

    Example:
        >>> import os
        >>> from unittest import mock
        >>> srun = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "5",
        ...         "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_JOB_ID": "1234567",
        ...         "SLURM_NODELIST": "gpu[007-008]"}
        >>> with mock.patch.dict(os.environ, srun, clear=True):
        ...     env = SLURMEnvironment()
        ...     env.global_rank(), env.node_rank(), env.main_address, env.main_port
        (5, 1, 'gpu007', 19567)
    """

    def __init__(
        self, auto_requeue: bool = True, requeue_signal: signal.Signals | None = None
    ) -> None:
        self.auto_requeue = auto_requeue
        if requeue_signal is None and hasattr(signal, "SIGUSR1"):
            requeue_signal = signal.SIGUSR1
        self.requeue_signal = requeue_signal
        _warn_if_srun_unused()
        _check_srun_variables()

    @property
    def creates_processes_externally(self) -> bool:
        """Return True: srun started every process."""
        return True

    @property
    def main_address(self) -> str:
        """MASTER_ADDR, else the first host of SLURM_NODELIST (exported as MASTER_ADDR)."""
        address = os.environ.get("MASTER_ADDR")
        if address is None:
            address = self.resolve_root_node_address(os.environ.get("SLURM_NODELIST", "127.0.0.1"))
            os.environ["MASTER_ADDR"] = address
        return address

    @property
    def main_port(self) -> int:
        """MASTER_PORT, else 15000 plus the last four digits of the job id (exported)."""
        if "MASTER_PORT" in os.environ:
            return read_int("MASTER_PORT", type(self).__name__)
        job_id = os.environ.get("SLURM_JOB_ID")
        if job_id is None:
            port = _DEFAULT_PORT
        else:
            if not job_id.isdigit():
                raise ValueError(
                    f"SLURMEnvironment read SLURM_JOB_ID={job_id!r}, which is not a number. Set "
                    "MASTER_PORT to choose the rendezvous port yourself."
                )
            # Every process derives the same port from the job id without talking to the others,
            # and two jobs sharing a node rarely collide.
            port = 15000 + int(job_id[-4:])
        os.environ["MASTER_PORT"] = str(port)
        return port

    @staticmethod
    def detect() -> bool:
        """Return whether srun started this process (SLURM_NTASKS set, job not interactive).

        Name the job "bash" or "interactive" (`srun --job-name=interactive`) to take resources
        from SLURM but let another environment (e.g. torchrun) be detected.
        """
        _warn_if_srun_unused()
        return _is_srun_used()

    @staticmethod
    def job_name() -> str | None:
        """Return SLURM_JOB_NAME, or None outside SLURM."""
        return os.environ.get("SLURM_JOB_NAME")

    @staticmethod
    def job_id() -> int | None:
        """Return SLURM_JOB_ID as an int; None outside SLURM or in an interactive job."""
        if _is_interactive():
            return None
        job_id = os.environ.get("SLURM_JOB_ID", "")
        return int(job_id) if job_id.isdigit() else None

    def world_size(self) -> int:
        """Return SLURM_NTASKS."""
        return read_int("SLURM_NTASKS", type(self).__name__)

    def set_world_size(self, size: int) -> None:
        """Ignore: SLURM fixed the world size."""
        log.debug("SLURMEnvironment ignores set_world_size(%d): SLURM sets it.", size)

    def global_rank(self) -> int:
        """Return SLURM_PROCID."""
        return read_int("SLURM_PROCID", type(self).__name__)

    def set_global_rank(self, rank: int) -> None:
        """Ignore: SLURM fixed the global rank."""
        log.debug("SLURMEnvironment ignores set_global_rank(%d): SLURM sets it.", rank)

    def local_rank(self) -> int:
        """Return SLURM_LOCALID."""
        return read_int("SLURM_LOCALID", type(self).__name__)

    def node_rank(self) -> int:
        """Return SLURM_NODEID."""
        return read_int("SLURM_NODEID", type(self).__name__)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Raise unless devices matches --ntasks-per-node and num_nodes matches --nodes."""
        if _is_interactive():
            return
        tasks_per_node = read_optional_int("SLURM_NTASKS_PER_NODE", type(self).__name__)
        if tasks_per_node is not None and tasks_per_node != num_devices:
            raise ValueError(
                f"Trainer(devices={num_devices!r}) does not match the SLURM job, which runs "
                f"--ntasks-per-node={tasks_per_node} (SLURM_NTASKS_PER_NODE). Set "
                f"devices={tasks_per_node}."
            )
        nodes = read_optional_int("SLURM_NNODES", type(self).__name__)
        if nodes is not None and nodes != num_nodes:
            raise ValueError(
                f"Trainer(num_nodes={num_nodes!r}) does not match the SLURM job, which runs on "
                f"--nodes={nodes} (SLURM_NNODES). Set num_nodes={nodes}."
            )

    def requeue(self) -> None:
        """Put this job back in SLURM's queue with `scontrol requeue`; call on global rank 0 only.

        Array jobs are requeued as `<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>`, so that only this
        task of the array runs again.
        """
        job_id = _requeue_target()
        scontrol = shutil.which("scontrol")
        if scontrol is None:
            raise RuntimeError(
                f"Cannot requeue SLURM job {job_id}: `scontrol` is not on PATH "
                f"({os.environ.get('PATH', '')!r})."
            )
        command = [scontrol, "requeue", job_id]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=60, check=False
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"`scontrol requeue {job_id}` did not finish within 60 seconds."
            ) from None
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise RuntimeError(
                f"`scontrol requeue {job_id}` failed with exit code {result.returncode}: "
                f"{output or '(no output)'}"
            )
        log.info("Requeued SLURM job %s.", job_id)

    @staticmethod
    def resolve_root_node_address(nodes: str) -> str:
        """Return the first host of a SLURM node list (space- or comma-separated, with ranges).

        Example:
            >>> SLURMEnvironment.resolve_root_node_address("node[001-004,007],login2")
            'node001'
            >>> SLURMEnvironment.resolve_root_node_address("host3 host1")
            'host3'
        """
        words = nodes.split()
        if not words:
            raise ValueError(f"The SLURM node list {nodes!r} (SLURM_NODELIST) names no host.")
        first = _first_host_pattern(words[0], nodes)
        host = _BRACKETS.sub(lambda match: _first_in_range(match.group(1), nodes), first)
        if not host or "[" in host or "]" in host:
            raise ValueError(
                f"The SLURM node list {nodes!r} (SLURM_NODELIST) is malformed: cannot read a "
                f"host name from {first!r}."
            )
        return host


def _first_host_pattern(word: str, nodes: str) -> str:
    """Return `word` up to its first comma outside brackets: 'a[1-2,4],b' gives 'a[1-2,4]'."""
    depth = 0
    for position, char in enumerate(word):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            return word[:position]
        if depth not in (0, 1):
            break
    if depth != 0:
        raise ValueError(
            f"The SLURM node list {nodes!r} (SLURM_NODELIST) is malformed: its brackets do not "
            "pair up."
        )
    return word


def _first_in_range(ranges: str, nodes: str) -> str:
    """Return the first number of a bracket body such as '001-004,007'."""
    first = ranges.split(",")[0].split("-")[0]
    if not first.isdigit():
        raise ValueError(
            f"The SLURM node list {nodes!r} (SLURM_NODELIST) is malformed: [{ranges}] does not "
            "start with a number."
        )
    return first


def _requeue_target() -> str:
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        for name, value in (("SLURM_ARRAY_JOB_ID", array_job), ("SLURM_ARRAY_TASK_ID", task)):
            if value is None or not value.isdigit():
                raise ValueError(
                    f"Cannot requeue the SLURM array job: {name}={value!r} is not a number."
                )
        return f"{array_job}_{task}"
    job_id = os.environ.get("SLURM_JOB_ID")
    if job_id is None or not job_id.isdigit():
        raise ValueError(f"Cannot requeue the SLURM job: SLURM_JOB_ID={job_id!r} is not a number.")
    return job_id


def _is_interactive() -> bool:
    return SLURMEnvironment.job_name() in _INTERACTIVE_JOB_NAMES


def _is_srun_used() -> bool:
    return "SLURM_NTASKS" in os.environ and not _is_interactive()


def _warn_if_srun_unused() -> None:
    # Several processes per job need `srun python train.py`; plain `python train.py` in a batch
    # script starts one process that then waits forever for the others.
    if sys.platform == "win32" or shutil.which("srun") is None or _is_srun_used():
        return
    hint = " ".join(["srun", os.path.basename(sys.executable), *sys.argv])
    if len(hint) > 80:
        hint = hint[:77] + "..."
    rank_zero_warn(
        "`srun` is installed on this machine but did not start this process. To train on "
        f"SLURM, start the script with srun: `{hint}`.",
        category=PossibleUserWarning,
    )


def _check_srun_variables() -> None:
    tasks = read_int("SLURM_NTASKS", "SLURMEnvironment", default=1)
    if tasks > 1 and "SLURM_NTASKS_PER_NODE" not in os.environ:
        raise RuntimeError(
            f"The SLURM job sets --ntasks={tasks} without --ntasks-per-node, which fulmen cannot "
            "map onto devices. Use --ntasks-per-node=<processes per node, as in "
            f"Trainer(devices=...)> instead, e.g. --ntasks-per-node={tasks} on one node."
        )
