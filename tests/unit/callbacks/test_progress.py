"""Progress bars driven by a fake trainer: what they draw, when they redraw, what they read."""

from __future__ import annotations

import pickle
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from fulmen.callbacks.progress import ProgressBar, RichProgressBar, TQDMProgressBar
from fulmen.callbacks.progress.tqdm_progress import _format_num

MODULE: Any = None  # the hooks under test do not touch the LightningModule


class FakeTrainer:
    """Carries the trainer attributes the bars read; counts reads of `progress_bar_metrics`."""

    def __init__(self, version: Any = 3, **overrides: Any) -> None:
        self.num_training_batches: int | float = 4
        self.num_val_batches = [2]
        self.num_sanity_val_batches = [2]
        self.num_test_batches = [3]
        self.num_predict_batches = [3, 2]
        self.sanity_checking = False
        self.state = SimpleNamespace(fn="fit")
        self.current_epoch = 0
        self.max_epochs = 2
        self.check_val_every_n_epoch: int | None = 1
        self.enable_validation = True
        self.is_global_zero = True
        self.logger = None if version is None else SimpleNamespace(version=version)
        self.metrics: dict[str, float] = {"loss": 1.23}
        self.metric_reads = 0
        vars(self).update(overrides)

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        self.metric_reads += 1
        return self.metrics


def run_fit(bar: ProgressBar, trainer: Any, epochs: int = 1) -> None:
    """Call the hooks of a fit with a sanity check and validation at each epoch end."""
    bar.setup(trainer, MODULE, "fit")
    trainer.sanity_checking = True
    bar.on_sanity_check_start(trainer, MODULE)
    bar.on_validation_start(trainer, MODULE)
    for i in range(trainer.num_sanity_val_batches[0]):
        bar.on_validation_batch_start(trainer, MODULE, None, i)
        bar.on_validation_batch_end(trainer, MODULE, None, None, i)
    bar.on_validation_end(trainer, MODULE)
    bar.on_sanity_check_end(trainer, MODULE)
    trainer.sanity_checking = False
    bar.on_train_start(trainer, MODULE)
    for epoch in range(epochs):
        trainer.current_epoch = epoch
        bar.on_train_epoch_start(trainer, MODULE)
        for i in range(int(trainer.num_training_batches)):
            bar.on_train_batch_end(trainer, MODULE, None, None, i)
        bar.on_validation_start(trainer, MODULE)
        for i in range(trainer.num_val_batches[0]):
            bar.on_validation_batch_start(trainer, MODULE, None, i)
            bar.on_validation_batch_end(trainer, MODULE, None, None, i)
        trainer.metrics = {**trainer.metrics, "val_loss": 0.5}
        bar.on_validation_end(trainer, MODULE)
        bar.on_train_epoch_end(trainer, MODULE)
    bar.on_train_end(trainer, MODULE)


def run_eval(bar: ProgressBar, trainer: Any, stage: str) -> None:
    """Call the hooks of `trainer.test` or `trainer.predict` over every dataloader."""
    trainer.state = SimpleNamespace(fn=stage)
    bar.setup(trainer, MODULE, stage)
    batches = trainer.num_test_batches if stage == "test" else trainer.num_predict_batches
    getattr(bar, f"on_{stage}_start")(trainer, MODULE)
    for dataloader_idx, n in enumerate(batches):
        for i in range(n):
            getattr(bar, f"on_{stage}_batch_start")(trainer, MODULE, None, i, dataloader_idx)
            getattr(bar, f"on_{stage}_batch_end")(trainer, MODULE, None, None, i, dataloader_idx)
    getattr(bar, f"on_{stage}_end")(trainer, MODULE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1.000"),
        (1.27, "1.270"),
        (12.1, "12.10"),
        (0.471, "0.471"),
        (123.456, "123.0"),
        (1234.5, "1234.5"),
        (123456.7, "1.23e+5"),
        (1e-5, "1e-5"),
        (0.00012345, "0.000123"),
        (-1.5, "-1.50"),
        (99.99, "100.0"),
        (0.0025, "0.0025"),
        (float("nan"), "nan.0"),
        (3, "3"),
        (True, "1"),
        ("abc", "abc"),
    ],
)
def test_postfix_numbers_are_formatted_like_lightning(value: Any, expected: str) -> None:
    assert _format_num(value) == expected


def test_tqdm_fit_draws_sanity_epoch_and_validation_bars_with_metrics(capsys: Any) -> None:
    run_fit(TQDMProgressBar(), FakeTrainer(), epochs=2)
    out = capsys.readouterr().out
    assert "Sanity Checking DataLoader 0: 100%" in out
    assert "Validation DataLoader 0: 100%" in out
    assert "Epoch 0: 100%|██████████| 4/4" in out
    assert "Epoch 1: 100%|██████████| 4/4" in out
    assert "v_num=3, loss=1.230]" in out
    assert "v_num=3, loss=1.230, val_loss=0.500]" in out


