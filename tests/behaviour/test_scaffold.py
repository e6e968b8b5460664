"""`fulmen new NAME` writes a project that trains, passes its own tests, and never overwrites."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fulmen.scaffold import create_project, main

EXPECTED_FILES = {
    ".gitignore",
    "README.md",
    "callbacks.py",
    "config.py",
    "data.py",
    "model.py",
    "pyproject.toml",
    "train.py",
    "tests/test_smoke.py",
}


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("projects")
    assert main(["new", str(parent / "spiral")]) == 0
    return parent / "spiral"


def test_new_writes_the_project_files_named_after_the_folder(project: Path) -> None:
    assert files_under(project) == EXPECTED_FILES
    assert (project / "README.md").read_text().startswith("# spiral\n")
    assert "{{" not in "".join((project / name).read_text() for name in EXPECTED_FILES)
    assert [p.name for p in project.parent.iterdir()] == ["spiral"]  # no staging folder left


def test_generated_code_imports_fulmen_as_pl(project: Path) -> None:
    for name in ("model.py", "data.py", "callbacks.py", "train.py"):
        assert "import fulmen as pl\n" in (project / name).read_text()


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="needs ruff")
def test_generated_code_is_ruff_clean(project: Path) -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generated_train_script_learns_better_than_chance(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "train.py", "--max-epochs=2"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"test_acc=([0-9.]+)", result.stdout).group(1))
    assert accuracy > 0.6  # four classes: chance is 0.25
    assert list((project / "logs").rglob("best-*.ckpt"))


@pytest.mark.slow
def test_generated_smoke_tests_pass(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def test_new_refuses_an_existing_folder_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    assert main(["new", str(existing)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert files_under(existing) == {"notes.txt"}
    assert (existing / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_python_dash_m_fulmen_new_exits_non_zero_on_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "fulmen", "new", "taken"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "'taken' already exists" in result.stderr
    assert not any((tmp_path / "taken").iterdir())


def test_create_project_refuses_a_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="parent folder"):
        create_project(tmp_path / "missing" / "project")
