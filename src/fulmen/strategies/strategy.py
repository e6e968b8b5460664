"""The `Strategy` base: where the model lives and how processes talk to each other.

A strategy owns the device placement of the model, the precision plugin and, for multi-process
strategies, `torch.distributed`. Code outside `strategies/` never branches on its type.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from fulmen.core.optimizer import LightningOptimizer
from fulmen.plugins.io import CheckpointIO, TorchCheckpointIO
from fulmen.plugins.precision import Precision

if TYPE_CHECKING:
    from fulmen.accelerators.accelerator import Accelerator
    from fulmen.core.module import LightningModule

__all__ = ["ParallelStrategy", "Strategy"]

_NULL = nullcontext()


class Strategy:
    """Run one copy of the model in this process; subclasses add processes and collectives."""

    strategy_name = "base"

    def __init__(
        self,
        accelerator: Accelerator | None = None,
        checkpoint_io: CheckpointIO | None = None,
        precision_plugin: Precision | None = None,
    ) -> None:
        self.accelerator = accelerator
        self._checkpoint_io = checkpoint_io
        self.precision_plugin = precision_plugin or Precision()
        self._lightning_module: LightningModule | None = None
        self._model: nn.Module | None = None
        self.optimizers: list[Optimizer] = []
        self._lightning_optimizers: list[LightningOptimizer] = []
        self.launcher: Any = None  # starts the other processes (multi-process strategies)

    @property
    def checkpoint_io(self) -> CheckpointIO:
        if self._checkpoint_io is None:
            self._checkpoint_io = TorchCheckpointIO()
        return self._checkpoint_io

    @checkpoint_io.setter
    def checkpoint_io(self, io: CheckpointIO) -> None:
        self._checkpoint_io = io

    @property
    def root_device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def lightning_module(self) -> LightningModule | None:
        return self._lightning_module

    @property
    def model(self) -> nn.Module | None:
        """The model as the loop calls it (possibly wrapped, e.g. by DistributedDataParallel)."""
        return self._model if self._model is not None else self._lightning_module

    def connect(self, model: LightningModule) -> None:
        self._lightning_module = model
        self._model = model

    # ------------------------------------------------------------------ process topology

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    @property
    def global_rank(self) -> int:
        return 0

    @property
    def local_rank(self) -> int:
        return 0

    @property
    def node_rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    @property
    def num_nodes(self) -> int:
        return 1

    @property
    def num_processes(self) -> int:
        return 1

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any] | None:
        return None

    # ------------------------------------------------------------------ set up and tear down

    def setup_environment(self) -> None:
        """Prepare the device (and, for multi-process strategies, the process group)."""
        if self.accelerator is not None:
            self.accelerator.setup_device(self.root_device)

    def setup(self, model: LightningModule) -> None:
        """Move the model to its device and precision."""
        self.connect(model)
        converted = self.precision_plugin.convert_module(model)
        converted.to(self.root_device)

    def teardown(self) -> None:
        """Release the devices and finish pending checkpoint writes at the end of a run."""
        if self.accelerator is not None:
            self.accelerator.teardown()
        self.checkpoint_io.teardown()

    # ------------------------------------------------------------------ steps

    def batch_to_device(self, batch: Any, device: torch.device | None = None) -> Any:
        from fulmen.utilities.apply_func import move_data_to_device

        return move_data_to_device(batch, device or self.root_device)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._lightning_module.training_step(*args, **kwargs)  # type: ignore[union-attr]

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._lightning_module.validation_step(*args, **kwargs)  # type: ignore[union-attr]

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._lightning_module.test_step(*args, **kwargs)  # type: ignore[union-attr]

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._lightning_module.predict_step(*args, **kwargs)  # type: ignore[union-attr]

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Run the module's `backward` on the (possibly scaled) loss."""
        loss = self.precision_plugin.pre_backward(loss)
        self._lightning_module.backward(loss, *args, **kwargs)  # type: ignore[union-attr]

    def block_backward_sync(self) -> AbstractContextManager[Any]:
        """The context of a backward that must not synchronize gradients (accumulation)."""
        return _NULL

    def mark(self, stage: str, epoch: int, batch_idx: int) -> None:
        """Record where the loop is, for the multi-process hang report (nothing to do here)."""

    def on_exception(self, exception: BaseException) -> None:
        """Called when a run fails, before the hooks' `on_exception`."""

    def agree_to_stop(self, requested: bool) -> bool:
        """Whether the run stops for a signal now; multi-process strategies make ranks agree."""
        return requested

    def configure_launcher(self) -> None:
        """Decide how the other processes of a run start (a single process starts none)."""

    # ------------------------------------------------------------------ collectives

    def reduce(self, tensor: Any, group: Any | None = None, reduce_op: str | None = "mean") -> Any:
        """Reduce a tensor across processes (a single process keeps it as is)."""
        return tensor

    def all_gather(self, tensor: Any, group: Any | None = None, sync_grads: bool = False) -> Any:
        """Gather a tensor from every process (a single process returns it as is)."""
        return tensor

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Send `obj` from rank `src` to every process."""
        return obj

    def barrier(self, name: str | None = None) -> None:
        """Wait until every process gets here."""

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        """Combine a per-process decision: True if all (or, with `all=False`, any) processes agree."""
        return decision

    def check_same_keys(self, keys: tuple[str, ...], where: str) -> None:
        """Check that every process synchronizes the same logged names (one process always does)."""

    # ------------------------------------------------------------------ checkpoints

    def lightning_module_state_dict(self) -> dict[str, Any]:
        return self._lightning_module.state_dict()  # type: ignore[union-attr]

    def optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def load_optimizer_state_dict(self, optimizer: Optimizer, state: dict[str, Any]) -> None:
        groups = state.get("param_groups") or [{}]
        if any(isinstance(p, str) for p in groups[0].get("params", [])):
            # Keyed by parameter name: written by FSDP (or consolidated from its shards).
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_optimizer_state_dict,
            )

            set_optimizer_state_dict(
                self._lightning_module,  # type: ignore[arg-type]
                optimizer,
                state,  # type: ignore[arg-type]
                options=StateDictOptions(full_state_dict=True),
            )
            return
        optimizer.load_state_dict(state)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: str, storage_options: Any | None = None
    ) -> None:
        if self.is_global_zero:
            self.checkpoint_io.save_checkpoint(
                checkpoint, filepath, storage_options=storage_options
            )

    def load_checkpoint(self, path: str, weights_only: bool | None = None) -> dict[str, Any]:
        return self.checkpoint_io.load_checkpoint(path, weights_only=weights_only)

    def remove_checkpoint(self, filepath: str) -> None:
        if self.is_global_zero:
            self.checkpoint_io.remove_checkpoint(filepath)

    def load_model_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        self._lightning_module.load_state_dict(state_dict, strict=strict)  # type: ignore[union-attr]

    def model_sharded_context(self) -> Any:
        from contextlib import nullcontext

        return nullcontext()


class ParallelStrategy(Strategy):
    """Base of strategies that run one process per device."""

    strategy_name = "parallel"

    def __init__(
        self,
        accelerator: Accelerator | None = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any | None = None,
        checkpoint_io: CheckpointIO | None = None,
        precision_plugin: Precision | None = None,
    ) -> None:
        super().__init__(accelerator, checkpoint_io, precision_plugin)
        self.parallel_devices = parallel_devices or []
        self.cluster_environment = cluster_environment