def test_tqdm_refreshes_every_refresh_rate_batches_and_at_the_last(capsys: Any) -> None:
    trainer: Any = FakeTrainer(num_training_batches=5)
    run_fit(TQDMProgressBar(refresh_rate=2), trainer)
    out = capsys.readouterr().out
    assert "Epoch 0:  40%" in out and "Epoch 0: 100%" in out
    assert "Epoch 0:  20%" not in out and "Epoch 0:  60%" not in out


def test_tqdm_reads_metrics_only_when_it_redraws() -> None:
    trainer: Any = FakeTrainer(num_training_batches=10, num_val_batches=[0])
    bar = TQDMProgressBar(refresh_rate=5)
    bar.setup(trainer, MODULE, "fit")
    bar.on_train_start(trainer, MODULE)
    bar.on_train_epoch_start(trainer, MODULE)
    for i in range(10):
        bar.on_train_batch_end(trainer, MODULE, None, None, i)
    assert trainer.metric_reads == 2
    bar.on_train_end(trainer, MODULE)


def test_tqdm_with_leave_keeps_one_bar_per_epoch(capsys: Any) -> None:
    bar = TQDMProgressBar(leave=True)
    run_fit(bar, FakeTrainer(), epochs=2)
    out = capsys.readouterr().out
    # Each epoch's bar ends its line when closed, so both final states are on screen.
    finished = [line for line in out.split("\n") if "Epoch" in line]
    assert any("Epoch 0: 100%" in line for line in finished)
    assert any("Epoch 1: 100%" in line for line in finished)


def test_tqdm_test_and_predict_bars_name_each_dataloader(capsys: Any) -> None:
    trainer: Any = FakeTrainer()
    run_eval(TQDMProgressBar(), trainer, "test")
    run_eval(TQDMProgressBar(), trainer, "predict")
    out = capsys.readouterr().out
    assert "Testing DataLoader 0: 100%|██████████| 3/3" in out
    assert "Predicting DataLoader 0: 100%|██████████| 3/3" in out
    assert "Predicting DataLoader 1: 100%|██████████| 2/2" in out


def test_tqdm_standalone_validation_keeps_its_bar(capsys: Any) -> None:
    trainer: Any = FakeTrainer(state=SimpleNamespace(fn="validate"))
    bar = TQDMProgressBar()
    bar.setup(trainer, MODULE, "validate")
    bar.on_validation_start(trainer, MODULE)
    assert bar.val_progress_bar.pos == 0 and bar.val_progress_bar.leave
    for i in range(2):
        bar.on_validation_batch_start(trainer, MODULE, None, i)
        bar.on_validation_batch_end(trainer, MODULE, None, None, i)
    bar.on_validation_end(trainer, MODULE)
    assert "Validation DataLoader 0: 100%|██████████| 2/2" in capsys.readouterr().out


def test_tqdm_unknown_length_shows_a_question_mark(capsys: Any) -> None:
    trainer: Any = FakeTrainer(num_training_batches=float("inf"), num_val_batches=[0])
    bar = TQDMProgressBar()
    bar.setup(trainer, MODULE, "fit")
    bar.on_train_start(trainer, MODULE)
    bar.on_train_epoch_start(trainer, MODULE)
    bar.on_train_batch_end(trainer, MODULE, None, None, 0)
    bar.on_train_end(trainer, MODULE)
    assert "Epoch 0: |" in capsys.readouterr().out
    assert bar.train_progress_bar.total is None


def test_tqdm_is_silent_on_non_zero_ranks(capsys: Any) -> None:
    bar = TQDMProgressBar()
    run_fit(bar, FakeTrainer(is_global_zero=False))
    assert bar.is_disabled
    assert capsys.readouterr().out == ""


def test_tqdm_refresh_rate_zero_hides_the_bars(capsys: Any) -> None:
    trainer: Any = FakeTrainer()
    run_fit(TQDMProgressBar(refresh_rate=0), trainer)
    assert capsys.readouterr().out == ""
    assert trainer.metric_reads == 0


def test_tqdm_print_writes_above_the_active_bar_or_plainly(capsys: Any) -> None:
    bar = TQDMProgressBar()
    bar.print("before", "any", "bar")
    assert capsys.readouterr().out == "before any bar\n"
    trainer: Any = FakeTrainer()
    bar.setup(trainer, MODULE, "fit")
    bar.on_train_start(trainer, MODULE)
    bar.on_train_epoch_start(trainer, MODULE)
    bar.print("step", 1)
    bar.on_train_end(trainer, MODULE)
    assert "step 1\n" in capsys.readouterr().out


