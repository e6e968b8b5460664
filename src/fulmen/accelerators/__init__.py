"""Hardware: CPU, CUDA GPUs and Apple MPS."""

from fulmen.accelerators.accelerator import Accelerator
from fulmen.accelerators.cpu import CPUAccelerator
from fulmen.accelerators.cuda import CUDAAccelerator, find_usable_cuda_devices
from fulmen.accelerators.mps import MPSAccelerator
from fulmen.accelerators.xla import XLAAccelerator

__all__ = [
    "Accelerator",
    "CPUAccelerator",
    "CUDAAccelerator",
    "MPSAccelerator",
    "XLAAccelerator",
    "find_usable_cuda_devices",
]
