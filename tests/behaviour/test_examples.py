"""Run each example's train.py as a user would from a shell, with --fast-dev-run.

Every example must start, run one batch of each of its loops and exit cleanly; the autoencoder
also runs one real epoch, to check that its reconstructions reach TensorBoard as images.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"


def run_example(name: str, *args: str, cwd: Path, timeout: float = 240) -> str:
    """Run examples/<name>/train.py with `args` in `cwd`; return its stdout, failing on errors."""
    env = dict(os.environ)
    # The child is a fresh interpreter: hand it the in-repo sources in case fulmen is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH")) if p
    )
    # Small models on a shared CPU: one thread each avoids threads waiting on one another.
    env.setdefault("OMP_NUM_THREADS", "1")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def printed(label: str, stdout: str) -> str:
    match = re.search(rf"^{label}: (.+)$", stdout, flags=re.MULTILINE)
    assert match is not None, f"train.py printed no '{label}:' line; stdout was:\n{stdout}"
    return match.group(1).strip()


def written_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.mark.timeout(300)
def test_autoencoder_fast_dev_run_trains_one_batch_and_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the autoencoder example reads scikit-learn's digits")
    stdout = run_example("autoencoder", "--fast-dev-run", "--output-dir", "out", cwd=tmp_path)
    assert float(printed("val_loss", stdout)) > 0
    assert written_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_autoencoder_logs_reconstructions_as_tensorboard_images(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the autoencoder example reads scikit-learn's digits")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stdout = run_example("autoencoder", "--max-epochs", "1", "--output-dir", "out", cwd=tmp_path)
    log_dir = Path(printed("logs", stdout))
    assert log_dir.is_relative_to(tmp_path)
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["reconstructions"]
    (image,) = events.Images("reconstructions")  # one validation epoch, the sanity check skipped
    assert image.encoded_image_string.startswith(b"\x89PNG")


@pytest.mark.timeout(300)
def test_gan_fast_dev_run_steps_both_optimizers_once(tmp_path: Path) -> None:
    stdout = run_example("gan", "--fast-dev-run", "--output-dir", "out", cwd=tmp_path)
    assert printed("optimizer steps", stdout) == "2"  # one generator and one discriminator step
    assert 0.0 <= float(printed("quality", stdout)) <= 1.0
    assert written_files(tmp_path) == []


@pytest.mark.timeout(300)
def test_ddp_fast_dev_run_trains_on_two_processes(tmp_path: Path) -> None:
    stdout = run_example("ddp", "--fast-dev-run", "--output-dir", "out", cwd=tmp_path)
    assert printed("world size", stdout) == "2"
    assert 0.0 <= float(printed("val_acc", stdout)) <= 1.0
    # trainer.print prints on rank 0 only: the other process adds no second line.
    assert stdout.count("val_acc:") == 1
    assert written_files(tmp_path) == []