def test_tqdm_bar_pickles_without_its_tqdm_objects() -> None:
    trainer: Any = FakeTrainer()
    bar = TQDMProgressBar(refresh_rate=3)
    bar.setup(trainer, MODULE, "fit")
    bar.on_train_start(trainer, MODULE)
    copy = pickle.loads(pickle.dumps(bar))
    bar.on_train_end(trainer, MODULE)
    assert copy.refresh_rate == 3
    with pytest.raises(TypeError, match="_train_progress_bar` reference has not been set"):
        _ = copy.train_progress_bar


def test_tqdm_rejects_a_negative_refresh_rate() -> None:
    with pytest.raises(ValueError, match=r"refresh_rate=-1"):
        TQDMProgressBar(refresh_rate=-1)


def test_tqdm_miniters_environment_variable_raises_the_refresh_rate(monkeypatch: Any) -> None:
    monkeypatch.setenv("TQDM_MINITERS", "10")
    assert TQDMProgressBar(refresh_rate=1).refresh_rate == 10
    assert TQDMProgressBar(refresh_rate=50).refresh_rate == 50
    assert TQDMProgressBar(refresh_rate=0).is_disabled


def test_tqdm_class_is_importable_for_custom_bars() -> None:
    from fulmen.callbacks.progress.tqdm_progress import Tqdm

    bar = Tqdm(disable=True)
    assert bar.format_num(1.5) == "1.500"


def test_trainer_reference_is_required_before_setup() -> None:
    with pytest.raises(TypeError, match=r"`TQDMProgressBar._trainer` reference has not been set"):
        _ = TQDMProgressBar().trainer


@pytest.mark.parametrize(
    ("version", "expected"),
    [(7, {"v_num": 7}), ("my_version_12345", {"v_num": "2345"}), (None, {})],
)
def test_get_metrics_adds_the_logger_version(version: Any, expected: dict[str, Any]) -> None:
    trainer: Any = FakeTrainer(version=version, metrics={})
    assert ProgressBar().get_metrics(trainer, MODULE) == expected


def test_get_metrics_warns_when_a_logged_metric_replaces_v_num() -> None:
    trainer: Any = FakeTrainer(metrics={"v_num": 5.0})
    with pytest.warns(UserWarning, match="named 'v_num'"):
        metrics = ProgressBar().get_metrics(trainer, MODULE)
    assert metrics == {"v_num": 5.0}


def test_total_val_batches_is_zero_in_epochs_without_validation() -> None:
    trainer: Any = FakeTrainer(check_val_every_n_epoch=2, num_val_batches=[3, 4])
    bar = ProgressBar()
    bar.setup(trainer, MODULE, "fit")
    totals = []
    for epoch in range(3):
        trainer.current_epoch = epoch
        totals.append(bar.total_val_batches)
    assert totals == [0, 7, 0]
    trainer.enable_validation = False
    trainer.current_epoch = 1
    assert bar.total_val_batches == 0


def test_dataloader_tracker_reports_changes_only() -> None:
    bar = ProgressBar()
    assert [bar.has_dataloader_changed(i) for i in (0, 0, 1, 1)] == [True, False, True, False]
    bar.reset_dataloader_idx_tracker()
    assert bar.has_dataloader_changed(1)


def test_rich_bar_without_rich_installed_says_how_to_install_it(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(ModuleNotFoundError, match="pip install rich"):
        RichProgressBar()


def test_rich_fit_draws_the_epoch_bar_with_metrics() -> None:
    pytest.importorskip("rich")
    from io import StringIO

    from fulmen.callbacks.progress.rich_progress import RichProgressBarTheme

    file = StringIO()
    bar = RichProgressBar(
        refresh_rate=1,
        leave=True,
        theme=RichProgressBarTheme(metrics_format=".2f"),
        console_kwargs={"file": file, "width": 200, "force_terminal": False},
    )
    trainer: Any = FakeTrainer()
    run_fit(bar, trainer, epochs=2)
    bar.teardown(trainer, MODULE, "fit")
    out = file.getvalue()
    assert "Epoch 0/1" in out and "Epoch 1/1" in out
    assert "4/4" in out
    assert "v_num: 3.00 loss: 1.23 val_loss: 0.50" in out
    assert bar.progress is None


def test_rich_test_run_shows_the_testing_bar() -> None:
    pytest.importorskip("rich")
    from io import StringIO

    file = StringIO()
    bar = RichProgressBar(console_kwargs={"file": file, "width": 120})
    trainer: Any = FakeTrainer(num_test_batches=[3])
    run_eval(bar, trainer, "test")
    assert "Testing" in file.getvalue() and "3/3" in file.getvalue()


def test_bar_redraws_at_most_every_min_redraw_interval_but_always_at_the_end() -> None:
    from fulmen.callbacks import TQDMProgressBar

    bar = TQDMProgressBar(refresh_rate=1)
    bar.min_redraw_interval = 3600.0  # nothing but the first and the last batch may redraw
    decisions = [bar._should_update(n, 100) for n in range(1, 101)]
    assert decisions[0] and decisions[-1] and sum(decisions) == 2
