"""Fully sharded data parallel on PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`).

Each rank keeps only its shard of every parameter, gradient and optimizer state; a layer's full
weights exist only while it computes. Processes, launching, collectives and the watchdog are
those of `DDPStrategy`; what differs is how the model is wrapped and how checkpoints are written:

- `state_dict_type="full"` (Lightning's default): the full state is gathered and rank 0 writes
  one ordinary checkpoint file.
- `state_dict_type="sharded"`: every rank writes its shard with `torch.distributed.checkpoint`
  into a directory (plus `meta.pt` with the loop state). It loads on any number of ranks, and
  `consolidate_checkpoint` turns it into a single file on demand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim import Optimizer

from fulmen.strategies.ddp import _DEFAULT_TIMEOUT, DDPStrategy
from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule

__all__ = ["FSDPStrategy", "consolidate_checkpoint"]

_META = "meta.pt"


class _StepForward(nn.Module):
    """Make each step the forward of the sharded root, so FSDP gathers weights around it."""

    def __init__(self, module: LightningModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, step: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.module, step)(*args, **kwargs)


class FSDPStrategy(DDPStrategy):
    """Shard parameters, gradients and optimizer state across processes with FSDP2.

    `auto_wrap_policy` chooses the submodules sharded as units: a set of module classes, or a
    callable `(module) -> bool`. `cpu_offload=True` keeps shards in CPU memory.

    Example:
        >>> FSDPStrategy(auto_wrap_policy={nn.Linear}, state_dict_type="sharded").strategy_name
        'fsdp'
    """

    strategy_name = "fsdp"

    def __init__(
        self,
        accelerator: Any = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any = None,
        checkpoint_io: Any = None,
        precision_plugin: Any = None,
        process_group_backend: str | None = None,
        timeout: timedelta | None = _DEFAULT_TIMEOUT,
        cpu_offload: bool = False,
        mixed_precision: Any = None,
        auto_wrap_policy: set[type[nn.Module]] | Callable[[nn.Module], bool] | None = None,
        activation_checkpointing_policy: Any = None,
        sharding_strategy: str = "FULL_SHARD",
        state_dict_type: str = "full",
        reshard_after_forward: bool | None = None,
        start_method: str = "popen",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            accelerator=accelerator,
            parallel_devices=parallel_devices,
            cluster_environment=cluster_environment,
            checkpoint_io=checkpoint_io,
            precision_plugin=precision_plugin,
            process_group_backend=process_group_backend,
            timeout=timeout,
            start_method=start_method,
        )
        if state_dict_type not in ("full", "sharded"):
            raise ValueError(
                f"FSDPStrategy(state_dict_type={state_dict_type!r}) is invalid: expected 'full' "
                "or 'sharded'."
            )
        strategies = {"FULL_SHARD": True, "SHARD_GRAD_OP": False}
        if sharding_strategy not in strategies:
            raise ValueError(
                f"FSDPStrategy(sharding_strategy={sharding_strategy!r}) is invalid: expected one "
                f"of {sorted(strategies)} (FSDP2 shards parameters, gradients and optimizer state)."
            )
        if activation_checkpointing_policy is not None:
            raise MisconfigurationException(
                "FSDPStrategy(activation_checkpointing_policy=...) is not supported by fulmen; "
                "use torch.utils.checkpoint inside your module."
            )
        if kwargs:
            raise TypeError(f"FSDPStrategy got unexpected keyword arguments {sorted(kwargs)}.")
        self.cpu_offload = cpu_offload
        self.mixed_precision = mixed_precision
        self.auto_wrap_policy = auto_wrap_policy
        self.state_dict_type = state_dict_type
        self._sharded_root: nn.Module | None = None
        self.reshard_after_forward = (
            strategies[sharding_strategy]
            if reshard_after_forward is None
            else reshard_after_forward
        )

    # ------------------------------------------------------------------ wrapping

    def _should_wrap(self, module: nn.Module) -> bool:
        policy = self.auto_wrap_policy
        if policy is None:
            return False
        if callable(policy) and not isinstance(policy, (set, frozenset, list, tuple)):
            return bool(policy(module))
        return isinstance(module, tuple(policy))  # type: ignore[arg-type]

    def setup(self, model: LightningModule) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

        self.connect(model)
        converted = self.precision_plugin.convert_module(model)
        converted.to(self.root_device)
        if self._sharded_root is not None:
            self._model = self._sharded_root
            return
        mesh = init_device_mesh(self.root_device.type, (self.world_size,))
        options: dict[str, Any] = {
            "mesh": mesh,
            "reshard_after_forward": self.reshard_after_forward,
        }
        if self.cpu_offload:
            options["offload_policy"] = CPUOffloadPolicy()
        if self.mixed_precision is not None:
            options["mp_policy"] = self.mixed_precision
        for module in list(model.modules())[1:]:
            if self._should_wrap(module):
                fully_shard(module, **options)
        root = _StepForward(model)
        fully_shard(root, **options)
        self._sharded_root = root
        self._model = root

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._model("training_step", *args, **kwargs)  # type: ignore[misc]

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._model("validation_step", *args, **kwargs)  # type: ignore[misc]

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._model("test_step", *args, **kwargs)  # type: ignore[misc]

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._model("predict_step", *args, **kwargs)  # type: ignore[misc]

    def block_backward_sync(self) -> Any:
        from contextlib import nullcontext

        return nullcontext()  # FSDP reduce-scatters every backward; accumulation still works

    def teardown(self) -> None:
        self._finish_stop_poll()
        from fulmen.strategies.strategy import Strategy

        Strategy.teardown(self)

    # ------------------------------------------------------------------ checkpoints

    def _options(self, full: bool) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=full, cpu_offload=full)

    def lightning_module_state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        full = self.state_dict_type == "full"
        return get_model_state_dict(self._lightning_module, options=self._options(full))  # type: ignore[arg-type]

    def optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        full = self.state_dict_type == "full"
        return get_optimizer_state_dict(
            self._lightning_module,  # type: ignore[arg-type]
            optimizer,
            options=self._options(full),
        )

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: str, storage_options: Any | None = None
    ) -> None:
        if self.state_dict_type == "full":
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        import torch.distributed.checkpoint as dcp

        tensors = {
            "state_dict": checkpoint.pop("state_dict"),
            "optimizer_states": {
                str(i): s for i, s in enumerate(checkpoint.pop("optimizer_states", []))
            },
        }
        checkpoint["optimizer_states"] = len(tensors["optimizer_states"])
        dcp.save(tensors, checkpoint_id=filepath)  # type: ignore[attr-defined]
        if self.is_global_zero:
            torch.save(checkpoint, os.path.join(filepath, _META))

    def remove_checkpoint(self, filepath: str) -> None:
        if self.is_global_zero:
            if os.path.isdir(filepath):
                import shutil

                shutil.rmtree(filepath)
            else:
                super().remove_checkpoint(filepath)

    def load_checkpoint(self, path: str, weights_only: bool | None = None) -> dict[str, Any]:
        if not os.path.isdir(path):
            return super().load_checkpoint(path, weights_only=weights_only)
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        checkpoint: dict[str, Any] = torch.load(
            os.path.join(path, _META), map_location="cpu", weights_only=True
        )
        template = get_model_state_dict(self._lightning_module, options=self._options(False))  # type: ignore[arg-type]
        dcp.load({"state_dict": template}, checkpoint_id=path)  # type: ignore[attr-defined]
        checkpoint["state_dict"] = template
        count = int(checkpoint.get("optimizer_states", 0))
        checkpoint["optimizer_states"] = [_ShardedOptimizerState(path, i) for i in range(count)]
        return checkpoint

    def load_model_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        full = not any(_is_dtensor(v) for v in state_dict.values())
        set_model_state_dict(
            self._lightning_module,  # type: ignore[arg-type]
            state_dict,
            options=StateDictOptions(full_state_dict=full, strict=strict),
        )

    def load_optimizer_state_dict(self, optimizer: Optimizer, state: Any) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        module = self._lightning_module
        if isinstance(state, _ShardedOptimizerState):
            import torch.distributed.checkpoint as dcp

            template = get_optimizer_state_dict(module, optimizer, options=self._options(False))  # type: ignore[arg-type]
            dcp.load(  # type: ignore[attr-defined]
                {"optimizer_states": {str(state.index): template}}, checkpoint_id=state.path
            )
            set_optimizer_state_dict(module, optimizer, template)  # type: ignore[arg-type]
            return
        set_optimizer_state_dict(
            module,  # type: ignore[arg-type]
            optimizer,
            state,
            options=StateDictOptions(full_state_dict=True),
        )


class _ShardedOptimizerState:
    """An optimizer state still on disk: it is read once the optimizer exists to shape it."""

    def __init__(self, path: str, index: int) -> None:
        self.path = path
        self.index = index


def _is_dtensor(value: Any) -> bool:
    return type(value).__name__ == "DTensor"


def consolidate_checkpoint(path: str, output: str) -> None:
    """Turn a sharded checkpoint directory into one checkpoint file (no process group needed).

    The file holds the full weights and the loop state and loads like any other checkpoint
    (`Model.load_from_checkpoint(output)`, `trainer.test(ckpt_path=output)`). Optimizer states
    are left out: to resume training with them, resume from the directory, on any number of
    ranks.
    """
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    from fulmen.plugins.io import TorchCheckpointIO

    tmp = output + ".tensors.tmp"
    dcp_to_torch_save(path, tmp)
    tensors = torch.load(tmp, map_location="cpu", weights_only=True)
    os.remove(tmp)
    checkpoint = torch.load(os.path.join(path, _META), map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = tensors["state_dict"]
    checkpoint.pop("optimizer_states", None)
    TorchCheckpointIO().save_checkpoint(checkpoint, output)
