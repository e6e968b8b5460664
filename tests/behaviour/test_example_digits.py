"""Run the digits example end to end, as a user would from a shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn's bundled data")

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO_ROOT / "examples" / "digits" / "train.py"


def _printed(label: str, stdout: str) -> str:
    match = re.search(rf"^{label}: (.+)$", stdout, flags=re.MULTILINE)
    assert match is not None, f"train.py printed no '{label}:' line; stdout was:\n{stdout}"
    return match.group(1).strip()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_digits_example_trains_to_95_percent_and_writes_checkpoint_and_logs(
    tmp_path: Path,
) -> None:
    env = dict(os.environ)
    # The child is a fresh interpreter: hand it the in-repo sources in case fulmen is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH")) if p
    )
    result = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--output-dir", str(tmp_path), "--max-epochs", "25"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"

    assert float(_printed("test accuracy", result.stdout)) >= 0.95

    checkpoint = Path(_printed("best checkpoint", result.stdout))
    assert checkpoint.is_file()
    assert checkpoint.suffix == ".ckpt"
    assert checkpoint.is_relative_to(tmp_path)

    log_dir = Path(_printed("logs", result.stdout))
    assert log_dir.is_relative_to(tmp_path)
    assert list(log_dir.glob("events.out.tfevents.*")), f"no TensorBoard event file in {log_dir}"
