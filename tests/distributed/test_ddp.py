"""Multi-process training on CPU (gloo, 2 processes): the same results as one process, no hangs.

Each test runs `ddp_script.py` in real processes, as a user would, with a timeout so that a hang
fails the test instead of blocking CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.distributed import ddp_script

SCRIPT = Path(ddp_script.__file__)
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PL_", "MASTER_", "LOCAL_RANK"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _run(args: list[str], timeout: float = 200, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=_env(**env), cwd=ROOT
    )


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same model trained in one process on batches twice as large (the two ranks' union)."""
    out = tmp_path_factory.mktemp("single")
    trainer, model = ddp_script.build("fit", str(out), devices=1)
    train, val = ddp_script.data(2 * ddp_script.BATCH)
    trainer.fit(model, train, val)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    validated = trainer.validate(model, val, verbose=False)
    return {
        "weights": [p.detach().flatten().tolist() for p in model.parameters()],
        "metrics": metrics,
        "validated": validated,
        "global_step": trainer.global_step,
    }


def _assert_like_single(record: dict[str, Any], single: dict[str, Any]) -> None:
    for got, want in zip(record["weights"], single["weights"]):
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=1e-6)
    assert record["global_step"] == single["global_step"] == 2 * 8
    # Validation: 13 samples over 2 ranks; the sample DistributedSampler repeats is not counted.
    assert record["validated"][0]["val_seen"] == ddp_script.N_VAL
    assert record["validated"][0]["val_count"] == ddp_script.N_VAL
    for key in ("val_loss", "loss"):
        assert record["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5)
    assert record["validated"][0]["val_loss"] == pytest.approx(
        single["validated"][0]["val_loss"], rel=1e-5
    )


def test_ddp_trains_like_one_process_with_the_combined_batch(
    tmp_path: Path, single: dict[str, Any]
) -> None:
    result = _run([sys.executable, str(SCRIPT), "fit", "ddp", str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert [r["rank"] for r in records] == [0, 1]
    assert all(r["world_size"] == 2 for r in records)
    assert records[0]["weights"] == records[1]["weights"]  # bitwise the same on every rank
    for record in records:
        _assert_like_single(record, single)
    # sync_dist gives the global mean: the mean of the two ranks' numbers, 0 and 1.
    assert records[0]["metrics"]["rank_epoch"] == records[1]["metrics"]["rank_epoch"] == 0.5
    # Checkpoints and logs are written once, by rank 0.
    ckpts = sorted(p.name for p in (tmp_path / "ckpts").iterdir())
    assert len(ckpts) == 1 and ckpts[0].endswith(".ckpt")
    assert records[0]["best_model_path"] == records[1]["best_model_path"]
    metrics_files = list(tmp_path.rglob("metrics.csv"))
    assert len(metrics_files) == 1


def test_ddp_spawn_returns_rank_zero_weights_to_the_caller(
    tmp_path: Path, single: dict[str, Any]
) -> None:
    result = _run([sys.executable, str(SCRIPT), "fit", "ddp_spawn", str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = _records(tmp_path)  # written by the calling process
    _assert_like_single(record, single)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_torchrun_nodes_on_loopback(tmp_path: Path, single: dict[str, Any]) -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=1",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{port}",
        "--rdzv_id=fulmen-test",
        str(SCRIPT),
        "fit",
        "torchrun-nodes",
        str(tmp_path),
    ]
    nodes = [
        subprocess.Popen(
            command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=200)[0].decode() for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    records = _records(tmp_path)
    assert [r["rank"] for r in records] == [0, 1]
    assert records[0]["weights"] == records[1]["weights"]
    for record in records:
        _assert_like_single(record, single)


def _leftover(marker: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if marker in line and "ps -eo" not in line]


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_a_rank_that_raises_ends_the_whole_run_with_its_traceback(
    tmp_path: Path, strategy: str
) -> None:
    start = time.monotonic()
    result = _run([sys.executable, str(SCRIPT), "fail", strategy, str(tmp_path)])
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert "ValueError: rank 1 fails on purpose" in result.stderr
    assert 'in training_step\n    raise ValueError("rank 1 fails on purpose")' in result.stderr
    assert elapsed < 150  # far below the 30-minute collective timeout
    assert not _leftover(str(tmp_path)), "a process of the failed run is still alive"


def test_ranks_logging_different_names_get_a_clear_error(tmp_path: Path) -> None:
    result = _run([sys.executable, str(SCRIPT), "diverge", "ddp", str(tmp_path)])
    assert result.returncode != 0
    assert "sync_dist=True) was called with different names on different ranks" in result.stderr
    assert "rank 0: ('only_on_rank_0',)" in result.stderr
    assert "rank 1: ('only_on_rank_1',)" in result.stderr
    assert not _leftover(str(tmp_path))


def test_a_collective_only_one_rank_enters_is_reported_not_hung(tmp_path: Path) -> None:
    result = _run(
        [sys.executable, str(SCRIPT), "hang", "ddp", str(tmp_path)],
        FULMEN_WATCHDOG_TIMEOUT="4",
    )
    assert result.returncode != 0
    assert "the run is stuck" in result.stderr
    assert "rank 0: waiting in self.log sync of ['only_rank_0']" in result.stderr
    assert "rank 1: waiting in backward" in result.stderr
    assert not _leftover(str(tmp_path))


def test_fsdp_trains_like_one_process(tmp_path: Path, single: dict[str, Any]) -> None:
    result = _run([sys.executable, str(SCRIPT), "fit", "fsdp", str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert len(records) == 2 and records[0]["weights"] == records[1]["weights"]
    for record in records:
        _assert_like_single(record, single)
    (ckpt,) = (tmp_path / "ckpts").iterdir()
    assert ckpt.is_file()  # state_dict_type="full": one ordinary file, written by rank 0


def test_fsdp_sharded_checkpoint_resumes_on_another_number_of_ranks(
    tmp_path: Path, single: dict[str, Any]
) -> None:
    from fulmen.strategies.fsdp import consolidate_checkpoint

    two = tmp_path / "two"
    result = _run([sys.executable, str(SCRIPT), "fit", "fsdp_sharded", str(two)])
    assert result.returncode == 0, result.stderr[-3000:]
    (sharded,) = (two / "ckpts").iterdir()
    assert sharded.is_dir() and {p.name for p in sharded.iterdir()} >= {
        "__0_0.distcp",
        "__1_0.distcp",
        ".metadata",
        "meta.pt",
    }
    # The 2-rank checkpoint continues on 1 rank for a third epoch...
    one = tmp_path / "one"
    result = _run(
        [sys.executable, str(SCRIPT), "fit", "fsdp_resume_on_one", str(one), str(sharded)]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (resumed,) = _records(one)
    assert resumed["global_step"] == 24
    # ...exactly as one process that trained all three epochs on the combined batches.
    trainer, model = ddp_script.build("fit", str(tmp_path / "plain"), max_epochs=3, devices=1)
    train, val = ddp_script.data(2 * ddp_script.BATCH)
    trainer.fit(model, train, val)
    for got, want in zip(resumed["weights"], model.parameters()):
        torch.testing.assert_close(torch.tensor(got), want.detach().flatten(), rtol=1e-5, atol=1e-6)
    # The sharded directory becomes one ordinary file on demand.
    single_file = tmp_path / "consolidated.ckpt"
    consolidate_checkpoint(str(sharded), str(single_file))
    loaded = ddp_script.Regression.load_from_checkpoint(str(single_file))
    for got, want in zip(loaded.parameters(), single["weights"]):
        torch.testing.assert_close(got.detach().flatten(), torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_sigterm_stops_every_rank_at_the_same_step_with_last_ckpt(tmp_path: Path) -> None:
    import signal

    job = subprocess.Popen(
        [sys.executable, str(SCRIPT), "preempt", "ddp", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
    )  # fmt: skip
    assert job.stdout is not None
    deadline = time.monotonic() + 150
    while job.stdout.readline().strip() != "READY":
        assert time.monotonic() < deadline and job.poll() is None, "never reached step 20"
    job.send_signal(signal.SIGTERM)  # to rank 0 only, as `kill PID` would; it tells rank 1
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 143, stderr[-3000:]
    checkpoint = torch.load(tmp_path / "ckpts" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] > 20
    assert "stuck" not in stderr and "failed" not in stderr
    assert not _leftover(str(tmp_path))
