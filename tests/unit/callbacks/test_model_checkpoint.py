"""ModelCheckpoint driven by a small fake trainer that calls the hooks in Lightning's order.

The expected file sets were observed by running the same scenarios through Lightning 2.6.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.callback import Callback
from fulmen.callbacks.model_checkpoint import ModelCheckpoint
from fulmen.plugins.io import TorchCheckpointIO
from fulmen.utilities.exceptions import MisconfigurationException


class FakeStrategy:
    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def barrier(self, name: str | None = None) -> None:
        pass

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    def remove_checkpoint(self, filepath: str) -> None:
        TorchCheckpointIO().remove_checkpoint(filepath)


class RecordingLogger:
    save_dir: str | None = None
    name = "lightning_logs"
    version: int | str = 0

    def __init__(self) -> None:
        self.saved: list[str] = []

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.saved.append(
            checkpoint_callback.last_model_path or checkpoint_callback.best_model_path
        )


class FakeTrainer:
    """Just enough of a Trainer to run ModelCheckpoint through a fit, in Lightning's hook order.

    Validation logs the next value of `val_losses` as `val_loss`; the training step taken at
    `global_step` n logs `train_losses[n % len]` as `train_m`.
    """

    def __init__(
        self,
        root: Path,
        max_epochs: int = 4,
        batches: int = 4,
        val_batches: int = 1,
        val_check_interval: float = 1.0,
        check_val_every_n_epoch: int | None = 1,
        max_steps: int = -1,
        val_losses: Sequence[float] = (5, 4, 6, 3, 7),
        train_losses: Sequence[float] = (3, 1, 2, 5, 0, 4),
        loggers: list[Any] | None = None,
    ) -> None:
        self.default_root_dir = str(root)
        self.max_epochs, self.max_steps = max_epochs, max_steps
        self.num_training_batches = batches
        self.num_val_batches = [val_batches]
        self.enable_validation = val_batches > 0
        self.val_check_interval = val_check_interval
        self.check_val_every_n_epoch = check_val_every_n_epoch
        self.val_losses, self.train_losses = list(val_losses), list(train_losses)
        self.loggers = loggers or []
        self.strategy = FakeStrategy()
        self.state = SimpleNamespace(fn="fit", stage=None)
        self.current_epoch = 0
        self.global_step = 0
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.sanity_checking = False
        self.fast_dev_run: bool | int = False
        self.is_global_zero = True
        self.is_last_batch = False
        self.should_stop = False
        self.ckpt_path: str | None = None
        self.callbacks: list[Callback] = []
        self.saves: list[tuple[str, int, bool]] = []
        self._validations = 0

    def save_checkpoint(self, filepath: str, weights_only: bool = False) -> None:
        os.makedirs(os.path.dirname(filepath), exist_ok=True)
        states = {cb.state_key: cb.state_dict() for cb in self.callbacks}
        torch.save({"global_step": self.global_step, "callbacks": states}, filepath)
        self.saves.append((os.path.basename(filepath), self.global_step, weights_only))

    def hook(self, name: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(self, None, *args)

    def validate(self) -> None:
        self.hook("on_validation_start")
        for batch_idx in range(self.num_val_batches[0]):
            self.hook("on_validation_batch_end", None, None, batch_idx)
        loss = self.val_losses[self._validations % len(self.val_losses)]
        self.callback_metrics["val_loss"] = torch.tensor(float(loss))
        self._validations += 1
        self.hook("on_validation_end")

    def fit(self, *callbacks: Callback) -> FakeTrainer:
        self.callbacks = list(callbacks)
        self.hook("setup", "fit")
        self.hook("on_train_start")
        batches = self.num_training_batches
        every = (
            batches if self.val_check_interval == 1.0 else int(batches * self.val_check_interval)
        )
        while self.current_epoch < self.max_epochs and not self.should_stop:
            cve = self.check_val_every_n_epoch
            val_epoch = self.enable_validation and (
                cve is None or (self.current_epoch + 1) % cve == 0
            )
            for batch_idx in range(batches):
                # Logged in training_step, before the optimizer step advances global_step.
                loss = self.train_losses[self.global_step % len(self.train_losses)]
                self.callback_metrics["train_m"] = torch.tensor(float(loss))
                self.global_step += 1
                self.is_last_batch = batch_idx == batches - 1
                self.hook("on_train_batch_end", None, None, batch_idx)
                if val_epoch and (batch_idx + 1) % every == 0:
                    self.validate()
                if self.global_step == self.max_steps:
                    self.should_stop = True
                    break
            self.hook("on_train_epoch_end")
            self.current_epoch += 1
        self.hook("on_train_end")
        return self


def files_in(path: str | None) -> list[str]:
    assert path is not None
    return sorted(os.listdir(path))


def names(paths: dict[str, Any]) -> dict[str, float]:
    return {os.path.basename(path): float(score) for path, score in paths.items()}


def fit(
    tmp_path: Path, trainer_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[ModelCheckpoint, FakeTrainer]:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", **kwargs)
    trainer = FakeTrainer(tmp_path, **(trainer_kwargs or {})).fit(checkpoint)
    return checkpoint, trainer


# ---------------------------------------------------------------------------- construction


def test_state_key_lists_monitor_mode_and_triggers() -> None:
    assert ModelCheckpoint().state_key == (
        "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, "
        "'every_n_epochs': 1, 'train_time_interval': None}"
    )
    assert ModelCheckpoint(monitor="val_loss", every_n_train_steps=5).state_key == (
        "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 5, "
        "'every_n_epochs': 0, 'train_time_interval': None}"
    )


def test_class_constants_match_lightning() -> None:
    assert ModelCheckpoint.CHECKPOINT_JOIN_CHAR == "-"
    assert ModelCheckpoint.CHECKPOINT_EQUALS_CHAR == "="
    assert ModelCheckpoint.CHECKPOINT_NAME_LAST == "last"
    assert ModelCheckpoint.FILE_EXTENSION == ".ckpt"
    assert ModelCheckpoint.STARTING_VERSION == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"save_top_k": -2}, r"save_top_k=-2\) is invalid"),
        ({"mode": "avg"}, r"mode='avg'\) is invalid: expected 'min' or 'max'"),
        ({"every_n_epochs": -1}, r"every_n_epochs=-1\) is invalid"),
        ({"every_n_train_steps": -3}, r"every_n_train_steps=-3\) is invalid"),
        ({"save_top_k": 3}, r"save_top_k=3, monitor=None\) is invalid"),
        ({"save_last": "yes"}, r"save_last='yes'\) is invalid"),
        (
            {"every_n_train_steps": 2, "every_n_epochs": 2},
            r"every_n_train_steps=2, every_n_epochs=2\) is invalid: .* mutually exclusive",
        ),
        (
            {"every_n_epochs": 1, "train_time_interval": timedelta(0)},
            r"mutually exclusive",
        ),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        ModelCheckpoint(**kwargs)


def test_local_dirpath_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ModelCheckpoint(dirpath="ck").dirpath == os.path.realpath(tmp_path / "ck")
    assert ModelCheckpoint(dirpath="memory://bucket/ck").dirpath == "memory://bucket/ck"


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("filename", "metrics", "kwargs", "expected"),
    [
        (None, {"epoch": 0, "step": 2}, {}, "epoch=0-step=2.ckpt"),
        ("{epoch:03d}", {"epoch": 5}, {}, "epoch=005.ckpt"),
        (
            "{epoch}-{val_loss:.2f}",
            {"epoch": 2, "val_loss": torch.tensor(0.123456)},
            {},
            "epoch=2-val_loss=0.12.ckpt",
        ),
        ("{missing:d}", {}, {}, "missing=0.ckpt"),
        ("{epoch}-{epoch_test}", {"epoch": 1, "epoch_test": 7}, {}, "epoch=1-epoch_test=7.ckpt"),
        ("{epoch}-{val/loss:.1f}", {"epoch": 1, "val/loss": 0.25}, {}, "epoch=1-val/loss=0.2.ckpt"),
        ("{epoch}", {"epoch": torch.tensor(3)}, {"ver": 2, "prefix": "run"}, "run-epoch=3-v2.ckpt"),
    ],
)
def test_format_checkpoint_name_renders_lightning_names(
    filename: str | None, metrics: dict[str, Any], kwargs: dict[str, Any], expected: str
) -> None:
    assert ModelCheckpoint(filename=filename).format_checkpoint_name(metrics, **kwargs) == expected


def test_format_checkpoint_name_without_metric_names_and_with_dirpath(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, filename="e{epoch:02d}-loss{val_loss:.3f}", auto_insert_metric_name=False
    )
    name = checkpoint.format_checkpoint_name({"epoch": 4, "val_loss": 1.5})
    assert name == os.path.join(os.path.realpath(tmp_path), "e04-loss1.500.ckpt")
    assert checkpoint.format_checkpoint_name({"epoch": 4}, filename="last").endswith("/last.ckpt")


# ---------------------------------------------------------------------------- directory


def test_setup_uses_first_logger_version_dir(tmp_path: Path) -> None:
    logger = RecordingLogger()
    logger.save_dir, logger.version = str(tmp_path / "logs"), 3
    checkpoint = ModelCheckpoint()
    checkpoint.setup(FakeTrainer(tmp_path, loggers=[logger]), None, "fit")  # type: ignore[arg-type]
    assert checkpoint.dirpath == str(
        tmp_path / "logs" / "lightning_logs" / "version_3" / "checkpoints"
    )


def test_setup_keeps_string_versions_and_falls_back_to_default_root_dir(tmp_path: Path) -> None:
    logger = RecordingLogger()
    logger.version = "run_a"  # save_dir None: Lightning then uses default_root_dir
    checkpoint = ModelCheckpoint()
    checkpoint.setup(FakeTrainer(tmp_path, loggers=[logger]), None, "fit")  # type: ignore[arg-type]
    assert checkpoint.dirpath == str(tmp_path / "lightning_logs" / "run_a" / "checkpoints")

    checkpoint = ModelCheckpoint()
    checkpoint.setup(FakeTrainer(tmp_path), None, "fit")  # type: ignore[arg-type]
    assert checkpoint.dirpath == str(tmp_path / "checkpoints")


def test_setup_warns_when_directory_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "old.ckpt").write_text("x")
    with pytest.warns(UserWarning, match="exists and is not empty"):
        ModelCheckpoint(dirpath=tmp_path / "ck").setup(FakeTrainer(tmp_path), None, "fit")  # type: ignore[arg-type]


def test_link_needs_a_local_directory(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath="memory://bucket/ck", save_last="link")
    with pytest.raises(ValueError, match="save_last='link'.*memory://bucket/ck"):
        checkpoint.setup(FakeTrainer(tmp_path), None, "fit")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- which files


def test_default_keeps_only_the_latest_epoch(tmp_path: Path) -> None:
    checkpoint, trainer = fit(tmp_path)
    assert files_in(checkpoint.dirpath) == ["epoch=3-step=16.ckpt"]
    assert [step for _, step, _ in trainer.saves] == [4, 8, 12, 16]
    assert os.path.basename(checkpoint.best_model_path) == "epoch=3-step=16.ckpt"
    assert checkpoint.best_model_score is None
    assert checkpoint.last_model_path == ""


def test_top_k_keeps_the_best_by_mode(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path / "min", monitor="val_loss", save_top_k=2)
    assert files_in(checkpoint.dirpath) == ["epoch=1-step=8.ckpt", "epoch=3-step=16.ckpt"]
    assert names(checkpoint.best_k_models) == {
        "epoch=1-step=8.ckpt": 4.0,
        "epoch=3-step=16.ckpt": 3.0,
    }
    assert os.path.basename(checkpoint.best_model_path) == "epoch=3-step=16.ckpt"
    assert os.path.basename(checkpoint.kth_best_model_path) == "epoch=1-step=8.ckpt"
    assert float(checkpoint.best_model_score) == 3.0  # type: ignore[arg-type]
    assert float(checkpoint.kth_value) == 4.0

    checkpoint, _ = fit(tmp_path / "max", monitor="val_loss", save_top_k=2, mode="max")
    assert files_in(checkpoint.dirpath) == ["epoch=0-step=4.ckpt", "epoch=2-step=12.ckpt"]
    assert float(checkpoint.best_model_score) == 6.0  # type: ignore[arg-type]


def test_save_top_k_minus_one_keeps_every_file_with_metric_names(tmp_path: Path) -> None:
    checkpoint, _ = fit(
        tmp_path, monitor="val_loss", save_top_k=-1, filename="{epoch}-{val_loss:.2f}"
    )
    assert files_in(checkpoint.dirpath) == [
        "epoch=0-val_loss=5.00.ckpt",
        "epoch=1-val_loss=4.00.ckpt",
        "epoch=2-val_loss=6.00.ckpt",
        "epoch=3-val_loss=3.00.ckpt",
    ]
    assert os.path.basename(checkpoint.kth_best_model_path) == "epoch=2-val_loss=6.00.ckpt"


def test_save_top_k_zero_with_save_last_writes_only_last(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, save_top_k=0, save_last=True)
    assert files_in(checkpoint.dirpath) == ["last.ckpt"]
    assert checkpoint.best_model_path == ""
    assert os.path.basename(checkpoint.last_model_path) == "last.ckpt"


def test_save_last_is_written_when_a_top_k_file_is_saved(tmp_path: Path) -> None:
    checkpoint, trainer = fit(tmp_path, monitor="val_loss", save_last=True)
    assert files_in(checkpoint.dirpath) == ["epoch=3-step=16.ckpt", "last.ckpt"]
    # last follows each top-k save (epochs 0, 1 and 3), never an epoch whose score was worse.
    assert [(name, step) for name, step, _ in trainer.saves] == [
        ("epoch=0-step=4.ckpt", 4),
        ("last.ckpt", 4),
        ("epoch=1-step=8.ckpt", 8),
        ("last.ckpt", 8),
        ("epoch=3-step=16.ckpt", 16),
        ("last.ckpt", 16),
    ]


def test_save_last_link_points_at_the_newest_file(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, monitor="val_loss", save_last="link")
    assert files_in(checkpoint.dirpath) == ["epoch=3-step=16.ckpt", "last.ckpt"]
    link = Path(checkpoint.last_model_path)
    assert link.is_symlink()
    assert os.readlink(link) == "epoch=3-step=16.ckpt"


def test_every_n_train_steps_saves_on_batches(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, every_n_train_steps=3, save_top_k=-1, save_last=True)
    assert files_in(checkpoint.dirpath) == [
        "epoch=0-step=3.ckpt",
        "epoch=1-step=6.ckpt",
        "epoch=2-step=12.ckpt",
        "epoch=2-step=9.ckpt",
        "epoch=3-step=15.ckpt",
        "last.ckpt",
    ]


def test_step_trigger_waits_for_a_missing_monitor(tmp_path: Path) -> None:
    # Step 4 comes before the first validation logged val_loss: that save is deferred; later
    # steps use the value of the latest validation.
    checkpoint, _ = fit(tmp_path, every_n_train_steps=4, monitor="val_loss", save_top_k=-1)
    assert names(checkpoint.best_k_models) == {
        "epoch=1-step=8.ckpt": 5.0,
        "epoch=2-step=12.ckpt": 4.0,
        "epoch=3-step=16.ckpt": 6.0,
    }


def test_step_trigger_on_last_batch_waits_for_fresh_validation(tmp_path: Path) -> None:
    # Validation twice per epoch: the save falls to on_validation_end, which sees the new value.
    checkpoint, _ = fit(
        tmp_path,
        {"val_check_interval": 0.5},
        every_n_train_steps=4,
        monitor="val_loss",
        save_top_k=-1,
    )
    assert names(checkpoint.best_k_models) == {
        "epoch=0-step=4.ckpt": 4.0,
        "epoch=1-step=8.ckpt": 3.0,
        "epoch=2-step=12.ckpt": 5.0,
        "epoch=3-step=16.ckpt": 6.0,
    }


def test_every_n_epochs_with_save_last(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path / "a", every_n_epochs=2, save_top_k=-1)
    assert files_in(checkpoint.dirpath) == ["epoch=1-step=8.ckpt", "epoch=3-step=16.ckpt"]
    checkpoint, _ = fit(tmp_path / "b", every_n_epochs=2, save_last=True)
    assert files_in(checkpoint.dirpath) == ["epoch=3-step=16.ckpt", "last.ckpt"]


def test_validation_twice_per_epoch_saves_after_each_validation(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, {"val_check_interval": 0.5}, monitor="val_loss", save_top_k=-1)
    assert len(files_in(checkpoint.dirpath)) == 8
    assert os.path.basename(checkpoint.best_model_path) == "epoch=1-step=8.ckpt"
    assert os.path.basename(checkpoint.kth_best_model_path) == "epoch=2-step=10.ckpt"


def test_validation_every_second_epoch_saves_after_validation(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, {"check_val_every_n_epoch": 2}, save_top_k=-1, save_last=True)
    assert files_in(checkpoint.dirpath) == [
        "epoch=1-step=8.ckpt",
        "epoch=3-step=16.ckpt",
        "last.ckpt",
    ]


def test_without_validation_saves_on_epoch_end_ranking_a_train_metric(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, {"val_batches": 0}, monitor="train_m", save_top_k=2)
    assert names(checkpoint.best_k_models) == {
        "epoch=1-step=8.ckpt": 1.0,
        "epoch=2-step=12.ckpt": 4.0,
    }


def test_max_steps_mid_epoch_keeps_last_step_save(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, {"max_steps": 7}, every_n_train_steps=3, save_last=True)
    assert files_in(checkpoint.dirpath) == ["epoch=1-step=6.ckpt", "last.ckpt"]


def test_same_name_with_monitor_none_overwrites_its_own_file(tmp_path: Path) -> None:
    checkpoint, trainer = fit(tmp_path, filename="same", save_top_k=-1)
    assert files_in(checkpoint.dirpath) == ["same.ckpt"]
    assert len(trainer.saves) == 4


def test_version_counter_avoids_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "epoch=0-step=4.ckpt").write_text("not ours")
    with pytest.warns(UserWarning, match="not empty"):
        checkpoint, _ = fit(tmp_path, {"max_epochs": 1}, save_last=True)
    assert files_in(checkpoint.dirpath) == [
        "epoch=0-step=4-v1.ckpt",
        "epoch=0-step=4.ckpt",
        "last.ckpt",
    ]
    assert (tmp_path / "ck" / "epoch=0-step=4.ckpt").read_text() == "not ours"


def test_version_counter_off_overwrites(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "epoch=0-step=4.ckpt").write_text("old")
    with pytest.warns(UserWarning, match="not empty"):
        checkpoint, _ = fit(tmp_path, {"max_epochs": 1}, enable_version_counter=False)
    assert files_in(checkpoint.dirpath) == ["epoch=0-step=4.ckpt"]


def test_slash_in_metric_name_makes_subdirectories(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, monitor="val_loss", filename="{epoch}-{val/x}")
    assert files_in(checkpoint.dirpath) == ["epoch=0-val", "epoch=1-val", "epoch=3-val"]
    assert checkpoint.best_model_path.endswith("epoch=3-val/x=0.ckpt")
    assert not os.listdir(Path(checkpoint.dirpath) / "epoch=0-val")  # type: ignore[arg-type]


def test_nan_scores_rank_worst(tmp_path: Path) -> None:
    checkpoint, _ = fit(
        tmp_path, {"val_losses": (5, float("nan"), 4, 6)}, monitor="val_loss", save_top_k=2
    )
    assert names(checkpoint.best_k_models) == {
        "epoch=0-step=4.ckpt": 5.0,
        "epoch=2-step=12.ckpt": 4.0,
    }


def test_resumed_checkpoint_is_never_deleted(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck")
    trainer = FakeTrainer(tmp_path, max_epochs=2)
    trainer.ckpt_path = str(tmp_path / "ck" / "epoch=0-step=4.ckpt")
    trainer.fit(checkpoint)
    assert files_in(checkpoint.dirpath) == ["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt"]


def test_files_outside_dirpath_are_never_deleted(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.ckpt"
    outside.write_text("keep")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck")
    checkpoint.best_model_path = str(outside)
    FakeTrainer(tmp_path, max_epochs=1).fit(checkpoint)
    assert outside.read_text() == "keep"


def test_monitor_missing_after_validation_raises_listing_available_keys(tmp_path: Path) -> None:
    trainer = FakeTrainer(tmp_path)
    with pytest.raises(
        MisconfigurationException, match=r"monitor='val_acc'.*'train_m', 'val_loss'"
    ):
        trainer.fit(ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_acc"))


def test_monitor_missing_without_validation_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"monitor='val_loss'\) found no such metric"):
        checkpoint, trainer = fit(tmp_path, {"val_batches": 0, "max_epochs": 1}, monitor="val_loss")
    assert trainer.saves == []


def test_nothing_is_saved_during_sanity_check_fast_dev_run_or_outside_fit(tmp_path: Path) -> None:
    for attribute, value in (("sanity_checking", True), ("fast_dev_run", 1)):
        trainer = FakeTrainer(tmp_path, max_epochs=1)
        setattr(trainer, attribute, value)
        trainer.fit(ModelCheckpoint(dirpath=tmp_path / attribute))
        assert trainer.saves == []
    trainer = FakeTrainer(tmp_path, max_epochs=1)
    trainer.state.fn = "validate"
    trainer.fit(ModelCheckpoint(dirpath=tmp_path / "validate"))
    assert trainer.saves == []


def test_fast_dev_run_writes_no_last_at_train_end(tmp_path: Path) -> None:
    trainer = FakeTrainer(tmp_path, max_epochs=1)
    trainer.fast_dev_run = 1
    trainer.fit(ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True))
    assert trainer.saves == []


def test_no_second_save_at_the_same_step(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=-1)
    trainer = FakeTrainer(tmp_path, max_epochs=1)
    trainer.fit(checkpoint)
    checkpoint.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert len(trainer.saves) == 1


def test_train_time_interval_saves_when_time_has_passed(tmp_path: Path) -> None:
    checkpoint, trainer = fit(tmp_path, {"max_epochs": 1}, train_time_interval=timedelta(0))
    assert [step for _, step, _ in trainer.saves] == [1, 2, 3, 4]
    checkpoint, trainer = fit(
        tmp_path / "b", {"max_epochs": 1}, train_time_interval=timedelta(hours=1)
    )
    assert trainer.saves == []


def test_on_train_end_writes_last_if_nothing_was_saved(tmp_path: Path) -> None:
    checkpoint, trainer = fit(tmp_path, {"max_epochs": 1}, every_n_train_steps=100, save_last=True)
    assert [(name, step) for name, step, _ in trainer.saves] == [("last.ckpt", 4)]


def test_save_on_exception_writes_current_state(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", save_on_exception=True, save_last=True)
    trainer = FakeTrainer(tmp_path)
    checkpoint.setup(trainer, None, "fit")  # type: ignore[arg-type]
    trainer.global_step, trainer.current_epoch = 3, 0
    checkpoint.on_exception(trainer, None, RuntimeError("boom"))  # type: ignore[arg-type]
    assert files_in(checkpoint.dirpath) == ["epoch=0-step=3.ckpt", "last.ckpt"]


def test_save_weights_only_is_passed_to_the_trainer(tmp_path: Path) -> None:
    _, trainer = fit(tmp_path, {"max_epochs": 1}, save_weights_only=True)
    assert trainer.saves == [("epoch=0-step=4.ckpt", 4, True)]


def test_loggers_are_told_after_each_save(tmp_path: Path) -> None:
    logger = RecordingLogger()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck")
    FakeTrainer(tmp_path, max_epochs=2, loggers=[logger]).fit(checkpoint)
    assert [os.path.basename(path) for path in logger.saved] == [
        "epoch=0-step=4.ckpt",
        "epoch=1-step=8.ckpt",
    ]


# ---------------------------------------------------------------------------- state


def test_state_dict_round_trips_through_a_safe_torch_load(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, monitor="val_loss", save_top_k=2, save_last=True)
    state = torch.load(checkpoint.last_model_path, weights_only=True)["callbacks"][
        checkpoint.state_key
    ]
    assert set(state) == {
        "monitor", "best_model_score", "best_model_path", "current_score", "dirpath",
        "best_k_models", "kth_best_model_path", "kth_value", "last_model_path",
    }  # fmt: skip
    restored = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=2)
    restored.load_state_dict(state)
    assert restored.best_model_path == checkpoint.best_model_path
    assert names(restored.best_k_models) == names(checkpoint.best_k_models)
    assert restored.kth_best_model_path == checkpoint.kth_best_model_path
    assert float(restored.kth_value) == float(checkpoint.kth_value)
    assert restored.last_model_path == checkpoint.last_model_path


def test_load_state_dict_from_another_directory_keeps_only_best_path(tmp_path: Path) -> None:
    checkpoint, _ = fit(tmp_path, monitor="val_loss", save_top_k=2)
    moved = ModelCheckpoint(dirpath=tmp_path / "other", monitor="val_loss", save_top_k=2)
    with pytest.warns(UserWarning, match="dirpath changed"):
        moved.load_state_dict(checkpoint.state_dict())
    assert moved.best_model_path == checkpoint.best_model_path
    assert moved.best_k_models == {}
    assert moved.best_model_score is None


def test_check_monitor_top_k(tmp_path: Path) -> None:
    trainer = FakeTrainer(tmp_path)
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=1)
    assert checkpoint.check_monitor_top_k(trainer, None) is False  # type: ignore[arg-type]
    assert checkpoint.check_monitor_top_k(trainer, torch.tensor(9.0)) is True  # type: ignore[arg-type]
    checkpoint.best_k_models = {"a.ckpt": torch.tensor(2.0)}
    checkpoint.kth_best_model_path = "a.ckpt"
    assert checkpoint.check_monitor_top_k(trainer, torch.tensor(1.0)) is True  # type: ignore[arg-type]
    assert checkpoint.check_monitor_top_k(trainer, torch.tensor(3.0)) is False  # type: ignore[arg-type]


def test_to_yaml_writes_paths_and_scores(tmp_path: Path) -> None:
    import yaml

    checkpoint, _ = fit(tmp_path, monitor="val_loss", save_top_k=2)
    checkpoint.to_yaml()
    written = yaml.safe_load((tmp_path / "ck" / "best_k_models.yaml").read_text())
    assert names(written) == {"epoch=1-step=8.ckpt": 4.0, "epoch=3-step=16.ckpt": 3.0}


def test_find_last_checkpoints_lists_last_files(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path)
    for name in ("last.ckpt", "last-v1.ckpt", "epoch=0.ckpt", "last.txt"):
        (tmp_path / name).write_text("x")
    found = checkpoint._find_last_checkpoints(FakeTrainer(tmp_path))  # type: ignore[arg-type]
    assert sorted(os.path.basename(path) for path in found) == ["last-v1.ckpt", "last.ckpt"]


def test_remote_directory_files_are_written_and_removed(tmp_path: Path) -> None:
    import fsspec

    class MemoryTrainer(FakeTrainer):
        def save_checkpoint(self, filepath: str, weights_only: bool = False) -> None:
            with fsspec.open(filepath, "wb") as stream:
                torch.save({"global_step": self.global_step}, stream)
            self.saves.append((os.path.basename(filepath), self.global_step, weights_only))

    checkpoint = ModelCheckpoint(dirpath="memory://fulmen-test/ck", save_last=True)
    MemoryTrainer(tmp_path, max_epochs=3).fit(checkpoint)
    fs = fsspec.filesystem("memory")
    assert sorted(os.path.basename(p) for p in fs.ls("/fulmen-test/ck", detail=False)) == [
        "epoch=2-step=12.ckpt",
        "last.ckpt",
    ]
    fs.rm("/fulmen-test", recursive=True)
