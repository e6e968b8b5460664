"""The interface every cluster environment implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["ClusterEnvironment"]


class ClusterEnvironment(ABC):
    """Describe where this process sits among the processes of a run: ranks, size, rendezvous.

    Example:
        >>> from fulmen.plugins.environments import LightningEnvironment
        >>> isinstance(LightningEnvironment(), ClusterEnvironment)
        True
    """

    @property
    @abstractmethod
    def creates_processes_externally(self) -> bool:
        """Whether a launcher outside fulmen started every process."""

    @property
    @abstractmethod
    def main_address(self) -> str:
        """The address of the node that hosts the rendezvous of all processes."""

    @property
    @abstractmethod
    def main_port(self) -> int:
        """The port on the main node through which all processes meet."""

    @staticmethod
    @abstractmethod
    def detect() -> bool:
        """Return whether this process runs in this environment."""

    @abstractmethod
    def world_size(self) -> int:
        """Return the number of processes across all nodes and devices."""

    @abstractmethod
    def set_world_size(self, size: int) -> None:
        """Record the world size chosen by the Trainer, where the environment lets it choose."""

    @abstractmethod
    def global_rank(self) -> int:
        """Return the index of this process among all processes."""

    @abstractmethod
    def set_global_rank(self, rank: int) -> None:
        """Record the global rank chosen by the Trainer, where the environment lets it choose."""

    @abstractmethod
    def local_rank(self) -> int:
        """Return the index of this process among the processes of its node."""

    @abstractmethod
    def node_rank(self) -> int:
        """Return the index of the node this process runs on."""

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Raise if `Trainer(devices=..., num_nodes=...)` contradicts the environment."""

    def teardown(self) -> None:
        """Undo what the environment changed in this process (environment variables)."""
