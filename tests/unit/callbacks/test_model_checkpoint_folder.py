"""ModelCheckpoint puts its folder back in order after a killed run: leftovers and unlisted files."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.checkpoint_folder import name_pattern
from fulmen.callbacks.model_checkpoint import ModelCheckpoint
from fulmen.plugins.io import TorchCheckpointIO


class Strategy:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def remove_checkpoint(self, filepath: str) -> None:
        self.removed.append(filepath)
        TorchCheckpointIO().remove_checkpoint(filepath)


def fake_trainer(root: Path, rank: int = 0, resuming: bool = False, ckpt_path: str = "") -> Any:
    return SimpleNamespace(
        default_root_dir=str(root),
        loggers=[],
        strategy=Strategy(),
        is_global_zero=rank == 0,
        _resume_requested=resuming,
        ckpt_path=ckpt_path or None,
    )


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------- leftovers


def test_setup_removes_exactly_the_temporary_names_of_interrupted_saves(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    leftovers = ["epoch=1-step=8.ckpt.0123abcd.tmp", "last.ckpt.deadbeef.tmp"]
    kept = [
        "epoch=0-step=4.ckpt",
        "notes.tmp",
        "epoch=1.ckpt.tmp",
        "epoch=1.ckpt.0123ABCD.tmp",  # torch's names are lowercase hex
        "epoch=1.ckpt.012345678.tmp",  # nine digits
        "epoch=1.ckpt.0123abcd.tmp.bak",
        "model.pt.0123abcd.tmp",  # not a checkpoint name of this callback
        ".ckpt.0123abcd.tmp",  # no name before the extension
    ]
    for name in leftovers + kept:
        touch(folder / name)
    touch(folder / "sharded.ckpt.89abcdef.deleting" / "shard_0.pt")
    ModelCheckpoint(dirpath=folder).setup(fake_trainer(tmp_path, resuming=True), None, "fit")  # type: ignore[arg-type]
    assert tree(folder) == sorted(kept)


def test_leftovers_in_metric_subfolders_are_removed_too(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    touch(folder / "val" / "loss=0.50.ckpt.0123abcd.tmp")
    touch(folder / "val" / "loss=0.40.ckpt")
    checkpoint = ModelCheckpoint(dirpath=folder, filename="{val/loss:.2f}")
    checkpoint.setup(fake_trainer(tmp_path, resuming=True), None, "fit")  # type: ignore[arg-type]
    assert tree(folder) == ["val", "val/loss=0.40.ckpt"]


def test_a_folder_holding_only_leftovers_does_not_warn_that_it_is_in_use(tmp_path: Path) -> None:
    touch(tmp_path / "ck" / "epoch=0-step=4.ckpt.0123abcd.tmp")
    ModelCheckpoint(dirpath=tmp_path / "ck").setup(fake_trainer(tmp_path), None, "fit")  # type: ignore[arg-type]
    assert os.listdir(tmp_path / "ck") == []


def test_only_rank_zero_and_only_fit_remove_leftovers(tmp_path: Path) -> None:
    leftover = touch(tmp_path / "ck" / "epoch=0-step=4.ckpt.0123abcd.tmp")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck")
    checkpoint.setup(fake_trainer(tmp_path, rank=1), None, "fit")  # type: ignore[arg-type]
    checkpoint.setup(fake_trainer(tmp_path), None, "validate")  # type: ignore[arg-type]
    assert leftover.exists()


def test_leftovers_in_a_remote_folder_are_removed(tmp_path: Path) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    root = f"/fulmen-leftovers-{os.getpid()}"
    fs.pipe(f"{root}/ck/epoch=0-step=4.ckpt", b"keep")
    fs.pipe(f"{root}/ck/epoch=0-step=8.ckpt.0123abcd.tmp", b"partial")
    try:
        checkpoint = ModelCheckpoint(dirpath=f"memory://{root}/ck")
        checkpoint.setup(fake_trainer(tmp_path, resuming=True), None, "fit")  # type: ignore[arg-type]
        assert fs.ls(f"{root}/ck", detail=False) == [f"{root}/ck/epoch=0-step=4.ckpt"]
    finally:
        fs.rm(root, recursive=True)


# ---------------------------------------------------------------------------- resumed state


def save_state(checkpoint: ModelCheckpoint, path: Path, state_key: str | None = None) -> Path:
    """Write a checkpoint file whose callback state is `checkpoint`'s, as a save by it would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {state_key or checkpoint.state_key: checkpoint.state_dict()}
    torch.save({"global_step": 1, "callbacks": state, "state_dict": {}}, path)
    return path


