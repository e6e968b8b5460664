"""Cluster environments: where this process sits among all the processes of a run.

One module per launcher. `detect_cluster_environment()` picks the one this process runs under;
the strategy owns the chosen environment and reads ranks and the rendezvous address from it.
"""

from __future__ import annotations

from fulmen.plugins.environments.cluster_environment import ClusterEnvironment
from fulmen.plugins.environments.kubeflow import KubeflowEnvironment
from fulmen.plugins.environments.lightning import LightningEnvironment
from fulmen.plugins.environments.lsf import LSFEnvironment
from fulmen.plugins.environments.mpi import MPIEnvironment
from fulmen.plugins.environments.slurm import SLURMEnvironment
from fulmen.plugins.environments.torchelastic import TorchElasticEnvironment
from fulmen.plugins.environments.xla import XLAEnvironment

__all__ = [
    "ClusterEnvironment",
    "KubeflowEnvironment",
    "LSFEnvironment",
    "LightningEnvironment",
    "MPIEnvironment",
    "SLURMEnvironment",
    "TorchElasticEnvironment",
    "XLAEnvironment",
    "detect_cluster_environment",
]


def detect_cluster_environment() -> ClusterEnvironment:
    """Return the environment of the launcher that started this process, as Lightning chooses it.

    TorchElastic comes first because torchrun also runs inside SLURM allocations; Kubeflow is
    never detected (it looks like torchrun); without a launcher, `LightningEnvironment`.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, clear=True):
        ...     type(detect_cluster_environment()).__name__
        'SLURMEnvironment'
    """
    environment_types: tuple[type[ClusterEnvironment], ...] = (
        TorchElasticEnvironment,
        SLURMEnvironment,
        LSFEnvironment,
        MPIEnvironment,
    )
    for environment_type in environment_types:
        if environment_type.detect():
            return environment_type()
    return LightningEnvironment()
