"""Cluster environments: where this process sits among all the processes of a run."""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from typing import Any

from fulmen.utilities.exceptions import MisconfigurationException

__all__ = [
    "ClusterEnvironment",
    "KubeflowEnvironment",
    "LSFEnvironment",
    "LightningEnvironment",
    "MPIEnvironment",
    "SLURMEnvironment",
    "TorchElasticEnvironment",
    "XLAEnvironment",
]


class ClusterEnvironment(ABC):
    """The rank, world size and rendezvous address of this process."""

    @property
    @abstractmethod
    def creates_processes_externally(self) -> bool:
        """Whether a launcher outside fulmen started every process."""

    @property
    @abstractmethod
    def main_address(self) -> str: ...

    @property
    @abstractmethod
    def main_port(self) -> int: ...

    @staticmethod
    @abstractmethod
    def detect() -> bool:
        """Whether this process runs in this environment."""

    @abstractmethod
    def world_size(self) -> int: ...

    @abstractmethod
    def global_rank(self) -> int: ...

    @abstractmethod
    def local_rank(self) -> int: ...

    @abstractmethod
    def node_rank(self) -> int: ...

    def set_world_size(self, size: int) -> None:
        """Record the world size chosen by the Trainer."""

    def set_global_rank(self, rank: int) -> None:
        """Record the global rank chosen by the Trainer."""

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Check the Trainer's devices and nodes against the environment."""

    def teardown(self) -> None:
        """Clean up environment variables set for the run."""


class LightningEnvironment(ClusterEnvironment):
    """One machine, processes launched by fulmen; MASTER_ADDR/MASTER_PORT/NODE_RANK are honoured."""

    def __init__(self) -> None:
        self._main_port = -1
        self._global_rank = 0
        self._world_size = 1

    @property
    def creates_processes_externally(self) -> bool:
        return "LOCAL_RANK" in os.environ

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        if self._main_port == -1:
            self._main_port = int(os.environ.get("MASTER_PORT", _free_port()))
        return self._main_port

    @staticmethod
    def detect() -> bool:
        return True

    def world_size(self) -> int:
        return self._world_size

    def set_world_size(self, size: int) -> None:
        self._world_size = size

    def global_rank(self) -> int:
        return self._global_rank

    def set_global_rank(self, rank: int) -> None:
        self._global_rank = rank

    def local_rank(self) -> int:
        return int(os.environ.get("LOCAL_RANK", 0))

    def node_rank(self) -> int:
        return int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


class _NotYetEnvironment(LightningEnvironment):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            f"{type(self).__name__} is not supported yet in fulmen (it comes with the "
            "multi-device issue). Single-process training needs no cluster environment."
        )


class SLURMEnvironment(_NotYetEnvironment):
    """SLURM: not supported yet."""


class TorchElasticEnvironment(_NotYetEnvironment):
    """torchrun / TorchElastic: not supported yet."""


class KubeflowEnvironment(_NotYetEnvironment):
    """Kubeflow PyTorchJob: not supported yet."""


class LSFEnvironment(_NotYetEnvironment):
    """IBM LSF: not supported yet."""


class MPIEnvironment(_NotYetEnvironment):
    """MPI launchers: not supported yet."""


class XLAEnvironment(_NotYetEnvironment):
    """XLA/TPU: not supported."""
