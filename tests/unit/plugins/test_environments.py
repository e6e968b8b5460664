"""Cluster environments driven by the variables each launcher sets, and Lightning as the oracle."""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import stat
import sys
import types
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from fulmen.plugins import environments
from fulmen.plugins.environments import (
    ClusterEnvironment,
    KubeflowEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
    XLAEnvironment,
    detect_cluster_environment,
)
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_only
from fulmen.utilities.warnings import PossibleUserWarning

_LAUNCHER_PREFIXES = (
    "SLURM_",
    "TORCHELASTIC_",
    "OMPI_",
    "PMI_",
    "PMIX_",
    "MV2_",
    "MPI_LOCAL",
    "LSB_",
    "JSM_",
)
_LAUNCHER_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "LOCAL_WORLD_SIZE",
    "STANDALONE_PORT",
    "KUBERNETES_PORT",
)


@pytest.fixture(autouse=True)
def _no_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Start every test outside any launcher, with an empty bin/ as the only PATH entry."""
    # patch.dict restores os.environ as a whole, including variables the code under test sets.
    with mock.patch.dict(os.environ):
        for key in list(os.environ):
            if key.startswith(_LAUNCHER_PREFIXES) or key in _LAUNCHER_NAMES:
                monkeypatch.delenv(key)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        monkeypatch.setenv("PATH", str(bin_dir))
        monkeypatch.setattr(rank_zero_only, "rank", 0)
        yield bin_dir


def _set(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for key, value in variables.items():
        monkeypatch.setenv(key, value)


def _script(bin_dir: Path, name: str, body: str) -> Path:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# ---------------------------------------------------------------------------------------------
# package surface


def test_every_environment_imports_from_the_package() -> None:
    for name in environments.__all__:
        assert hasattr(importlib.import_module("fulmen.plugins.environments"), name)
    for cls in (
        KubeflowEnvironment,
        LightningEnvironment,
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
        XLAEnvironment,
    ):
        assert issubclass(cls, ClusterEnvironment)


def test_environments_live_in_lightnings_module_names() -> None:
    from fulmen.plugins.environments.lightning import LightningEnvironment as Lightning
    from fulmen.plugins.environments.slurm import SLURMEnvironment as Slurm
    from fulmen.plugins.environments.torchelastic import TorchElasticEnvironment as Elastic

    assert (Lightning, Slurm, Elastic) == (
        LightningEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )


def test_cluster_environment_needs_every_abstract_method() -> None:
    with pytest.raises(TypeError, match="abstract"):
        ClusterEnvironment()  # type: ignore[abstract]


# ---------------------------------------------------------------------------------------------
# LightningEnvironment


def test_lightning_environment_defaults_to_one_local_process() -> None:
    env = LightningEnvironment()
    assert env.creates_processes_externally is False
    assert env.main_address == "127.0.0.1"
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (1, 0, 0, 0)
    assert LightningEnvironment.detect() is True


def test_lightning_environment_picks_a_free_port_once_and_exports_it() -> None:
    env = LightningEnvironment()
    port = env.main_port
    assert 0 < port < 65536
    assert env.main_port == port
    assert os.environ["MASTER_PORT"] == str(port)
    assert LightningEnvironment().main_port == port  # a second process reads the exported port


def test_lightning_environment_honours_standalone_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDALONE_PORT", "23456")
    assert LightningEnvironment().main_port == 23456


def test_lightning_environment_reads_the_users_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(
        monkeypatch,
        {"MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29501", "NODE_RANK": "2", "LOCAL_RANK": "3"},
    )
    env = LightningEnvironment()
    assert env.creates_processes_externally is True
    assert (env.main_address, env.main_port) == ("10.1.2.3", 29501)
    assert (env.node_rank(), env.local_rank()) == (2, 3)


def test_lightning_environment_prefers_node_rank_over_group_rank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GROUP_RANK", "4")
    assert LightningEnvironment().node_rank() == 4
    monkeypatch.setenv("NODE_RANK", "1")
    assert LightningEnvironment().node_rank() == 1


def test_lightning_environment_records_ranks_set_by_the_strategy() -> None:
    env = LightningEnvironment()
    env.set_world_size(8)
    env.set_global_rank(5)
    assert (env.world_size(), env.global_rank()) == (8, 5)
    assert rank_zero_only.rank == 5  # type: ignore[attr-defined]


def test_lightning_environment_teardown_removes_world_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    LightningEnvironment().teardown()
    assert "WORLD_SIZE" not in os.environ


@pytest.mark.parametrize(
    ("variable", "read"),
    [
        ("LOCAL_RANK", lambda env: env.local_rank()),
        ("NODE_RANK", lambda env: env.node_rank()),
        ("MASTER_PORT", lambda env: env.main_port),
    ],
)
def test_lightning_environment_names_a_malformed_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, read: Callable[[LightningEnvironment], int]
) -> None:
    monkeypatch.setenv(variable, "one")
    with pytest.raises(ValueError, match=f"{variable}='one'.*not an integer"):
        read(LightningEnvironment())


# ---------------------------------------------------------------------------------------------
# TorchElasticEnvironment

_TORCHRUN = {
    "TORCHELASTIC_RUN_ID": "none",
    "RANK": "5",
    "LOCAL_RANK": "1",
    "WORLD_SIZE": "8",
    "GROUP_RANK": "2",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "node-a",
    "MASTER_PORT": "29400",
}


def test_torchelastic_reads_torchruns_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _TORCHRUN)
    env = TorchElasticEnvironment()
    assert TorchElasticEnvironment.detect() is True
    assert env.creates_processes_externally is True
    assert (env.main_address, env.main_port) == ("node-a", 29400)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 5, 1, 2)


def test_torchelastic_is_detected_by_its_run_id_only(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(
        monkeypatch,
        {key: value for key, value in _TORCHRUN.items() if key != "TORCHELASTIC_RUN_ID"},
    )
    assert TorchElasticEnvironment.detect() is False
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    assert TorchElasticEnvironment.detect() is True


def test_torchelastic_ignores_ranks_set_by_the_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _TORCHRUN)
    env = TorchElasticEnvironment()
    env.set_world_size(1)
    env.set_global_rank(0)
    assert (env.world_size(), env.global_rank()) == (8, 5)


def test_torchelastic_defaults_the_address_and_port_with_a_warning() -> None:
    env = TorchElasticEnvironment()
    with pytest.warns(UserWarning, match="MASTER_ADDR is not set"):
        assert env.main_address == "127.0.0.1"
    with pytest.warns(UserWarning, match="MASTER_PORT is not set"):
        assert env.main_port == 12910
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("127.0.0.1", "12910")
    assert env.node_rank() == 0


def test_torchelastic_names_a_missing_variable() -> None:
    with pytest.raises(ValueError, match="WORLD_SIZE, which is not set"):
        TorchElasticEnvironment().world_size()


def test_torchelastic_names_a_malformed_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3.0")
    with pytest.raises(ValueError, match=r"RANK='3\.0'"):
        TorchElasticEnvironment().global_rank()


def test_torchelastic_validates_devices_times_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _TORCHRUN)
    env = TorchElasticEnvironment()
    env.validate_settings(num_devices=4, num_nodes=2)
    with pytest.raises(ValueError, match=r"devices=2, num_nodes=2.*2 \* 2 = 4.*WORLD_SIZE=8"):
        env.validate_settings(num_devices=2, num_nodes=2)


# ---------------------------------------------------------------------------------------------
# SLURMEnvironment

_SRUN = {
    "SLURM_NTASKS": "8",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_NNODES": "2",
    "SLURM_PROCID": "6",
    "SLURM_LOCALID": "2",
    "SLURM_NODEID": "1",
    "SLURM_JOB_ID": "1234567",
    "SLURM_JOB_NAME": "train",
    "SLURM_NODELIST": "node[001-002]",
}


def test_slurm_reads_sruns_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _SRUN)
    env = SLURMEnvironment()
    assert SLURMEnvironment.detect() is True
    assert env.creates_processes_externally is True
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 6, 2, 1)
    assert (SLURMEnvironment.job_id(), SLURMEnvironment.job_name()) == (1234567, "train")


def test_slurm_derives_and_exports_address_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _SRUN)
    env = SLURMEnvironment()
    assert env.main_address == "node001"
    assert env.main_port == 15000 + 4567
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("node001", "19567")


def test_slurm_port_from_a_short_job_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert SLURMEnvironment().main_port == 15042


def test_slurm_without_job_id_or_nodelist_uses_local_defaults() -> None:
    env = SLURMEnvironment()
    assert (env.main_address, env.main_port) == ("127.0.0.1", 12910)


def test_slurm_master_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**_SRUN, "MASTER_ADDR": "head", "MASTER_PORT": "31000"})
    env = SLURMEnvironment()
    assert (env.main_address, env.main_port) == ("head", 31000)


def test_slurm_names_a_malformed_job_id_when_choosing_a_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "12a4")
    with pytest.raises(ValueError, match="SLURM_JOB_ID='12a4'"):
        _ = SLURMEnvironment().main_port
    assert SLURMEnvironment.job_id() is None


def test_slurm_names_a_malformed_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**_SRUN, "SLURM_PROCID": "six"})
    with pytest.raises(ValueError, match="SLURM_PROCID='six'"):
        SLURMEnvironment().global_rank()


def test_slurm_ignores_ranks_set_by_the_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _SRUN)
    env = SLURMEnvironment()
    env.set_world_size(1)
    env.set_global_rank(0)
    assert (env.world_size(), env.global_rank()) == (8, 6)


@pytest.mark.parametrize(
    ("nodes", "root"),
    [
        ("node001", "node001"),
        ("node[001-004,007]", "node001"),
        ("node[007,001-003]", "node007"),
        ("node[5]", "node5"),
        ("host0,host1,host3", "host0"),
        ("host0 host1 host3", "host0"),
        ("node[09-10],login[1-2]", "node09"),
        # Lightning's regular expression drops text after a range ("gpu-a10", "rack1"); these
        # are the hosts SLURM itself names first.
        ("gpu-a[10-11]-ib,gpu-b[1-2]", "gpu-a10-ib"),
        ("rack[1-2]-node[3-4]", "rack1-node3"),
        ("  node7  ", "node7"),
        ("10.0.0.5", "10.0.0.5"),
    ],
)
def test_slurm_resolves_the_first_host_of_a_node_list(nodes: str, root: str) -> None:
    assert SLURMEnvironment.resolve_root_node_address(nodes) == root


@pytest.mark.parametrize(
    ("nodes", "problem"),
    [
        ("node[001-004", "brackets do not pair up"),
        ("node]1[", "brackets do not pair up"),
        ("node[[1-2]]", "brackets do not pair up"),
        ("node[]", "does not start with a number"),
        ("node[a-c]", "does not start with a number"),
        ("", "names no host"),
        (",node1", "cannot read a host name"),
    ],
)
def test_slurm_names_a_malformed_node_list(nodes: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(repr(nodes))}.*SLURM_NODELIST.*{problem}"):
        SLURMEnvironment.resolve_root_node_address(nodes)


def test_slurm_main_address_names_a_malformed_node_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NODELIST", "node[1-")
    with pytest.raises(ValueError, match="SLURM_NODELIST"):
        _ = SLURMEnvironment().main_address


@pytest.mark.parametrize("job_name", ["bash", "interactive"])
def test_slurm_is_not_detected_in_interactive_jobs(
    monkeypatch: pytest.MonkeyPatch, job_name: str
) -> None:
    _set(monkeypatch, {**_SRUN, "SLURM_JOB_NAME": job_name})
    assert SLURMEnvironment.detect() is False
    assert SLURMEnvironment.job_id() is None
    SLURMEnvironment().validate_settings(num_devices=1, num_nodes=1)  # interactive: no checks


def test_slurm_is_not_detected_without_ntasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    assert SLURMEnvironment.detect() is False


def test_slurm_warns_when_srun_is_installed_but_unused(_no_launcher: Path) -> None:
    _script(_no_launcher, "srun", "exit 0")
    with pytest.warns(PossibleUserWarning, match="`srun` is installed.*`srun .*`"):
        assert SLURMEnvironment.detect() is False


def test_slurm_does_not_warn_when_srun_started_the_process(
    monkeypatch: pytest.MonkeyPatch, _no_launcher: Path
) -> None:
    _script(_no_launcher, "srun", "exit 0")
    _set(monkeypatch, _SRUN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SLURMEnvironment.detect() is True
        SLURMEnvironment()


def test_slurm_rejects_ntasks_without_ntasks_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "4")
    with pytest.raises(RuntimeError, match="--ntasks=4 without --ntasks-per-node"):
        SLURMEnvironment()


def test_slurm_validates_devices_against_ntasks_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _SRUN)
    env = SLURMEnvironment()
    env.validate_settings(num_devices=4, num_nodes=2)
    with pytest.raises(ValueError, match=r"devices=2.*--ntasks-per-node=4.*devices=4"):
        env.validate_settings(num_devices=2, num_nodes=2)
    with pytest.raises(ValueError, match=r"num_nodes=1.*--nodes=2.*num_nodes=2"):
        env.validate_settings(num_devices=4, num_nodes=1)


def test_slurm_requeue_signal_defaults_to_sigusr1() -> None:
    env = SLURMEnvironment()
    assert (env.auto_requeue, env.requeue_signal) == (True, signal.SIGUSR1)
    env = SLURMEnvironment(auto_requeue=False, requeue_signal=signal.SIGUSR2)
    assert (env.auto_requeue, env.requeue_signal) == (False, signal.SIGUSR2)


def _recording_scontrol(bin_dir: Path, tmp_path: Path) -> Path:
    record = tmp_path / "scontrol_args.txt"
    _script(bin_dir, "scontrol", f'printf "%s\\n" "$@" > "{record}"')
    return record


def test_slurm_requeue_runs_scontrol_with_the_job_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _no_launcher: Path
) -> None:
    record = _recording_scontrol(_no_launcher, tmp_path)
    _set(monkeypatch, _SRUN)
    SLURMEnvironment().requeue()
    assert record.read_text().splitlines() == ["requeue", "1234567"]


def test_slurm_requeue_names_the_array_task(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _no_launcher: Path
) -> None:
    record = _recording_scontrol(_no_launcher, tmp_path)
    _set(monkeypatch, {**_SRUN, "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3"})
    SLURMEnvironment().requeue()
    assert record.read_text().splitlines() == ["requeue", "77_3"]


def test_slurm_requeue_reports_a_failing_scontrol(
    monkeypatch: pytest.MonkeyPatch, _no_launcher: Path
) -> None:
    _script(_no_launcher, "scontrol", 'echo "Invalid job id specified" >&2; exit 1')
    _set(monkeypatch, _SRUN)
    with pytest.raises(RuntimeError, match="requeue 1234567` failed with exit code 1: Invalid job"):
        SLURMEnvironment().requeue()


def test_slurm_requeue_without_scontrol_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _SRUN)
    with pytest.raises(RuntimeError, match="`scontrol` is not on PATH"):
        SLURMEnvironment().requeue()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SLURM_JOB_ID": "12x"}, "SLURM_JOB_ID='12x'"),
        ({"SLURM_ARRAY_JOB_ID": "77"}, "SLURM_ARRAY_TASK_ID=None"),
        ({"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "a"}, "SLURM_ARRAY_TASK_ID='a'"),
    ],
)
def test_slurm_requeue_names_a_malformed_job_id(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    _no_launcher: Path,
    variables: dict[str, str],
    message: str,
) -> None:
    record = _recording_scontrol(_no_launcher, tmp_path)
    _set(monkeypatch, variables)
    with pytest.raises(ValueError, match=message):
        SLURMEnvironment().requeue()
    assert not record.exists()


# ---------------------------------------------------------------------------------------------
# KubeflowEnvironment

_PYTORCHJOB = {
    "KUBERNETES_PORT": "tcp://10.0.0.1:443",
    "MASTER_ADDR": "job-master-0",
    "MASTER_PORT": "23456",
    "WORLD_SIZE": "4",
    "RANK": "3",
}


def test_kubeflow_reads_the_operators_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _PYTORCHJOB)
    env = KubeflowEnvironment()
    assert env.creates_processes_externally is True
    assert (env.main_address, env.main_port) == ("job-master-0", 23456)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (4, 3, 0, 3)
    env.set_world_size(1)
    env.set_global_rank(0)
    assert (env.world_size(), env.global_rank()) == (4, 3)


def test_kubeflow_is_never_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _PYTORCHJOB)
    with pytest.raises(NotImplementedError, match="plugins=\\[KubeflowEnvironment\\(\\)\\]"):
        KubeflowEnvironment.detect()


def test_kubeflow_names_missing_variables() -> None:
    with pytest.raises(ValueError, match="MASTER_ADDR, which is not set"):
        _ = KubeflowEnvironment().main_address
    with pytest.raises(ValueError, match="RANK, which is not set"):
        KubeflowEnvironment().node_rank()


# ---------------------------------------------------------------------------------------------
# LSFEnvironment


@pytest.fixture
def jsrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rankfile = tmp_path / "rankfile"
    rankfile.write_text("launch\nnode1\nnode1\nnode2\nnode2\n\n")
    monkeypatch.setattr(socket, "gethostname", lambda: "node2")
    _set(
        monkeypatch,
        {
            "LSB_JOBID": "123456",
            "LSB_DJOB_RANKFILE": str(rankfile),
            "JSM_NAMESPACE_SIZE": "4",
            "JSM_NAMESPACE_RANK": "3",
            "JSM_NAMESPACE_LOCAL_RANK": "1",
        },
    )
    return rankfile


def test_lsf_reads_jsrun_and_the_rank_file(jsrun: Path) -> None:
    env = LSFEnvironment()
    assert LSFEnvironment.detect() is True
    assert env.creates_processes_externally is True
    assert (env.main_address, env.main_port) == ("node1", 10456)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (4, 3, 1, 1)
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("node1", "10456")


def test_lsf_honours_master_port(jsrun: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_PORT", "20001")
    assert LSFEnvironment().main_port == 20001


def test_lsf_matches_short_and_full_host_names(
    jsrun: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "node2.cluster.example")
    assert LSFEnvironment().node_rank() == 1


@pytest.mark.parametrize(
    "missing", ["LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE"]
)
def test_lsf_is_detected_only_with_every_variable(
    jsrun: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    assert LSFEnvironment.detect() is False


def test_lsf_names_an_unreadable_rank_file(jsrun: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSB_DJOB_RANKFILE", str(jsrun.parent / "missing"))
    with pytest.raises(ValueError, match="cannot read LSB_DJOB_RANKFILE=.*missing"):
        LSFEnvironment()
    monkeypatch.setenv("LSB_DJOB_RANKFILE", "")
    with pytest.raises(ValueError, match="LSB_DJOB_RANKFILE.*''"):
        LSFEnvironment()


def test_lsf_rejects_a_rank_file_without_compute_hosts(jsrun: Path) -> None:
    jsrun.write_text("launch\n")
    with pytest.raises(ValueError, match="no compute host after the launch node"):
        LSFEnvironment()


def test_lsf_names_a_host_missing_from_the_rank_file(
    jsrun: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "elsewhere")
    with pytest.raises(ValueError, match=r"'elsewhere'.*\['node1', 'node2'\]"):
        LSFEnvironment()


def test_lsf_names_a_malformed_job_id(jsrun: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSB_JOBID", "job7")
    with pytest.raises(ValueError, match="LSB_JOBID='job7'"):
        LSFEnvironment()


# ---------------------------------------------------------------------------------------------
# MPIEnvironment

_OPEN_MPI = {
    "OMPI_COMM_WORLD_SIZE": "8",
    "OMPI_COMM_WORLD_RANK": "5",
    "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
}
_MPICH = {"PMI_SIZE": "8", "PMI_RANK": "5", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "4"}
_MVAPICH = {
    "MV2_COMM_WORLD_SIZE": "8",
    "MV2_COMM_WORLD_RANK": "5",
    "MV2_COMM_WORLD_LOCAL_RANK": "1",
    "MV2_COMM_WORLD_LOCAL_SIZE": "4",
}


@pytest.mark.parametrize(
    "variables", [_OPEN_MPI, _MPICH, _MVAPICH], ids=["openmpi", "mpich", "mvapich"]
)
def test_mpi_reads_the_launchers_variables(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    _set(monkeypatch, {**variables, "MASTER_ADDR": "node0", "MASTER_PORT": "29500"})
    env = MPIEnvironment()
    assert MPIEnvironment.detect() is True
    assert env.creates_processes_externally is True
    assert (env.main_address, env.main_port) == ("node0", 29500)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 5, 1, 1)
    env.set_world_size(1)
    env.set_global_rank(0)
    assert (env.world_size(), env.global_rank()) == (8, 5)


def test_mpi_is_not_detected_for_one_process_or_no_launcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MPIEnvironment.detect() is False
    _set(monkeypatch, {**_OPEN_MPI, "OMPI_COMM_WORLD_SIZE": "1"})
    assert MPIEnvironment.detect() is False


def test_mpi_names_a_malformed_world_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMI_SIZE", "many")
    with pytest.raises(ValueError, match="PMI_SIZE='many'"):
        MPIEnvironment.detect()


def test_mpi_without_a_launcher_says_how_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="OMPI_COMM_WORLD_SIZE, PMI_SIZE.*mpirun"):
        MPIEnvironment()


def test_mpi_on_one_node_meets_on_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**_OPEN_MPI, "OMPI_COMM_WORLD_LOCAL_SIZE": "8"})
    assert MPIEnvironment().main_address == "127.0.0.1"


def test_mpi_on_several_nodes_needs_master_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _OPEN_MPI)
    with pytest.raises(ValueError, match="OMPI_COMM_WORLD_LOCAL_SIZE=4.*MASTER_ADDR"):
        _ = MPIEnvironment().main_address


def test_mpi_derives_the_same_port_from_the_job_id(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, _OPEN_MPI)
    assert MPIEnvironment().main_port == 12910
    monkeypatch.setenv("PMIX_NAMESPACE", "prterun-node0-4242@1")
    port = MPIEnvironment().main_port
    assert port == 10000 + zlib.crc32(b"prterun-node0-4242@1") % 20000
    assert 10000 <= port < 30000


def test_mpi_rejects_a_zero_local_size(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**_MPICH, "MPI_LOCALNRANKS": "0"})
    with pytest.raises(ValueError, match="MPI_LOCALNRANKS=0"):
        MPIEnvironment().node_rank()


# ---------------------------------------------------------------------------------------------
# XLAEnvironment


def test_xla_environment_is_not_supported() -> None:
    with pytest.raises(MisconfigurationException, match="XLAEnvironment is not supported"):
        XLAEnvironment()


# ---------------------------------------------------------------------------------------------
# detect_cluster_environment

_SLURM_ONE_TASK = {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_ID": "9"}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, LightningEnvironment),
        (_PYTORCHJOB, LightningEnvironment),
        (_SLURM_ONE_TASK, SLURMEnvironment),
        ({**_SLURM_ONE_TASK, **_TORCHRUN}, TorchElasticEnvironment),
        ({**_SLURM_ONE_TASK, "SLURM_JOB_NAME": "interactive"}, LightningEnvironment),
        ({**_SLURM_ONE_TASK, "SLURM_JOB_NAME": "bash", **_TORCHRUN}, TorchElasticEnvironment),
        ({**_SLURM_ONE_TASK, **_OPEN_MPI}, SLURMEnvironment),
        (_OPEN_MPI, MPIEnvironment),
        ({**_TORCHRUN, **_OPEN_MPI}, TorchElasticEnvironment),
    ],
    ids=[
        "nothing",
        "kubeflow",
        "slurm",
        "torchrun-in-slurm",
        "slurm-interactive",
        "torchrun-in-slurm-bash",
        "mpi-in-slurm",
        "mpi",
        "torchrun-and-mpi",
    ],
)
def test_detection_follows_lightnings_order(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: type[ClusterEnvironment]
) -> None:
    _set(monkeypatch, variables)
    assert type(detect_cluster_environment()) is expected


def test_detection_prefers_slurm_and_lsf_over_mpi(
    jsrun: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, _OPEN_MPI)
    assert type(detect_cluster_environment()) is LSFEnvironment
    _set(monkeypatch, _SLURM_ONE_TASK)
    assert type(detect_cluster_environment()) is SLURMEnvironment


# ---------------------------------------------------------------------------------------------
# Lightning as the oracle: same variables, same ranks, addresses and ports

_OBSERVED = (
    "detect",
    "creates_processes_externally",
    "main_address",
    "main_port",
    "world_size",
    "global_rank",
    "local_rank",
    "node_rank",
)


def _observe(
    cls: type[Any], variables: dict[str, str], hostname: str, devices_nodes: list[tuple[int, int]]
) -> dict[str, Any]:
    """Build `cls` under exactly `variables` and record what it reports (or which error)."""
    seen: dict[str, Any] = {}
    with mock.patch.dict(os.environ, variables, clear=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both libraries warn about defaults; values matter here
        with mock.patch.object(socket, "gethostname", lambda: hostname):
            try:
                env = cls()
            except Exception as error:
                return {"init": type(error).__name__}
            for name in _OBSERVED:
                try:
                    value = getattr(env, name)
                    seen[name] = value() if callable(value) else value
                except Exception as error:
                    seen[name] = type(error).__name__
            for devices, nodes in devices_nodes:
                try:
                    env.validate_settings(num_devices=devices, num_nodes=nodes)
                    seen[f"validate({devices}, {nodes})"] = "ok"
                except Exception as error:
                    seen[f"validate({devices}, {nodes})"] = type(error).__name__
            seen["exported"] = {key: os.environ.get(key) for key in ("MASTER_ADDR", "MASTER_PORT")}
    return seen


def _compat_scenarios(rankfile: str) -> list[tuple[str, dict[str, str]]]:
    slurm = {key: value for key, value in _SRUN.items()}
    return [
        ("LightningEnvironment", {"MASTER_PORT": "29501"}),
        (
            "LightningEnvironment",
            {"MASTER_ADDR": "10.0.0.9", "MASTER_PORT": "1234", "NODE_RANK": "2", "LOCAL_RANK": "1"},
        ),
        ("LightningEnvironment", {"GROUP_RANK": "3", "MASTER_PORT": "5555", "WORLD_SIZE": "4"}),
        ("TorchElasticEnvironment", _TORCHRUN),
        ("TorchElasticEnvironment", {**_TORCHRUN, "GROUP_RANK": "0", "WORLD_SIZE": "4"}),
        (
            "TorchElasticEnvironment",
            {"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"},
        ),
        ("SLURMEnvironment", slurm),
        (
            "SLURMEnvironment",
            {**slurm, "SLURM_NODELIST": "node[001-004,007]", "SLURM_JOB_ID": "987"},
        ),
        (
            "SLURMEnvironment",
            {**slurm, "SLURM_NODELIST": "host0,host1", "SLURM_JOB_ID": "55501234"},
        ),
        ("SLURMEnvironment", {**slurm, "SLURM_NODELIST": "host3 host1", "SLURM_JOB_ID": "7"}),
        ("SLURMEnvironment", {**slurm, "SLURM_NODELIST": "gpu[5]"}),
        ("SLURMEnvironment", {**slurm, "MASTER_ADDR": "head", "MASTER_PORT": "31000"}),
        ("SLURMEnvironment", {**slurm, "SLURM_JOB_NAME": "interactive"}),
        ("SLURMEnvironment", {**slurm, "SLURM_NTASKS_PER_NODE": "8", "SLURM_NNODES": "1"}),
        ("SLURMEnvironment", {k: v for k, v in slurm.items() if k != "SLURM_NTASKS_PER_NODE"}),
        (
            "SLURMEnvironment",
            {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"},
        ),
        ("KubeflowEnvironment", _PYTORCHJOB),
        (
            "LSFEnvironment",
            {
                "LSB_JOBID": "123456",
                "LSB_DJOB_RANKFILE": rankfile,
                "JSM_NAMESPACE_SIZE": "4",
                "JSM_NAMESPACE_RANK": "3",
                "JSM_NAMESPACE_LOCAL_RANK": "1",
            },
        ),
        (
            "LSFEnvironment",
            {
                "LSB_JOBID": "77",
                "LSB_DJOB_RANKFILE": rankfile,
                "JSM_NAMESPACE_SIZE": "4",
                "JSM_NAMESPACE_RANK": "0",
                "JSM_NAMESPACE_LOCAL_RANK": "0",
                "MASTER_PORT": "4000",
            },
        ),
    ]


@pytest.mark.compat
def test_environments_report_what_lightning_reports(tmp_path: Path) -> None:
    theirs = pytest.importorskip("lightning_fabric.plugins.environments")
    rankfile = tmp_path / "lsf_rankfile"
    rankfile.write_text("launch\nnode1\nnode1\nnode2\nnode2\n")
    checks = [(1, 1), (4, 2), (2, 2), (8, 1)]
    for name, variables in _compat_scenarios(str(rankfile)):
        ours = _observe(getattr(environments, name), variables, "node2", checks)
        expected = _observe(getattr(theirs, name), variables, "node2", checks)
        assert ours == expected, (name, variables)


@pytest.mark.compat
@pytest.mark.parametrize(
    "nodes",
    [
        "node001",
        "node[001-004,007]",
        "node[007,001-003]",
        "node[5]",
        "host0,host1,host3",
        "host0 host1 host3",
        "node[09-10],login[1-2]",
    ],
)
def test_node_list_resolves_as_in_lightning(nodes: str) -> None:
    theirs = pytest.importorskip("lightning_fabric.plugins.environments")
    expected = theirs.SLURMEnvironment.resolve_root_node_address(nodes)
    assert SLURMEnvironment.resolve_root_node_address(nodes) == expected


_DETECTION_SCENARIOS = [
    {},
    _PYTORCHJOB,
    _SLURM_ONE_TASK,
    {**_SLURM_ONE_TASK, **_TORCHRUN},
    {**_SLURM_ONE_TASK, "SLURM_JOB_NAME": "interactive"},
    {**_SLURM_ONE_TASK, "SLURM_JOB_NAME": "bash", **_TORCHRUN},
    _TORCHRUN,
]


@pytest.mark.compat
@pytest.mark.parametrize("variables", _DETECTION_SCENARIOS)
def test_detection_chooses_what_lightning_chooses(variables: dict[str, str]) -> None:
    pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.trainer.connectors.accelerator_connector import _AcceleratorConnector

    # Lightning's choice lives in a private method of its connector; call it on a stand-in.
    connector = types.SimpleNamespace(_cluster_environment_flag=None)
    with mock.patch.dict(os.environ, variables, clear=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _AcceleratorConnector._choose_and_init_cluster_environment(connector)  # type: ignore[arg-type]
        ours = detect_cluster_environment()
    assert type(ours).__name__ == type(expected).__name__


def test_requeue_signal_matches_platform() -> None:
    # Windows has no SIGUSR1: the default is None there, as in Lightning.
    expected = None if sys.platform == "win32" else signal.SIGUSR1
    assert SLURMEnvironment().requeue_signal == expected
