"""Strategies: how the model is placed on devices and processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fulmen.strategies.ddp import DDPStrategy
from fulmen.strategies.single_device import SingleDeviceStrategy
from fulmen.strategies.strategy import ParallelStrategy, Strategy
from fulmen.utilities.exceptions import MisconfigurationException


class _Unsupported(ParallelStrategy):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            f"{type(self).__name__} is not supported by fulmen. Use strategy='ddp' (or "
            "'ddp_spawn') for data parallel training, or 'fsdp' to shard large models."
        )


class DeepSpeedStrategy(_Unsupported):
    """DeepSpeed: not supported by fulmen."""

    strategy_name = "deepspeed"


class ModelParallelStrategy(_Unsupported):
    """Tensor parallel with FSDP2: not supported by fulmen."""

    strategy_name = "model_parallel"


def _fsdp(**kwargs: Any) -> Strategy:
    from fulmen.strategies.fsdp import FSDPStrategy

    return FSDPStrategy(**kwargs)


# Strategy names users pass as strings, and how each is built.
StrategyRegistry: dict[str, Callable[[], Strategy]] = {
    "ddp": lambda: DDPStrategy(start_method="popen"),
    "ddp_spawn": lambda: DDPStrategy(start_method="spawn"),
    "ddp_fork": lambda: DDPStrategy(start_method="fork"),
    "ddp_notebook": lambda: DDPStrategy(start_method="fork"),
    "ddp_find_unused_parameters_true": lambda: DDPStrategy(find_unused_parameters=True),
    "ddp_find_unused_parameters_false": lambda: DDPStrategy(find_unused_parameters=False),
    "ddp_spawn_find_unused_parameters_true": lambda: DDPStrategy(
        start_method="spawn", find_unused_parameters=True
    ),
    "ddp_spawn_find_unused_parameters_false": lambda: DDPStrategy(
        start_method="spawn", find_unused_parameters=False
    ),
    "fsdp": lambda: _fsdp(),
    "fsdp_cpu_offload": lambda: _fsdp(cpu_offload=True),
}
UNSUPPORTED_STRATEGIES = {
    "deepspeed",
    "deepspeed_stage_1",
    "deepspeed_stage_2",
    "deepspeed_stage_2_offload",
    "deepspeed_stage_3",
    "deepspeed_stage_3_offload",
    "deepspeed_stage_3_offload_nvme",
    "model_parallel",
}


def __getattr__(name: str) -> Any:
    # FSDP pulls in torch.distributed.fsdp and DTensor: loaded only when asked for.
    if name == "FSDPStrategy":
        from fulmen.strategies.fsdp import FSDPStrategy

        return FSDPStrategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DDPStrategy",
    "DeepSpeedStrategy",
    "FSDPStrategy",
    "ModelParallelStrategy",
    "ParallelStrategy",
    "SingleDeviceStrategy",
    "Strategy",
]
