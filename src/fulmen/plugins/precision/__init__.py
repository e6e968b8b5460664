"""Precision plugins."""

from typing import Any

from fulmen.plugins.precision.precision import (
    DoublePrecision,
    HalfPrecision,
    MixedPrecision,
    Precision,
)
from fulmen.utilities.exceptions import MisconfigurationException


class _Unsupported(Precision):
    """A precision plugin of Lightning's that fulmen does not provide."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            f"{type(self).__name__} is not supported by fulmen. Supported precisions are "
            "'64-true', '32-true', '16-mixed', 'bf16-mixed', '16-true' and 'bf16-true'."
        )


class BitsandbytesPrecision(_Unsupported):
    """Quantized weights through bitsandbytes: not supported."""


class DeepSpeedPrecision(_Unsupported):
    """DeepSpeed's precision: not supported (fulmen has no DeepSpeed strategy)."""


class FSDPPrecision(_Unsupported):
    """FSDP's precision plugin: not supported yet (it comes with the multi-device issue)."""


class TransformerEnginePrecision(_Unsupported):
    """FP8 through NVIDIA Transformer Engine: not supported."""


class XLAPrecision(_Unsupported):
    """XLA/TPU precision: not supported."""


__all__ = [
    "BitsandbytesPrecision",
    "DeepSpeedPrecision",
    "DoublePrecision",
    "FSDPPrecision",
    "HalfPrecision",
    "MixedPrecision",
    "Precision",
    "TransformerEnginePrecision",
    "XLAPrecision",
]
