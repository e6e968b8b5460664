"""Kubeflow PyTorchJob: one process per pod; the operator sets MASTER_ADDR, RANK, WORLD_SIZE."""

from __future__ import annotations

import logging
import os

from fulmen.plugins.environments._variables import read_int
from fulmen.plugins.environments.cluster_environment import ClusterEnvironment

__all__ = ["KubeflowEnvironment"]

log = logging.getLogger(__name__)


class KubeflowEnvironment(ClusterEnvironment):
    """Read ranks set by Kubeflow's PyTorchJob operator; pass it in `Trainer(plugins=...)`.

    Each pod runs one process, so the local rank is 0 and the node rank is the global rank. It is
    never detected automatically: a PyTorchJob looks like torchrun from inside.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> pod = {"MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456", "RANK": "2",
        ...        "WORLD_SIZE": "3"}
        >>> with mock.patch.dict(os.environ, pod, clear=True):
        ...     env = KubeflowEnvironment()
        ...     env.main_address, env.global_rank(), env.local_rank(), env.node_rank()
        ('job-master-0', 2, 0, 2)
    """

    @property
    def creates_processes_externally(self) -> bool:
        """Return True: the operator started one process per pod."""
        return True

    @property
    def main_address(self) -> str:
        """Return MASTER_ADDR."""
        address = os.environ.get("MASTER_ADDR")
        if address is None:
            raise ValueError(
                "KubeflowEnvironment needs the environment variable MASTER_ADDR, which is not set."
            )
        return address

    @property
    def main_port(self) -> int:
        """Return MASTER_PORT."""
        return read_int("MASTER_PORT", type(self).__name__)

    @staticmethod
    def detect() -> bool:
        """Raise: a PyTorchJob cannot be told apart from torchrun; pass the environment instead."""
        raise NotImplementedError(
            "KubeflowEnvironment cannot be detected automatically. Pass it explicitly: "
            "`Trainer(plugins=[KubeflowEnvironment()])`."
        )

    def world_size(self) -> int:
        """Return WORLD_SIZE."""
        return read_int("WORLD_SIZE", type(self).__name__)

    def set_world_size(self, size: int) -> None:
        """Ignore: the operator fixed the world size."""
        log.debug("KubeflowEnvironment ignores set_world_size(%d): the operator sets it.", size)

    def global_rank(self) -> int:
        """Return RANK."""
        return read_int("RANK", type(self).__name__)

    def set_global_rank(self, rank: int) -> None:
        """Ignore: the operator fixed the global rank."""
        log.debug("KubeflowEnvironment ignores set_global_rank(%d): the operator sets it.", rank)

    def local_rank(self) -> int:
        """Return 0: each pod runs one process."""
        return 0

    def node_rank(self) -> int:
        """Return the global rank: each pod is its own node."""
        return self.global_rank()
