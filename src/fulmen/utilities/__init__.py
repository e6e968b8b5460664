"""Helpers for users and for fulmen itself: seeding, batches, combined loaders, gradient norms.

`fulmen.utilities.model_summary` and `fulmen.utilities.seed` are importable submodules; the names
below are the ones Lightning exports from `lightning.pytorch.utilities`.
"""

from __future__ import annotations

from fulmen.utilities.apply_func import move_data_to_device
from fulmen.utilities.combined_loader import CombinedLoader
from fulmen.utilities.data import suggested_max_num_workers
from fulmen.utilities.enums import GradClipAlgorithmType, LightningEnum
from fulmen.utilities.filesystem import is_shared_filesystem
from fulmen.utilities.flops import measure_flops
from fulmen.utilities.grads import grad_norm
from fulmen.utilities.parameter_tying import find_shared_parameters, set_shared_parameters
from fulmen.utilities.parsing import AttributeDict, is_picklable
from fulmen.utilities.rank_zero import (
    rank_zero_deprecation,
    rank_zero_info,
    rank_zero_only,
    rank_zero_warn,
)
from fulmen.utilities.warnings import disable_possible_user_warnings

__all__ = [
    "AttributeDict",
    "CombinedLoader",
    "disable_possible_user_warnings",
    "find_shared_parameters",
    "grad_norm",
    "GradClipAlgorithmType",
    "is_picklable",
    "is_shared_filesystem",
    "LightningEnum",
    "measure_flops",
    "move_data_to_device",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "set_shared_parameters",
    "suggested_max_num_workers",
]
