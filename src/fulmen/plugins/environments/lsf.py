"""IBM LSF with `jsrun`: ranks from JSM_NAMESPACE_*, hosts from the job's rank file."""

from __future__ import annotations

import logging
import os
import socket

from fulmen.plugins.environments._variables import read_int
from fulmen.plugins.environments.cluster_environment import ClusterEnvironment

__all__ = ["LSFEnvironment"]

log = logging.getLogger(__name__)

_REQUIRED = ("LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE")


class LSFEnvironment(ClusterEnvironment):
    """Read ranks set by `jsrun`; the main node is the first compute host of LSB_DJOB_RANKFILE.

    The rank file lists one host per line, the launch node first; the launch node runs no
    training process, so it is skipped. The node rank is this host's position among the distinct
    compute hosts. Building the environment exports MASTER_ADDR and MASTER_PORT for
    `torch.distributed`.

    Example:
        >>> import os, socket, tempfile
        >>> from unittest import mock
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     rankfile = os.path.join(folder, "rankfile")
        ...     with open(rankfile, "w") as file:
        ...         _ = file.write(f"launch\\nnode1\\nnode1\\n{socket.gethostname()}\\n")
        ...     jsrun = {"LSB_JOBID": "4242", "LSB_DJOB_RANKFILE": rankfile,
        ...              "JSM_NAMESPACE_SIZE": "3", "JSM_NAMESPACE_RANK": "2",
        ...              "JSM_NAMESPACE_LOCAL_RANK": "0"}
        ...     with mock.patch.dict(os.environ, jsrun, clear=True):
        ...         env = LSFEnvironment()
        ...         print(env.main_address, env.main_port, env.node_rank(), env.global_rank())
        node1 10242 1 2
    """

    def __init__(self) -> None:
        hosts = _read_compute_hosts()
        self._main_address = hosts[0]
        self._main_port = _job_port()
        self._node_rank = _position_of_this_host(hosts)
        # torch.distributed's env:// rendezvous reads these two.
        os.environ["MASTER_ADDR"] = self._main_address
        os.environ["MASTER_PORT"] = str(self._main_port)

    @property
    def creates_processes_externally(self) -> bool:
        """Return True: jsrun started every process."""
        return True

    @property
    def main_address(self) -> str:
        """Return the first compute host listed in LSB_DJOB_RANKFILE."""
        return self._main_address

    @property
    def main_port(self) -> int:
        """Return MASTER_PORT, else 10000 plus the job id modulo 1000."""
        return self._main_port

    @staticmethod
    def detect() -> bool:
        """Return whether jsrun started this process (LSB_* and JSM_NAMESPACE_* are set)."""
        return all(name in os.environ for name in _REQUIRED)

    def world_size(self) -> int:
        """Return JSM_NAMESPACE_SIZE."""
        return read_int("JSM_NAMESPACE_SIZE", type(self).__name__)

    def set_world_size(self, size: int) -> None:
        """Ignore: jsrun fixed the world size."""
        log.debug("LSFEnvironment ignores set_world_size(%d): jsrun sets it.", size)

    def global_rank(self) -> int:
        """Return JSM_NAMESPACE_RANK."""
        return read_int("JSM_NAMESPACE_RANK", type(self).__name__)

    def set_global_rank(self, rank: int) -> None:
        """Ignore: jsrun fixed the global rank."""
        log.debug("LSFEnvironment ignores set_global_rank(%d): jsrun sets it.", rank)

    def local_rank(self) -> int:
        """Return JSM_NAMESPACE_LOCAL_RANK."""
        return read_int("JSM_NAMESPACE_LOCAL_RANK", type(self).__name__)

    def node_rank(self) -> int:
        """Return the position of this host among the distinct compute hosts of the rank file."""
        return self._node_rank


def _read_compute_hosts() -> list[str]:
    path = os.environ.get("LSB_DJOB_RANKFILE")
    if not path:
        raise ValueError(
            f"LSFEnvironment needs LSB_DJOB_RANKFILE, the job's rank file, but it is {path!r}. "
            "Start the script with `jsrun` inside an LSF job."
        )
    try:
        with open(path) as file:
            lines = [line.strip() for line in file]
    except OSError as error:
        raise ValueError(
            f"LSFEnvironment cannot read LSB_DJOB_RANKFILE={path!r}: {error.strerror}."
        ) from None
    hosts = [line for line in lines if line]
    # The first line is the launch node, which runs `jsrun` but no training process.
    if len(hosts) < 2:
        raise ValueError(
            f"LSB_DJOB_RANKFILE={path!r} lists no compute host after the launch node "
            f"(lines: {hosts!r})."
        )
    return hosts[1:]


def _job_port() -> int:
    if "MASTER_PORT" in os.environ:
        return read_int("MASTER_PORT", "LSFEnvironment")
    # Every process derives the same port from the job id without talking to the others.
    return 10000 + read_int("LSB_JOBID", "LSFEnvironment") % 1000


def _position_of_this_host(hosts: list[str]) -> int:
    distinct = list(dict.fromkeys(hosts))
    hostname = socket.gethostname()
    if hostname in distinct:
        return distinct.index(hostname)
    # Rank files may list short names where gethostname() returns the full one, or the reverse.
    short = [host.split(".")[0] for host in distinct]
    if hostname.split(".")[0] in short:
        return short.index(hostname.split(".")[0])
    raise ValueError(
        f"This host ({hostname!r}) is not among the compute hosts {distinct!r} of "
        f"LSB_DJOB_RANKFILE={os.environ.get('LSB_DJOB_RANKFILE')!r}."
    )
