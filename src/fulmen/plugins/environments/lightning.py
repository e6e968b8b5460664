"""The default environment: one node, where fulmen starts the processes itself (or the user does)."""

from __future__ import annotations

import os
import socket

from fulmen.plugins.environments._variables import read_int
from fulmen.plugins.environments.cluster_environment import ClusterEnvironment
from fulmen.utilities.rank_zero import rank_zero_only

__all__ = ["LightningEnvironment", "find_free_network_port"]


class LightningEnvironment(ClusterEnvironment):
    """Run on one machine, or on machines the user started by hand with MASTER_ADDR and NODE_RANK.

    Without LOCAL_RANK in the environment fulmen starts the other processes itself. With it, the
    user (or `torch.distributed.launch`) started every process and fulmen only reads the ranks.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"MASTER_PORT": "29500", "NODE_RANK": "1"}, clear=True):
        ...     env = LightningEnvironment()
        ...     env.main_address, env.main_port, env.node_rank()
        ('127.0.0.1', 29500, 1)
    """

    def __init__(self) -> None:
        self._main_port = -1
        self._global_rank = 0
        self._world_size = 1

    @property
    def creates_processes_externally(self) -> bool:
        """Whether LOCAL_RANK is set, i.e. someone else started this process as one of several."""
        return "LOCAL_RANK" in os.environ

    @property
    def main_address(self) -> str:
        """MASTER_ADDR, or 127.0.0.1 where it is not set."""
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        """MASTER_PORT, or a free port chosen once and exported as MASTER_PORT."""
        if self._main_port == -1:
            if "MASTER_PORT" in os.environ:
                self._main_port = read_int("MASTER_PORT", type(self).__name__)
            else:
                self._main_port = find_free_network_port()
                # Processes started later by fulmen's launcher inherit the environment; they must
                # meet on the port this process chose, not each pick their own.
                os.environ["MASTER_PORT"] = str(self._main_port)
        return self._main_port

    @staticmethod
    def detect() -> bool:
        """Return True: this environment is the fallback that always applies."""
        return True

    def world_size(self) -> int:
        """Return the world size set by the strategy (1 until then)."""
        return self._world_size

    def set_world_size(self, size: int) -> None:
        """Record the world size: the strategy computes it from devices and nodes."""
        self._world_size = size

    def global_rank(self) -> int:
        """Return the global rank set by the strategy (0 until then)."""
        return self._global_rank

    def set_global_rank(self, rank: int) -> None:
        """Record the global rank, and let `rank_zero_only` functions know it."""
        self._global_rank = rank
        rank_zero_only.rank = rank  # type: ignore[attr-defined]

    def local_rank(self) -> int:
        """Return LOCAL_RANK, or 0 where it is not set."""
        return read_int("LOCAL_RANK", type(self).__name__, default=0)

    def node_rank(self) -> int:
        """Return NODE_RANK, else GROUP_RANK (torchrun's name), else 0."""
        name = "NODE_RANK" if "NODE_RANK" in os.environ else "GROUP_RANK"
        return read_int(name, type(self).__name__, default=0)

    def teardown(self) -> None:
        """Remove WORLD_SIZE, which the launcher set for this run only."""
        os.environ.pop("WORLD_SIZE", None)


def find_free_network_port() -> int:
    """Return a port that is free on this machine now (STANDALONE_PORT wins where set).

    Example:
        >>> 0 < find_free_network_port() < 65536
        True
    """
    if "STANDALONE_PORT" in os.environ:
        return read_int("STANDALONE_PORT", "find_free_network_port()")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
    return port
