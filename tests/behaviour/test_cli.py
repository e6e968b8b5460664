"""LightningCLI subcommands run the Trainer as a user's `python train.py fit ...` would."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("jsonargparse")

from fulmen import LightningModule  # noqa: E402
from fulmen.cli import LightningCLI  # noqa: E402
from fulmen.demos.boring_classes import BoringDataModule, BoringModel  # noqa: E402

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class Model(BoringModel):
    def __init__(self, hidden: int = 4, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()


class NoOptimizerModel(BoringModel):
    """A module that leaves its optimizer to the command line."""

    def __init__(self, hidden: int = 4) -> None:
        super().__init__()

    configure_optimizers = LightningModule.configure_optimizers  # the base's, which raises

    def training_step(self, batch, batch_idx):
        output = super().training_step(batch, batch_idx)
        self.log("train_loss", output["loss"])
        return output


class Data(BoringDataModule):
    def __init__(self, batch_size: int = 2) -> None:
        super().__init__()


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's own arguments are in sys.argv; the CLI warns when they meet `args=`.
    monkeypatch.setattr(sys, "argv", ["train.py"])


def run(*args: str, model: type = Model, **kwargs) -> LightningCLI:
    return LightningCLI(model, Data, args=[*args, "--seed_everything=3", *QUIET], **kwargs)


def test_fit_trains_and_saves_the_config_in_the_log_dir(tmp_path: Path) -> None:
    cli = run(
        "fit", "--trainer.max_steps=2", "--model.hidden=6", f"--trainer.default_root_dir={tmp_path}"
    )
    assert cli.trainer.global_step == 2
    saved = tmp_path / "lightning_logs" / "version_0" / "config.yaml"
    text = saved.read_text()
    assert text.startswith("# fulmen==")
    config = yaml.safe_load(text)
    assert config["seed_everything"] == 3
    assert config["model"] == {"hidden": 6, "lr": 0.1}
    assert config["trainer"]["max_steps"] == 2
    assert config["trainer"]["max_epochs"] is None  # every argument is listed, None included
    assert config["ckpt_path"] is None


def test_the_saved_config_repeats_the_run_and_is_not_overwritten(tmp_path: Path) -> None:
    args = (
        "fit",
        "--trainer.max_steps=2",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--model.hidden=5",
    )
    run(*args)
    saved = tmp_path / "config.yaml"  # without a logger, the log dir is the root dir (cwd)
    again = LightningCLI(Model, Data, args=["fit", f"--config={saved}"], save_config_callback=None)
    assert again.model.hparams.hidden == 5 and again.trainer.global_step == 2
    assert again.config.fit.seed_everything == 3
    with pytest.raises(RuntimeError, match="config.yaml.*overwrite"):
        run(*args)
    run(*args, save_config_kwargs={"overwrite": True})


def test_fast_dev_run_saves_no_config(tmp_path: Path) -> None:
    run("fit", "--trainer.fast_dev_run=1")
    assert not list(tmp_path.rglob("config.yaml"))


def test_validate_test_and_predict_subcommands_run_the_trainer_methods() -> None:
    for subcommand in ("validate", "test", "predict"):
        cli = run(
            subcommand,
            "--trainer.limit_val_batches=1",
            "--trainer.limit_test_batches=1",
            "--trainer.limit_predict_batches=1",
            "--trainer.logger=false",
            save_config_callback=None,
        )
        assert cli.subcommand == subcommand
        assert cli.trainer.state.fn == subcommand


def test_optimizer_and_scheduler_options_configure_the_model() -> None:
    cli = run(
        "fit",
        "--trainer.max_steps=2",
        "--trainer.logger=false",
        "--optimizer=torch.optim.Adam",
        "--optimizer.lr=0.01",
        "--lr_scheduler=StepLR",
        "--lr_scheduler.step_size=1",
        model=NoOptimizerModel,
        save_config_callback=None,
    )
    (optimizer,) = cli.trainer.optimizers
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.01
    (config,) = cli.trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.StepLR)
    assert optimizer.param_groups[0]["params"][0] is next(cli.model.parameters())


def test_reduce_lr_on_plateau_option_monitors_its_metric() -> None:
    cli = run(
        "fit",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.logger=false",
        "--optimizer=SGD",
        "--optimizer.lr=0.1",
        "--lr_scheduler=fulmen.cli.ReduceLROnPlateau",
        "--lr_scheduler.monitor=train_loss",
        model=NoOptimizerModel,
        save_config_callback=None,
    )
    (config,) = cli.trainer.lr_scheduler_configs
    assert config.monitor == "train_loss"


def test_optimizer_option_overrides_the_models_method_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="Model.configure_optimizers` will be overridden"):
        cli = run(
            "fit",
            "--trainer.max_steps=1",
            "--trainer.logger=false",
            "--optimizer=Adam",
            save_config_callback=None,
        )
    assert isinstance(cli.trainer.optimizers[0], torch.optim.Adam)


def test_without_optimizer_option_the_models_method_is_used() -> None:
    cli = run("fit", "--trainer.max_steps=1", "--trainer.logger=false", save_config_callback=None)
    assert isinstance(cli.trainer.optimizers[0], torch.optim.SGD)


def test_ckpt_path_brings_the_checkpoints_hyperparameters(tmp_path: Path) -> None:
    fitted = run(
        "fit",
        "--trainer.max_steps=1",
        "--trainer.logger=false",
        "--model.hidden=7",
        save_config_callback=None,
    )
    checkpoint = tmp_path / "model.ckpt"
    fitted.trainer.save_checkpoint(checkpoint)
    tested = run(
        "test",
        f"--ckpt_path={checkpoint}",
        "--trainer.limit_test_batches=1",
        "--trainer.logger=false",
        save_config_callback=None,
    )
    assert tested.model.hparams.hidden == 7


@pytest.mark.slow
def test_a_user_script_runs_from_the_command_line(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent("""
        from fulmen.cli import LightningCLI
        from fulmen.demos.boring_classes import BoringDataModule, DemoModel

        if __name__ == "__main__":
            LightningCLI(DemoModel, BoringDataModule)
    """)
    )
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "fit",
            "--trainer.max_steps=1",
            "--model.out_dim=2",
            "--seed_everything=1",
            *QUIET,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "lightning_logs/version_0/config.yaml").read_text())
    assert config["model"]["out_dim"] == 2
