"""LightningCLI parsing and building without running a subcommand (`run=False`, the parser)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("jsonargparse")

from fulmen import LightningDataModule, LightningModule, Trainer  # noqa: E402
from fulmen.callbacks import EarlyStopping, LearningRateMonitor  # noqa: E402
from fulmen.cli import (  # noqa: E402
    LightningArgumentParser,
    LightningCLI,
    ReduceLROnPlateau,
    SaveConfigCallback,
    instantiate_class,
    instantiate_module,
)
from fulmen.demos.boring_classes import BoringDataModule, BoringModel  # noqa: E402
from fulmen.utilities.exceptions import MisconfigurationException  # noqa: E402


class Model(BoringModel):
    def __init__(self, hidden: int = 4, lr: float = 0.1, batch_size: int = 1) -> None:
        super().__init__()
        self.hidden, self.lr, self.batch_size = hidden, lr, batch_size


class Data(BoringDataModule):
    def __init__(self, batch_size: int = 2) -> None:
        super().__init__()
        self.batch_size = batch_size


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's own arguments are in sys.argv; the CLI warns when they meet `args=`.
    monkeypatch.setattr(sys, "argv", ["train.py"])


def cli(*args: str, **kwargs) -> LightningCLI:
    kwargs.setdefault("run", False)
    return LightningCLI(Model, Data, args=["--seed_everything=1", *args], **kwargs)


def test_run_false_builds_trainer_model_and_datamodule_from_signatures() -> None:
    built = cli(
        "--trainer.max_epochs=3", "--model.hidden=8", "--model.lr=0.5", "--data.batch_size=4"
    )
    assert isinstance(built.trainer, Trainer) and built.trainer.max_epochs == 3
    assert isinstance(built.model, Model)
    assert (built.model.hidden, built.model.lr) == (8, 0.5)
    assert isinstance(built.datamodule, Data) and built.datamodule.batch_size == 4
    assert built.subcommand is None


def test_args_may_be_a_dict() -> None:
    built = LightningCLI(
        Model,
        Data,
        run=False,
        args={"seed_everything": False, "trainer": {"max_steps": 7}, "model": {"hidden": 3}},
    )
    assert built.trainer.max_steps == 7 and built.model.hidden == 3


def test_seed_true_records_the_chosen_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "123")
    built = LightningCLI(Model, Data, run=False, args=[])
    assert built.config.seed_everything == 123


def test_seed_true_without_a_seed_uses_zero_with_lightnings_warning() -> None:
    with pytest.warns(UserWarning, match="No seed found, seed set to 0"):
        built = LightningCLI(Model, Data, run=False, args=[])
    assert built.config.seed_everything == 0


def test_seed_false_seeds_nothing() -> None:
    built = LightningCLI(Model, Data, run=False, args=["--seed_everything=false"])
    assert built.config.seed_everything is False
    assert "PL_GLOBAL_SEED" not in os.environ


def test_seed_everything_default_is_the_option_default() -> None:
    built = LightningCLI(Model, Data, run=False, args=[], seed_everything_default=9)
    assert built.config.seed_everything == 9


def test_trainer_defaults_are_defaults_and_default_callbacks_are_added() -> None:
    monitor = LearningRateMonitor()
    built = cli(
        "--trainer.max_epochs=5",
        trainer_defaults={"max_epochs": 2, "max_steps": 11, "callbacks": [monitor]},
    )
    assert built.trainer.max_epochs == 5 and built.trainer.max_steps == 11
    assert monitor in built.trainer.callbacks


def test_callbacks_from_the_command_line_are_built() -> None:
    built = cli("--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val_loss")
    stoppers = [c for c in built.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert [s.monitor for s in stoppers] == ["val_loss"]


def test_save_config_callback_is_added_unless_fast_dev_run() -> None:
    assert any(isinstance(c, SaveConfigCallback) for c in cli().trainer.callbacks)
    quick = cli("--trainer.fast_dev_run=true")
    assert not any(isinstance(c, SaveConfigCallback) for c in quick.trainer.callbacks)
    none = cli(save_config_callback=None)
    assert not any(isinstance(c, SaveConfigCallback) for c in none.trainer.callbacks)


def test_subclass_mode_takes_class_path_and_init_args() -> None:
    built = LightningCLI(
        args=[
            "--seed_everything=1",
            "--model=fulmen.demos.boring_classes.DemoModel",
            "--model.learning_rate=0.3",
            "--data=fulmen.demos.boring_classes.BoringDataModule",
        ],
        run=False,
    )
    assert type(built.model).__name__ == "DemoModel"
    assert built.model.learning_rate == 0.3
    assert isinstance(built.datamodule, BoringDataModule)


def test_data_is_optional_without_a_datamodule_class() -> None:
    built = LightningCLI(Model, run=False, args=["--seed_everything=1"])
    assert built.datamodule is None


def test_later_config_files_override_earlier_ones_and_options_override_both(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("model:\n  hidden: 2\n  lr: 0.2\ntrainer:\n  max_epochs: 4\n")
    second.write_text("model:\n  hidden: 3\n")
    built = cli(f"--config={first}", f"--config={second}", "--model.lr=0.7")
    assert (built.model.hidden, built.model.lr, built.trainer.max_epochs) == (3, 0.7, 4)


def test_a_bad_value_names_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli("--model.lr=abc")
    assert exit_info.value.code != 0
    assert "model.lr" in capsys.readouterr().err


def test_an_unknown_key_in_a_config_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  lrr: 3\n")
    with pytest.raises(SystemExit):
        cli(f"--config={config}")
    error = capsys.readouterr().err
    assert "'model'" in error and "'lrr'" in error


def test_print_config_prints_every_argument_in_lightnings_layout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        LightningCLI(Model, Data, args=["fit", "--model.hidden=6", "--print_config"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# fulmen==")
    top_level = [line.split(":")[0] for line in lines[1:] if line and not line.startswith(" ")]
    assert top_level == [
        "seed_everything",
        "trainer",
        "model",
        "data",
        "optimizer",
        "lr_scheduler",
        "ckpt_path",
        "weights_only",
    ]
    assert "  hidden: 6" in lines and "  max_epochs: null" in lines


def test_args_next_to_command_line_arguments_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--model.hidden=2"])
    with pytest.warns(UserWarning, match="ignores the command line"):
        cli()


def test_parser_kwargs_for_one_subcommand(tmp_path: Path) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("model:\n  hidden: 9\n")
    built = LightningCLI(
        Model,
        Data,
        args=["fit", "--seed_everything=1", "--trainer.fast_dev_run=1"],
        parser_kwargs={"fit": {"default_config_files": [str(defaults)]}},
        save_config_callback=None,
    )
    assert built.model.hidden == 9


class LinkedCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.batch_size", "model.batch_size")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.monitor": "val_loss", "early_stopping.patience": 4})


def test_add_arguments_to_parser_links_values_and_adds_callbacks() -> None:
    built = LinkedCLI(Model, Data, run=False, args=["--seed_everything=1", "--data.batch_size=16"])
    assert built.model.batch_size == 16
    stoppers = [c for c in built.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert [(s.monitor, s.patience) for s in stoppers] == [("val_loss", 4)]


def test_add_lightning_class_args_rejects_other_classes() -> None:
    parser = LightningArgumentParser()
    with pytest.raises(MisconfigurationException, match="lightning_class=<class 'int'>"):
        parser.add_lightning_class_args(int, "number")


def test_add_lightning_class_args_accepts_a_factory_function() -> None:
    def make_model(hidden: int = 2) -> Model:
        return Model(hidden=hidden)

    parser = LightningArgumentParser()
    parser.add_lightning_class_args(make_model, "model")
    config = parser.parse_args(["--model.hidden=5"])
    assert parser.instantiate(config).model.hidden == 5


def test_instantiate_class_imports_and_calls_the_class_path() -> None:
    optimizer = instantiate_class(
        torch.nn.Linear(2, 1).parameters(),
        {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.25}},
    )
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.25


def test_instantiate_module_checks_the_arguments() -> None:
    assert instantiate_module(Model, {"hidden": 5}).hidden == 5
    with pytest.raises(Exception, match="hidden"):
        instantiate_module(Model, {"hidden": "many"})


def test_configure_optimizers_returns_lightnings_formats() -> None:
    model = BoringModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert LightningCLI.configure_optimizers(model, optimizer) is optimizer
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    assert LightningCLI.configure_optimizers(model, optimizer, step) == ([optimizer], [step])
    plateau = ReduceLROnPlateau(optimizer, monitor="val_loss")
    assert LightningCLI.configure_optimizers(model, optimizer, plateau) == {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"},
    }


def test_save_to_log_dir_false_needs_a_save_config_override() -> None:
    parser = LightningArgumentParser()
    with pytest.raises(ValueError, match="save_to_log_dir=False"):
        SaveConfigCallback(parser, parser.parse_args([]), save_to_log_dir=False)


def test_two_automatic_optimizers_are_refused() -> None:
    class TwoOptimizers(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_optimizer_args((torch.optim.SGD,), nested_key="gen")
            parser.add_optimizer_args((torch.optim.Adam,), nested_key="disc")

    with pytest.raises(MisconfigurationException, match="'AUTOMATIC'"):
        TwoOptimizers(
            Model, Data, run=False, args=["--seed_everything=1", "--gen=SGD", "--gen.lr=1"]
        )


def test_import_fulmen_does_not_import_jsonargparse() -> None:
    code = "import sys, fulmen; print('jsonargparse' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_module_and_datamodule_base_classes_are_the_default_subclass_bases() -> None:
    built = LightningCLI(
        run=False,
        args=["--seed_everything=1", "--model=fulmen.demos.boring_classes.BoringModel"],
    )
    assert isinstance(built.model, LightningModule)
    assert built.datamodule is None or isinstance(built.datamodule, LightningDataModule)


class OptimizerInitModel(BoringModel):
    def __init__(self, optimizer_init: dict | None = None) -> None:
        super().__init__()
        self.optimizer_init = optimizer_init


def test_an_optimizer_linked_to_a_model_argument_reaches_the_model() -> None:
    class LinkedOptimizerCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_optimizer_args(torch.optim.Adam, link_to="model.optimizer_init")

    built = LinkedOptimizerCLI(
        OptimizerInitModel, run=False, args=["--seed_everything=1", "--optimizer.lr=0.5"]
    )
    init = built.model.optimizer_init
    assert init["class_path"] == "torch.optim.adam.Adam" and init["init_args"]["lr"] == 0.5
    assert "configure_optimizers" not in vars(built.model)  # linked, so not automatic
