"""Strategies: how the model is placed on devices and processes."""

from __future__ import annotations

from typing import Any

from fulmen.strategies.single_device import SingleDeviceStrategy
from fulmen.strategies.strategy import ParallelStrategy, Strategy
from fulmen.utilities.exceptions import MisconfigurationException


class _PlannedStrategy(ParallelStrategy):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            f"{type(self).__name__} is not supported yet in fulmen (it comes with the "
            "multi-device issue). Use the default single-device strategy for now."
        )


class DDPStrategy(_PlannedStrategy):
    """Distributed data parallel on torch.distributed: not supported yet."""

    strategy_name = "ddp"


class FSDPStrategy(_PlannedStrategy):
    """Fully sharded data parallel: not supported yet."""

    strategy_name = "fsdp"


class DeepSpeedStrategy(_PlannedStrategy):
    """DeepSpeed: not supported by fulmen."""

    strategy_name = "deepspeed"


class ModelParallelStrategy(_PlannedStrategy):
    """Tensor parallel with FSDP2: not supported yet."""

    strategy_name = "model_parallel"


# Strategy names that users pass as strings. Names of later issues are known so that the error
# can say "not supported yet" rather than "unknown".
StrategyRegistry: dict[str, type[Strategy]] = {"single_device": SingleDeviceStrategy}
PLANNED_STRATEGIES = {
    "ddp",
    "ddp_spawn",
    "ddp_fork",
    "ddp_notebook",
    "ddp_find_unused_parameters_true",
    "ddp_find_unused_parameters_false",
    "ddp_spawn_find_unused_parameters_true",
    "ddp_spawn_find_unused_parameters_false",
    "fsdp",
    "fsdp_cpu_offload",
    "deepspeed",
    "deepspeed_stage_1",
    "deepspeed_stage_2",
    "deepspeed_stage_2_offload",
    "deepspeed_stage_3",
    "deepspeed_stage_3_offload",
    "deepspeed_stage_3_offload_nvme",
    "model_parallel",
}

__all__ = [
    "DDPStrategy",
    "DeepSpeedStrategy",
    "FSDPStrategy",
    "ModelParallelStrategy",
    "ParallelStrategy",
    "SingleDeviceStrategy",
    "Strategy",
]
