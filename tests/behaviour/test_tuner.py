"""The tuner through the public API: Tuner.lr_find / scale_batch_size, the finder callbacks,
and Lightning 1.x's `Trainer(auto_lr_find=..., auto_scale_batch_size=...).tune()`."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen
from fulmen.callbacks import BatchSizeFinder, Callback, LearningRateFinder
from fulmen.tuner import Tuner
from fulmen.utilities.exceptions import MisconfigurationException

OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes."


def regression_data(n: int = 64) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=generator)
    return TensorDataset(x, x.sum(1, keepdim=True))


def make_model_class(pl: ModuleType) -> type:
    """A linear regression whose steps run out of (CPU) memory above `limit` samples per batch."""

    class Regression(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self, lr: float = 0.1, batch_size: int = 4, limit: int = 10**6, n: int = 64):
            super().__init__()
            self.lr = lr
            self.batch_size = batch_size
            self.limit = limit
            self.n = n
            self.layer = torch.nn.Linear(8, 1)
            self.batch_sizes: list[int] = []  # of every batch a step saw
            self.requested: list[int] = []  # the batch size of every loader built

        def _loss(self, batch: Any) -> torch.Tensor:
            x, y = batch
            self.batch_sizes.append(len(x))
            if len(x) > self.limit:
                raise RuntimeError(OOM)
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = self._loss(batch)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", self._loss(batch))

        def test_step(self, batch: Any, batch_idx: int) -> None:
            self.log("test_loss", self._loss(batch))

        def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            self._loss(batch)
            return self.layer(batch[0])

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=self.lr)

        def train_dataloader(self) -> DataLoader[Any]:
            self.requested.append(self.batch_size)
            return DataLoader(regression_data(self.n), batch_size=self.batch_size)

        val_dataloader = test_dataloader = predict_dataloader = train_dataloader

    return Regression


Regression = make_model_class(fulmen)


def make_trainer(pl: ModuleType = fulmen, **kwargs: Any) -> Any:
    settings: dict[str, Any] = dict(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    settings.update(kwargs)
    return pl.Trainer(**settings)


@contextmanager
def quiet(package: ModuleType) -> Iterator[None]:
    """Lightning's own advice (workers, logging intervals) is not under test: silence it."""
    with warnings.catch_warnings():
        if package is not fulmen:
            warnings.simplefilter("ignore")
        yield


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_bitwise_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_bitwise_equal(x, y)
    else:
        assert a == b


def gradient(values: list[float], positions: list[float]) -> list[float]:
    """d values / d positions: one-sided at the ends, second-order central inside (numpy's rule)."""
    n = len(values)
    slopes = [(values[1] - values[0]) / (positions[1] - positions[0])]
    for i in range(1, n - 1):
        left, right = positions[i] - positions[i - 1], positions[i + 1] - positions[i]
        slopes.append(
            (left**2 * values[i + 1] - right**2 * values[i - 1] + (right**2 - left**2) * values[i])
            / (left * right * (left + right))
        )
    slopes.append((values[-1] - values[-2]) / (positions[-1] - positions[-2]))
    return slopes


# ---------------------------------------------------------------------------- lr_find


