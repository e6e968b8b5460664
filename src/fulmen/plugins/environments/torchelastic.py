"""torchrun (TorchElastic): the launcher started every process and exported their ranks."""

from __future__ import annotations

import logging
import os

import torch.distributed

from fulmen.plugins.environments._variables import read_int
from fulmen.plugins.environments.cluster_environment import ClusterEnvironment
from fulmen.utilities.rank_zero import rank_zero_warn

__all__ = ["TorchElasticEnvironment"]

log = logging.getLogger(__name__)

_DEFAULT_PORT = 12910


class TorchElasticEnvironment(ClusterEnvironment):
    """Read ranks from the variables torchrun sets: RANK, LOCAL_RANK, WORLD_SIZE, GROUP_RANK.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> torchrun = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "GROUP_RANK": "1",
        ...             "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
        >>> with mock.patch.dict(os.environ, torchrun, clear=True):
        ...     env = TorchElasticEnvironment()
        ...     env.global_rank(), env.local_rank(), env.node_rank(), env.world_size()
        (3, 1, 1, 4)
    """

    @property
    def creates_processes_externally(self) -> bool:
        """Return True: torchrun started every process."""
        return True

    @property
    def main_address(self) -> str:
        """MASTER_ADDR; where torchrun left it unset, 127.0.0.1 (exported, with a warning)."""
        if "MASTER_ADDR" not in os.environ:
            rank_zero_warn("MASTER_ADDR is not set in the environment; using 127.0.0.1.")
            os.environ["MASTER_ADDR"] = "127.0.0.1"
        return os.environ["MASTER_ADDR"]

    @property
    def main_port(self) -> int:
        """MASTER_PORT; where torchrun left it unset, 12910 (exported, with a warning)."""
        if "MASTER_PORT" not in os.environ:
            rank_zero_warn(f"MASTER_PORT is not set in the environment; using {_DEFAULT_PORT}.")
            os.environ["MASTER_PORT"] = str(_DEFAULT_PORT)
        return read_int("MASTER_PORT", type(self).__name__)

    @staticmethod
    def detect() -> bool:
        """Return whether torchrun started this process (it sets TORCHELASTIC_RUN_ID)."""
        # torch.distributed is missing from some builds (e.g. some macOS wheels).
        return torch.distributed.is_available() and torch.distributed.is_torchelastic_launched()

    def world_size(self) -> int:
        """Return WORLD_SIZE."""
        return read_int("WORLD_SIZE", type(self).__name__)

    def set_world_size(self, size: int) -> None:
        """Ignore: torchrun fixed the world size."""
        log.debug("TorchElasticEnvironment ignores set_world_size(%d): torchrun sets it.", size)

    def global_rank(self) -> int:
        """Return RANK."""
        return read_int("RANK", type(self).__name__)

    def set_global_rank(self, rank: int) -> None:
        """Ignore: torchrun fixed the global rank."""
        log.debug("TorchElasticEnvironment ignores set_global_rank(%d): torchrun sets it.", rank)

    def local_rank(self) -> int:
        """Return LOCAL_RANK."""
        return read_int("LOCAL_RANK", type(self).__name__)

    def node_rank(self) -> int:
        """Return GROUP_RANK (torchrun's node index), or 0 where it is not set."""
        return read_int("GROUP_RANK", type(self).__name__, default=0)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Raise unless devices times nodes equals the WORLD_SIZE torchrun started."""
        world_size = self.world_size()
        if num_devices * num_nodes != world_size:
            raise ValueError(
                f"Trainer(devices={num_devices!r}, num_nodes={num_nodes!r}) asks for "
                f"{num_devices} * {num_nodes} = {num_devices * num_nodes} processes, but torchrun "
                f"started WORLD_SIZE={world_size}. Set devices to torchrun's --nproc-per-node and "
                f"num_nodes to its --nnodes."
            )