def restored(folder: Path, **kwargs: Any) -> ModelCheckpoint:
    """A callback set up in `folder` with top-2 state listing a.ckpt (1.0) and b.ckpt (2.0)."""
    checkpoint = ModelCheckpoint(dirpath=folder, monitor="loss", save_top_k=2, **kwargs)
    listed = {str(folder / "a.ckpt"): torch.tensor(1.0), str(folder / "b.ckpt"): torch.tensor(2.0)}
    state = {
        "monitor": "loss",
        "best_model_score": torch.tensor(1.0),
        "best_model_path": str(folder / "a.ckpt"),
        "current_score": torch.tensor(2.0),
        "dirpath": str(folder),
        "best_k_models": listed,
        "kth_best_model_path": str(folder / "b.ckpt"),
        "kth_value": torch.tensor(2.0),
        "last_model_path": str(folder / "last.ckpt"),
    }
    checkpoint.load_state_dict(state)
    return checkpoint


def test_resume_forgets_lost_files_and_removes_only_unlisted_files_of_this_callback(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ck"
    checkpoint = restored(folder, filename="{epoch}")
    save_state(checkpoint, folder / "a.ckpt")  # listed; b.ckpt is listed but gone
    last = save_state(checkpoint, folder / "last.ckpt")
    stray = save_state(checkpoint, folder / "epoch=3.ckpt")  # written after the resumed state
    stray_version = save_state(checkpoint, folder / "epoch=3-v1.ckpt")
    other_callback = save_state(checkpoint, folder / "epoch=4.ckpt", state_key="ModelCheckpoint{}")
    weights_only = folder / "epoch=5.ckpt"
    torch.save({"state_dict": {}}, weights_only)
    unreadable = touch(folder / "epoch=6.ckpt", b"not a checkpoint")
    other_name = save_state(checkpoint, folder / "best.ckpt")  # not a name this callback renders
    trainer = fake_trainer(tmp_path, resuming=True, ckpt_path=str(last))
    checkpoint.on_train_start(trainer, None)  # type: ignore[arg-type]
    assert sorted(trainer.strategy.removed) == [str(stray_version), str(stray)]
    survivors = [other_callback, weights_only, unreadable, other_name]
    assert tree(folder) == sorted(["a.ckpt", "last.ckpt", *(path.name for path in survivors)])
    assert checkpoint.best_k_models == {str(folder / "a.ckpt"): torch.tensor(1.0)}
    assert (checkpoint.best_model_path, checkpoint.kth_best_model_path) == (
        str(folder / "a.ckpt"),
        str(folder / "a.ckpt"),
    )
    assert checkpoint.best_model_score == 1.0 and checkpoint.kth_value == 1.0


def test_resuming_from_an_older_checkpoint_on_purpose_removes_no_later_file(
    tmp_path: Path,
) -> None:
    # Only a resume from `last` continues a run that may have died after writing more files.
    folder = tmp_path / "ck"
    checkpoint = restored(folder, filename="{epoch}")
    older = save_state(checkpoint, folder / "a.ckpt")
    later = save_state(checkpoint, folder / "epoch=9.ckpt")
    trainer = fake_trainer(tmp_path, resuming=True, ckpt_path=str(older))
    checkpoint.on_train_start(trainer, None)  # type: ignore[arg-type]
    assert trainer.strategy.removed == []
    assert later.exists()


def test_the_checkpoint_resumed_from_is_never_removed(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    checkpoint = restored(folder, filename="{epoch}")
    resumed_from = save_state(checkpoint, folder / "epoch=3.ckpt")
    trainer = fake_trainer(tmp_path, resuming=True, ckpt_path=str(resumed_from))
    checkpoint.on_train_start(trainer, None)  # type: ignore[arg-type]
    assert resumed_from.exists()


def test_with_every_file_lost_the_best_paths_are_cleared(tmp_path: Path) -> None:
    checkpoint = restored(tmp_path / "ck")
    checkpoint.on_train_start(fake_trainer(tmp_path, resuming=True), None)  # type: ignore[arg-type]
    assert checkpoint.best_k_models == {}
    assert (checkpoint.best_model_path, checkpoint.kth_best_model_path) == ("", "")
    assert checkpoint.best_model_score is None and checkpoint.kth_value == float("inf")


@pytest.mark.parametrize("save_top_k", [-1, 0])
def test_nothing_is_removed_when_the_callback_never_removes_files(
    tmp_path: Path, save_top_k: int
) -> None:
    folder = tmp_path / "ck"
    checkpoint = restored(folder, filename="{epoch}")
    checkpoint.save_top_k = save_top_k
    stray = save_state(checkpoint, folder / "epoch=3.ckpt")
    checkpoint.on_train_start(fake_trainer(tmp_path, resuming=True), None)  # type: ignore[arg-type]
    assert stray.exists()


def test_a_state_from_another_folder_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    checkpoint = ModelCheckpoint(dirpath=folder, monitor="loss", save_top_k=2, filename="{epoch}")
    stray = save_state(checkpoint, folder / "epoch=3.ckpt")
    with pytest.warns(UserWarning, match="dirpath changed"):
        checkpoint.load_state_dict(
            {"dirpath": str(tmp_path / "elsewhere"), "best_model_path": "", "monitor": "loss"}
        )
    checkpoint.on_train_start(fake_trainer(tmp_path, resuming=True), None)  # type: ignore[arg-type]
    assert stray.exists()


def test_the_folder_is_compared_once_per_restore(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    checkpoint = restored(folder, filename="{epoch}")
    checkpoint.on_train_start(fake_trainer(tmp_path, resuming=True), None)  # type: ignore[arg-type]
    later = save_state(checkpoint, folder / "epoch=7.ckpt")  # e.g. a second fit's own file
    checkpoint.on_train_start(fake_trainer(tmp_path), None)  # type: ignore[arg-type]
    assert later.exists()


@pytest.mark.parametrize(
    ("kwargs", "template", "matching", "not_matching"),
    [
        ({}, "{epoch}-{step}", ["epoch=3-step=10.ckpt", "epoch=3-step=10-v2.ckpt"], ["last.ckpt"]),
        (
            {"auto_insert_metric_name": False},
            "e{epoch:02d}_{val_loss:.2f}",
            ["e03_0.25.ckpt"],
            ["e03_0.25.pt", "x03_0.25.ckpt", "e03.ckpt"],
        ),
        ({}, "last", ["last.ckpt", "last-v1.ckpt"], ["last-1.ckpt", "blast.ckpt"]),
    ],
)
def test_name_pattern_matches_what_format_checkpoint_name_renders(
    kwargs: dict[str, Any], template: str, matching: list[str], not_matching: list[str]
) -> None:
    pattern = name_pattern(ModelCheckpoint(**kwargs), template)
    rendered = ModelCheckpoint(**kwargs).format_checkpoint_name(
        {"epoch": 3, "step": 10, "val_loss": 0.25}, filename=template, ver=4
    )
    assert pattern.match(rendered)
    assert [name for name in matching if pattern.match(name)] == matching
    assert [name for name in not_matching if pattern.match(name)] == []


@pytest.mark.parametrize("save_last", [True, False])
def test_resume_from_last_without_a_last_file_removes_what_a_run_killed_early_wrote(
    tmp_path: Path, save_last: bool
) -> None:
    # Killed between its first top-k save and its first `last` save: fit(ckpt_path="last")
    # finds nothing and starts afresh; the orphaned top-k file must not stay beside the new ones.
    folder = tmp_path / "ck"
    checkpoint = ModelCheckpoint(dirpath=folder, monitor="loss", save_top_k=2, save_last=save_last)
    checkpoint.dirpath = str(folder)
    orphan = save_state(checkpoint, folder / "epoch=0-step=1.ckpt")
    trainer = fake_trainer(tmp_path, resuming=True)
    trainer._resume_from_last = True
    checkpoint.on_train_start(trainer, None)  # type: ignore[arg-type]
    # Without save_last, no `last` file proves the run died early: the file is left alone.
    assert trainer.strategy.removed == ([str(orphan)] if save_last else [])