def test_lr_find_records_lightnings_schedule_and_suggests_the_steepest_descent() -> None:
    model = Regression(lr=0.1)
    finder = Tuner(make_trainer()).lr_find(model, num_training=40, min_lr=1e-5, max_lr=1.0)
    lrs, losses = finder.results["lr"], finder.results["loss"]
    assert len(lrs) == len(losses) == 40
    expected = [1e-5] + [1e-5 * (1.0 / 1e-5) ** ((i + 1) / 40) for i in range(1, 40)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    kept = list(range(10, 39))  # skip_begin=10, skip_end=1
    slopes = gradient([losses[i] for i in kept], [lrs[i] for i in kept])
    steepest = kept[min(range(len(slopes)), key=slopes.__getitem__)]
    assert finder.suggestion() == lrs[steepest]
    assert model.lr == finder.suggestion()


def test_lr_find_puts_weights_counters_callbacks_and_loggers_back_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    from fulmen.loggers import CSVLogger

    marker = Callback()
    logger = CSVLogger(tmp_path / "logs")
    trainer = make_trainer(callbacks=[marker], logger=logger, default_root_dir=tmp_path)
    callbacks_before = list(trainer.callbacks)
    model = Regression()
    before = weights(model)
    Tuner(trainer).lr_find(model, num_training=20, update_attr=False)
    assert_bitwise_equal(weights(model), before)
    assert (trainer.global_step, trainer.current_epoch) == (0, 0)
    assert trainer.callbacks == callbacks_before and trainer.loggers == [logger]
    assert model.lr == 0.1
    leftovers = [p.name for p in tmp_path.rglob("*") if "lr_find" in p.name or p.suffix == ".ckpt"]
    assert leftovers == []
    assert sorted(os.listdir(tmp_path)) == ["logs"]


def test_the_same_trainer_fits_after_tuning_with_the_values_found() -> None:
    trainer = make_trainer(max_epochs=1)
    model = Regression(batch_size=2, limit=16, n=64)
    tuner = Tuner(trainer)
    assert tuner.scale_batch_size(model) == 16
    finder = tuner.lr_find(model, num_training=4, update_attr=False)
    assert len(finder.results["lr"]) == 4
    model.lr = 0.01
    trainer.fit(model)
    assert trainer.global_step == 4 and trainer.current_epoch == 1  # 64 samples, batches of 16
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.01
    assert trainer.callbacks == [] and trainer.state.status == "finished"


class LateFinder(LearningRateFinder):
    """Runs the range test at the start of epoch 1, when Adam already has state to restore."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.around: dict[str, Any] = {}

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        return

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch != 1:
            return
        optimizer = trainer.optimizers[0]
        self.around["before"] = self._state(trainer, pl_module, optimizer)
        self.lr_find(trainer, pl_module)
        self.around["after"] = self._state(trainer, pl_module, optimizer)

    @staticmethod
    def _state(trainer: Any, pl_module: Any, optimizer: Any) -> dict[str, Any]:
        import copy

        state = copy.deepcopy(optimizer.state_dict())
        for group in state["param_groups"]:
            group.pop("lr")  # the one thing meant to change: the suggestion is applied
        return {
            "weights": weights(pl_module),
            "optimizer": state,
            "counters": (trainer.global_step, trainer.current_epoch, trainer.state.batch_idx),
            "callbacks": list(trainer.callbacks),
            "rng": torch.get_rng_state(),
        }


def test_lr_find_mid_fit_restores_optimizer_state_and_counters_bitwise() -> None:
    finder = LateFinder(num_training_steps=14, update_attr=True)
    trainer = make_trainer(max_epochs=2, callbacks=[finder])
    model = Regression()
    trainer.fit(model)
    before, after = finder.around["before"], finder.around["after"]
    assert before["counters"][0] == 16  # one epoch of 64 samples in batches of 4
    assert before["optimizer"]["state"]  # Adam moments exist, so restoring them is tested
    assert_bitwise_equal(after, before)
    suggestion = finder.optimal_lr.suggestion()
    assert model.lr == suggestion
    assert trainer.optimizers[0].param_groups[0]["lr"] == suggestion
    assert trainer.global_step == 32  # the range test's steps do not count


def test_learning_rate_finder_callback_trains_on_with_the_suggestion() -> None:
    finder = LearningRateFinder(num_training_steps=30)
    trainer = make_trainer(max_epochs=2, callbacks=[finder])
    model = Regression()
    trainer.fit(model)
    assert len(finder.optimal_lr.results["lr"]) == 30  # over two epochs of 16 batches
    assert model.lr == finder.optimal_lr.suggestion()
    assert trainer.optimizers[0].param_groups[0]["lr"] == model.lr
    assert trainer.global_step == 32 and trainer.current_epoch == 2


@pytest.mark.parametrize("where", ["attribute", "learning_rate", "hparams", "attr_name"])
def test_lr_find_updates_the_learning_rate_where_the_model_keeps_it(where: str) -> None:
    class Model(Regression):
        def configure_optimizers(self) -> Any:
            lr = {
                "attribute": lambda: self.lr,
                "learning_rate": lambda: self.learning_rate,
                "hparams": lambda: self.hparams.lr,
                "attr_name": lambda: self.my_lr,
            }[where]()
            return torch.optim.SGD(self.parameters(), lr=lr)

    model = Model()
    if where != "attribute":
        del model.lr
    if where == "learning_rate":
        model.learning_rate = 0.1
    elif where == "hparams":
        model.save_hyperparameters({"lr": 0.1})
    elif where == "attr_name":
        model.my_lr = 0.1
    finder = Tuner(make_trainer()).lr_find(
        model, num_training=20, attr_name="my_lr" if where == "attr_name" else ""
    )
    value = {
        "attribute": lambda: model.lr,
        "learning_rate": lambda: model.learning_rate,
        "hparams": lambda: model.hparams.lr,
        "attr_name": lambda: model.my_lr,
    }[where]()
    assert value == finder.suggestion() != 0.1


def test_lr_find_without_a_learning_rate_attribute_says_how_to_fix_it() -> None:
    class FixedRate(Regression):
        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = FixedRate()
    del model.lr
    with pytest.raises(AttributeError, match="`lr` or `learning_rate`.*update_attr=False"):
        Tuner(make_trainer()).lr_find(model, num_training=5)
    with pytest.raises(AttributeError, match="attr_name='rate'"):
        Tuner(make_trainer()).lr_find(Regression(), num_training=5, attr_name="rate")


def test_lr_find_stops_when_the_loss_diverges() -> None:
    class Diverging(Regression):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = super().training_step(batch, batch_idx)
            return loss * (1 + batch_idx) ** 2

    finder = Tuner(make_trainer()).lr_find(Diverging(), num_training=40, update_attr=False)
    losses = finder.results["loss"]
    assert 2 <= len(losses) < 40 and len(finder.results["lr"]) == len(losses)
    assert losses[-1] > 4.0 * min(losses[:-1])


def test_lr_find_suggestion_with_too_few_points_warns_and_keeps_the_learning_rate() -> None:
    model = Regression(n=16)  # 4 batches in one epoch: 4 points, all inside skip_begin
    with pytest.warns(UserWarning, match="needs 2 to suggest"):
        finder = Tuner(make_trainer(max_epochs=1)).lr_find(model, num_training=50)
    assert len(finder.results["lr"]) == 4 and model.lr == 0.1


def test_lr_find_shows_its_progress_bar_when_the_trainer_has_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    trainer = make_trainer(enable_progress_bar=True)
    Tuner(trainer).lr_find(Regression(), num_training=5, update_attr=False)
    assert "Finding best initial lr" in capsys.readouterr().err


def test_lr_find_is_skipped_with_fast_dev_run() -> None:
    trainer = make_trainer(fast_dev_run=True)
    with pytest.warns(UserWarning, match="fast_dev_run"):
        assert Tuner(trainer).lr_find(Regression()) is None


def test_lr_find_needs_exactly_one_optimizer() -> None:
    class TwoOptimizers(Regression):
        def configure_optimizers(self) -> Any:
            return [torch.optim.SGD(self.parameters(), lr=0.1) for _ in range(2)]

        def training_step(self, batch: Any, batch_idx: int) -> None:
            return None

    model = TwoOptimizers()
    model.automatic_optimization = False
    with pytest.raises(MisconfigurationException, match="one optimizer.*returned 2"):
        Tuner(make_trainer()).lr_find(model, num_training=5)


def test_lr_find_rejects_bad_arguments_naming_them() -> None:
    tuner = Tuner(make_trainer())
    with pytest.raises(MisconfigurationException, match="method='test'"):
        tuner.lr_find(Regression(), method="test")
    with pytest.raises(ValueError, match="method='train'"):
        tuner.scale_batch_size(Regression(), method="train")
    with pytest.raises(MisconfigurationException, match="not `dataloaders`"):
        tuner.lr_find(Regression(), dataloaders=DataLoader(regression_data()))
    with pytest.raises(ValueError, match=r"Tuner.lr_find\(mode='cubic'\)"):
        tuner.lr_find(Regression(), mode="cubic")
    with pytest.raises(ValueError, match=r"Tuner.lr_find\(num_training=0\)"):
        tuner.lr_find(Regression(), num_training=0)
    with pytest.raises(ValueError, match=r"num_training_steps=0"):
        LearningRateFinder(num_training_steps=0)
    with pytest.raises(ValueError, match=r"min_lr=0"):
        LearningRateFinder(min_lr=0)
    with pytest.raises(ValueError, match=r"max_lr=1e-09"):
        LearningRateFinder(max_lr=1e-9)
    with pytest.raises(ValueError, match=r"early_stop_threshold=-1"):
        LearningRateFinder(early_stop_threshold=-1)
    configured = make_trainer(callbacks=[LearningRateFinder()])
    with pytest.raises(ValueError, match="already has a `LearningRateFinder`"):
        Tuner(configured).lr_find(Regression())


def test_lr_find_leaves_the_random_state_as_it_found_it() -> None:
    trainer = make_trainer()
    model = Regression()
    state = torch.get_rng_state()
    Tuner(trainer).lr_find(model, num_training=10, update_attr=False)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.compat
@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_lr_find_matches_lightning_on_the_same_seeded_model(mode: str) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.tuner import Tuner as LightningTuner

    results = {}
    for name, package, tuner in (("fulmen", fulmen, Tuner), ("lightning", pl, LightningTuner)):
        torch.manual_seed(7)
        model = make_model_class(package)(lr=0.1)
        trainer = make_trainer(package, max_epochs=4)
        with quiet(package):
            finder = tuner(trainer).lr_find(model, num_training=60, mode=mode, min_lr=1e-4)
        results[name] = (finder.results["lr"], finder.results["loss"], finder.suggestion())
    ours, theirs = results["fulmen"], results["lightning"]
    assert ours[0] == pytest.approx(theirs[0], rel=1e-6)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-5)
    assert ours[2] == theirs[2]


def test_lr_finder_plot_without_matplotlib_names_the_plot_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from fulmen.tuner.lr_finder import _LRFinder

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    finder = _LRFinder("exponential", 1e-3, 1.0, 3)
    finder.results = {"lr": [1e-3, 1e-1, 1.0], "loss": [1.0, 0.5, 2.0]}
    with pytest.raises(ImportError, match=r"fulmen\[plot\]"):
        finder.plot()


def test_lr_finder_plot_draws_the_loss_curve_and_marks_the_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    pytest.importorskip("matplotlib")
    finder = Tuner(make_trainer()).lr_find(Regression(), num_training=30)
    figure = finder.plot(suggest=True)
    ax = figure.axes[0]
    curve, marker = ax.lines
    assert list(curve.get_xdata()) == finder.results["lr"]
    assert ax.get_xscale() == "log"
    assert list(marker.get_xdata()) == [finder.suggestion()]


# ---------------------------------------------------------------------------- batch size


@pytest.mark.parametrize(
    ("mode", "margin", "found"),
    [("power", 0.05, 16), ("binsearch", 0.0, 20), ("binsearch", 0.05, 19)],
)
def test_scale_batch_size_finds_the_largest_size_below_a_cpu_oom(
    mode: str, margin: float, found: int
) -> None:
    model = Regression(batch_size=2, limit=20)
    before = weights(model)
    trainer = make_trainer()
    size = Tuner(trainer).scale_batch_size(model, mode=mode, margin=margin)
    assert size == model.batch_size == found
    assert_bitwise_equal(weights(model), before)
    assert (trainer.global_step, trainer.current_epoch) == (0, 0)
    assert trainer.callbacks == [] and os.listdir(".") == []


def test_scale_batch_size_stops_growing_at_the_dataset_length() -> None:
    model = Regression(batch_size=2, n=10)
    assert Tuner(make_trainer()).scale_batch_size(model) == 16
    assert max(model.batch_sizes) == 10  # batch size 16 holds the whole dataset...
    assert sorted(set(model.requested)) == [2, 4, 8, 16]  # ...so 32 is never tried


def test_scale_batch_size_updates_hparams_and_the_datamodule() -> None:
    class Data(fulmen.LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            self.batch_size = 2

        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(regression_data(), batch_size=self.batch_size)

    class FromHparams(Regression):
        def __init__(self) -> None:
            super().__init__(limit=8)
            del self.batch_size
            self.save_hyperparameters({"batch_size": 2})

        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(regression_data(), batch_size=self.hparams.batch_size)

        val_dataloader = train_dataloader

    model = FromHparams()
    assert Tuner(make_trainer()).scale_batch_size(model) == 8 == model.hparams.batch_size
    data = Data()
    model = FromHparams()
    assert Tuner(make_trainer()).scale_batch_size(model, datamodule=data) == 8
    assert data.batch_size == model.hparams.batch_size == 8
    assert set(model.batch_sizes) == {2, 4, 8, 16}


@pytest.mark.parametrize("method", ["validate", "test", "predict"])
def test_scale_batch_size_for_evaluation_methods(method: str) -> None:
    model = Regression(batch_size=2, limit=12)
    size = Tuner(make_trainer()).scale_batch_size(
        model, method=method, mode="binsearch", margin=0.0, steps_per_trial=1
    )
    assert size == model.batch_size == 12
    assert model.batch_sizes == [2, 4, 8, 16, 12, 14, 13]


def test_batch_size_finder_callback_fits_with_the_size_found() -> None:
    finder = BatchSizeFinder(init_val=2)
    trainer = make_trainer(max_epochs=1, callbacks=[finder], num_sanity_val_steps=0)
    model = Regression(batch_size=2, limit=16)
    trainer.fit(model)
    assert finder.optimal_batch_size == model.batch_size == 16
    assert trainer.num_training_batches == 4 and trainer.global_step == 4
    assert model.batch_sizes[-8:] == [16] * 8  # the real epoch: 4 training, 4 validation


def test_batch_size_finder_refuses_loaders_passed_to_fit_and_missing_attributes() -> None:
    trainer = make_trainer(callbacks=[BatchSizeFinder()])
    with pytest.raises(MisconfigurationException, match="passed to `trainer.fit\\(\\)`"):
        trainer.fit(Regression(), train_dataloaders=DataLoader(regression_data()))
    model = Regression()
    del model.batch_size
    trainer = make_trainer(callbacks=[BatchSizeFinder(batch_arg_name="batch_size")])
    with pytest.raises(MisconfigurationException, match="no attribute 'batch_size'"):
        trainer.fit(model)


def test_batch_size_finder_warns_when_model_and_hparams_both_hold_the_size() -> None:
    model = Regression(limit=4)
    model.save_hyperparameters({"batch_size": 2})
    with pytest.warns(UserWarning, match="Both `model.batch_size` and `model.hparams.batch_size`"):
        assert Tuner(make_trainer()).scale_batch_size(model) == 4
    assert model.hparams.batch_size == 4


def test_scale_batch_size_rejects_bad_arguments_naming_them() -> None:
    tuner = Tuner(make_trainer())
    with pytest.raises(ValueError, match=r"Tuner.scale_batch_size\(mode='exhaustive'\)"):
        tuner.scale_batch_size(Regression(), mode="exhaustive")
    with pytest.raises(ValueError, match=r"margin=1.5"):
        tuner.scale_batch_size(Regression(), margin=1.5)
    with pytest.raises(MisconfigurationException, match="method='test'.*not `train_dataloaders`"):
        tuner.scale_batch_size(
            Regression(), train_dataloaders=DataLoader(regression_data()), method="test"
        )
    with pytest.raises(ValueError, match="already has a `BatchSizeFinder`"):
        Tuner(make_trainer(callbacks=[BatchSizeFinder()])).scale_batch_size(Regression())


@pytest.mark.compat
@pytest.mark.parametrize(
    ("mode", "limit", "n"), [("power", 20, 64), ("binsearch", 20, 64), ("binsearch", 100, 10)]
)
def test_scale_batch_size_matches_lightning_with_a_fake_oom(mode: str, limit: int, n: int) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.tuner import Tuner as LightningTuner

    found = {}
    for name, package, tuner in (("fulmen", fulmen, Tuner), ("lightning", pl, LightningTuner)):
        model = make_model_class(package)(batch_size=2, limit=limit, n=n)
        with quiet(package):
            size = tuner(make_trainer(package)).scale_batch_size(model, mode=mode)
        found[name] = (size, model.batch_size, model.batch_sizes)
    assert found["fulmen"] == found["lightning"]


# ---------------------------------------------------------------------------- tune()


def test_legacy_tune_scales_the_batch_size_then_finds_the_learning_rate() -> None:
    trainer = make_trainer(auto_lr_find=True, auto_scale_batch_size="binsearch")
    model = Regression(batch_size=2, limit=8)
    result = trainer.tune(
        model, scale_batch_size_kwargs={"margin": 0.0}, lr_find_kwargs={"num_training": 20}
    )
    assert list(result) == ["scale_batch_size", "lr_find"]
    assert result["scale_batch_size"] == model.batch_size == 8
    assert model.lr == result["lr_find"].suggestion()
    assert model.batch_sizes[-20:] == [8] * 20  # the range test ran at the new batch size


def test_legacy_tune_with_an_attribute_name_and_power_mode() -> None:
    class OwnName(Regression):
        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.my_lr)

    model = OwnName(limit=4)
    del model.lr
    model.my_lr = 0.1
    trainer = make_trainer(auto_lr_find="my_lr", auto_scale_batch_size=True)
    result = trainer.tune(model, lr_find_kwargs={"num_training": 20})
    assert result["scale_batch_size"] == 4
    assert model.my_lr == result["lr_find"].suggestion()


def test_legacy_tune_with_nothing_to_tune_warns_and_returns_an_empty_dict() -> None:
    with pytest.warns(UserWarning, match="nothing to do"):
        assert make_trainer().tune(Regression()) == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auto_lr_find": 1}, "auto_lr_find=1"),
        ({"auto_lr_find": ""}, "auto_lr_find=''"),
        ({"auto_scale_batch_size": "linear"}, "auto_scale_batch_size='linear'"),
        ({"auto_scale_batch_size": None}, "auto_scale_batch_size=None"),
    ],
)
def test_legacy_tuning_flags_are_checked_naming_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=rf"Trainer\({message}\) is invalid"):
        fulmen.Trainer(**kwargs)


def test_legacy_flags_are_stored_and_fit_ignores_them() -> None:
    trainer = make_trainer(auto_lr_find=True, auto_scale_batch_size="power", max_epochs=1)
    assert (trainer.auto_lr_find, trainer.auto_scale_batch_size) == (True, "power")
    model = Regression(batch_size=4)
    trainer.fit(model)
    assert model.lr == 0.1 and model.batch_size == 4


# ---------------------------------------------------------------------------- run wiring


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.calls.append("on_exception")

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.calls.append(f"teardown:{stage}")


def test_tuner_ends_its_run_cleanly_with_teardown_and_no_exception_hooks() -> None:
    recorder = Recorder()
    trainer = make_trainer(callbacks=[recorder])
    Tuner(trainer).lr_find(Regression(), num_training=5, update_attr=False)
    Tuner(trainer).scale_batch_size(Regression(limit=4), method="test")
    assert recorder.calls == ["teardown:fit", "teardown:test"]
    assert trainer.state.status == "finished" and not trainer.interrupted


def test_batch_size_finder_callback_tests_with_the_size_found() -> None:
    model = Regression(batch_size=2, limit=8, n=32)
    make_trainer(callbacks=[BatchSizeFinder(steps_per_trial=1)]).test(model)
    assert model.batch_sizes[-4:] == [8] * 4


def test_batch_size_finder_callback_validates_and_predicts_with_the_size_found() -> None:
    model = Regression(batch_size=2, limit=8, n=32)
    trainer = make_trainer(callbacks=[BatchSizeFinder(steps_per_trial=1)])
    trainer.validate(model, verbose=False)
    assert model.batch_sizes[-4:] == [8] * 4 and trainer.num_val_batches == [4]
    model.batch_size = 2
    predictions = trainer.predict(model)
    assert model.batch_sizes[-4:] == [8] * 4
    assert [len(p) for p in predictions] == [8] * 4  # type: ignore[union-attr]


def test_suggestion_ignores_non_finite_losses_and_skipped_points() -> None:
    from fulmen.tuner.lr_finder import _LRFinder

    finder = _LRFinder("linear", 0.0, 1.0, 8)
    lrs = [0.1 * i for i in range(8)]
    losses = [9.0, 1.0, 0.8, math.nan, 0.3, 0.25, math.inf, -50.0]
    finder.results = {"lr": lrs, "loss": losses}
    kept = [1, 2, 4, 5]
    slopes = gradient([losses[i] for i in kept], [lrs[i] for i in kept])
    expected = kept[min(range(len(slopes)), key=slopes.__getitem__)]
    assert finder.suggestion(skip_begin=1, skip_end=1) == lrs[expected]
    assert finder.suggestion(skip_begin=0, skip_end=0) == lrs[7]  # the drop to -50


@pytest.mark.compat
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("fulmen.tuner:Tuner.lr_find", "pytorch_lightning.tuner:Tuner.lr_find"),
        ("fulmen.tuner:Tuner.scale_batch_size", "pytorch_lightning.tuner:Tuner.scale_batch_size"),
        (
            "fulmen.callbacks:LearningRateFinder.__init__",
            "pytorch_lightning.callbacks:LearningRateFinder.__init__",
        ),
        (
            "fulmen.callbacks:BatchSizeFinder.__init__",
            "pytorch_lightning.callbacks:BatchSizeFinder.__init__",
        ),
        (
            "fulmen.tuner.lr_finder:_LRFinder.suggestion",
            "pytorch_lightning.tuner.lr_finder:_LRFinder.suggestion",
        ),
        (
            "fulmen.tuner.lr_finder:_LRFinder.plot",
            "pytorch_lightning.tuner.lr_finder:_LRFinder.plot",
        ),
    ],
)
def test_tuner_signatures_match_lightnings_names_and_defaults(ours: str, theirs: str) -> None:
    import importlib
    import inspect

    pytest.importorskip("pytorch_lightning")

    def resolve(path: str) -> Any:
        module, _, attributes = path.partition(":")
        found: Any = importlib.import_module(module)
        for name in attributes.split("."):
            found = getattr(found, name)
        return inspect.signature(found).parameters

    mine, lightning = resolve(ours), resolve(theirs)
    assert list(mine) == list(lightning)
    assert [p.default for p in mine.values()] == [p.default for p in lightning.values()]
