"""MPI launchers (`mpirun`, `mpiexec`): ranks from the variables Open MPI, MPICH and MVAPICH set.

Lightning asks mpi4py; fulmen reads the launcher's environment variables instead, so it needs no
MPI bindings. What those variables cannot say (the host of rank 0 when processes span several
nodes) must come from MASTER_ADDR.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import NamedTuple

from fulmen.plugins.environments._variables import read_int
from fulmen.plugins.environments.cluster_environment import ClusterEnvironment

__all__ = ["MPIEnvironment"]

log = logging.getLogger(__name__)

_DEFAULT_PORT = 12910


class _Variables(NamedTuple):
    size: str
    rank: str
    local_rank: str
    local_size: str


_LAUNCHERS = (
    _Variables(  # Open MPI
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
    ),
    _Variables("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),  # MPICH, Intel MPI
    _Variables(  # MVAPICH2
        "MV2_COMM_WORLD_SIZE",
        "MV2_COMM_WORLD_RANK",
        "MV2_COMM_WORLD_LOCAL_RANK",
        "MV2_COMM_WORLD_LOCAL_SIZE",
    ),
)
# Identifiers of the MPI job, the same in every process of it: a port derived from one is agreed
# on without communication.
_JOB_IDS = ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid")


class MPIEnvironment(ClusterEnvironment):
    """Read ranks from the MPI launcher's environment; set MASTER_ADDR for several nodes.

    The node rank assumes the launcher placed consecutive ranks on the same node (mpirun's
    default): node rank = global rank // processes per node. MASTER_PORT, where unset, is derived
    from the MPI job id so that every process picks the same one.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> mpirun = {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3",
        ...           "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
        ...           "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
        >>> with mock.patch.dict(os.environ, mpirun, clear=True):
        ...     env = MPIEnvironment()
        ...     env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()
        (4, 3, 1, 1)
    """

    def __init__(self) -> None:
        variables = _find_launcher()
        if variables is None:
            raise RuntimeError(
                "MPIEnvironment found none of "
                f"{', '.join(launcher.size for launcher in _LAUNCHERS)} in the environment. Start "
                "the script with `mpirun` or `mpiexec` (Open MPI, MPICH, Intel MPI or MVAPICH2)."
            )
        self._variables = variables

    @property
    def creates_processes_externally(self) -> bool:
        """Return True: the MPI launcher started every process."""
        return True

    @property
    def main_address(self) -> str:
        """MASTER_ADDR; where unset, 127.0.0.1 if all processes share this node, else an error."""
        if "MASTER_ADDR" in os.environ:
            return os.environ["MASTER_ADDR"]
        if self._local_size() == self.world_size():
            return "127.0.0.1"
        raise ValueError(
            f"MPIEnvironment cannot tell the host of rank 0: the {self.world_size()} processes "
            f"span several nodes ({self._variables.local_size}={self._local_size()}). Export "
            "MASTER_ADDR=<host of rank 0> to every process, e.g. `mpirun -x MASTER_ADDR=node0`."
        )

    @property
    def main_port(self) -> int:
        """MASTER_PORT; where unset, a port in [10000, 30000) derived from the MPI job id."""
        if "MASTER_PORT" in os.environ:
            return read_int("MASTER_PORT", type(self).__name__)
        for name in _JOB_IDS:
            if name in os.environ:
                return 10000 + zlib.crc32(os.environ[name].encode()) % 20000
        return _DEFAULT_PORT

    @staticmethod
    def detect() -> bool:
        """Return whether an MPI launcher started this process as one of several."""
        variables = _find_launcher()
        return variables is not None and read_int(variables.size, "MPIEnvironment") > 1

    def world_size(self) -> int:
        """Return the launcher's world size (OMPI_COMM_WORLD_SIZE, PMI_SIZE, ...)."""
        return read_int(self._variables.size, type(self).__name__)

    def set_world_size(self, size: int) -> None:
        """Ignore: the launcher fixed the world size."""
        log.debug("MPIEnvironment ignores set_world_size(%d): the launcher sets it.", size)

    def global_rank(self) -> int:
        """Return the launcher's rank (OMPI_COMM_WORLD_RANK, PMI_RANK, ...)."""
        return read_int(self._variables.rank, type(self).__name__)

    def set_global_rank(self, rank: int) -> None:
        """Ignore: the launcher fixed the global rank."""
        log.debug("MPIEnvironment ignores set_global_rank(%d): the launcher sets it.", rank)

    def local_rank(self) -> int:
        """Return the launcher's rank on this node (OMPI_COMM_WORLD_LOCAL_RANK, ...)."""
        return read_int(self._variables.local_rank, type(self).__name__)

    def node_rank(self) -> int:
        """Return global rank // processes per node."""
        return self.global_rank() // self._local_size()

    def _local_size(self) -> int:
        size = read_int(self._variables.local_size, type(self).__name__)
        if size < 1:
            raise ValueError(
                f"MPIEnvironment read {self._variables.local_size}={size!r}; expected at least 1."
            )
        return size


def _find_launcher() -> _Variables | None:
    return next((names for names in _LAUNCHERS if names.size in os.environ), None)
