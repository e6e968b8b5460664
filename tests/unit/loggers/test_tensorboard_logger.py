from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import fulmen.loggers.tensorboard as tensorboard_module
from fulmen.loggers import TensorBoardLogger
from fulmen.loggers.logger import DummyExperiment
from fulmen.utilities.rank_zero import rank_zero_only


def _events(log_dir: str) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir)
    accumulator.Reload()
    return accumulator


def _scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    events = _events(log_dir)
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def test_tensorboard_logger_paths_follow_save_dir_name_version_and_sub_dir(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, name="exp", sub_dir="train")
    assert logger.save_dir == str(tmp_path)
    assert (logger.name, logger.version, logger.sub_dir) == ("exp", 0, "train")
    assert logger.root_dir == os.path.join(tmp_path, "exp")
    assert logger.log_dir == os.path.join(tmp_path, "exp", "version_0", "train")


def test_tensorboard_logger_expands_variables_in_log_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FULMEN_TEST_RUN", "run7")
    logger = TensorBoardLogger(tmp_path, name="", version="v", sub_dir="$FULMEN_TEST_RUN")
    assert logger.log_dir == os.path.join(tmp_path, "v", "run7")


def test_tensorboard_logger_versions_increment_and_strings_are_verbatim(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("success")
    assert TensorBoardLogger(tmp_path).version == 1
    assert TensorBoardLogger(tmp_path, version="best").log_dir == os.path.join(
        tmp_path, "lightning_logs", "best"
    )


def test_tensorboard_logger_writes_scalars_readable_by_tensorboard(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": torch.tensor(0.5), "epoch": 0}, step=0)
    logger.log_metrics({"loss": 0.25, "epoch": 1}, step=10)
    logger.finalize("success")
    files = os.listdir(logger.log_dir)
    assert any(name.startswith("events.out.tfevents.") for name in files)
    assert _scalars(logger.log_dir) == {
        "loss": [(0, 0.5), (10, 0.25)],
        "epoch": [(0, 0.0), (10, 1.0)],
    }


def test_tensorboard_logger_writes_a_dict_metric_as_a_scalar_group(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": {"train": 1.0, "val": 2.0}}, step=3)
    logger.finalize("success")
    assert _scalars(os.path.join(logger.log_dir, "loss_val")) == {"loss": [(3, 2.0)]}


def test_tensorboard_logger_prefixes_metric_names_with_a_dash(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, prefix="stage1", default_hp_metric=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert list(_scalars(logger.log_dir)) == ["stage1-loss"]


def test_tensorboard_logger_rejects_a_metric_it_cannot_plot(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    with pytest.raises(ValueError, match="cannot log metric 'name' = 'abc'"):
        logger.log_metrics({"name": "abc"}, step=0)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cannot log metric 'vector'"):
        logger.log_metrics({"vector": torch.ones(3)}, step=0)
    logger.finalize("failed")


def test_tensorboard_logger_writes_hparams_with_a_placeholder_hp_metric(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1, "optim": {"name": "adam"}, "layers": [4, 2]})
    logger.finalize("success")
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {
        "lr": 0.1,
        "optim": {"name": "adam"},
        "layers": [4, 2],
    }
    assert _scalars(logger.log_dir) == {"hp_metric": [(0, -1.0)]}
    content = _events(logger.log_dir).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == 0.1
    assert hparams["optim/name"].string_value == "adam"
    assert hparams["layers"].string_value == "[4, 2]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert [info.name.tag for info in experiment.experiment.metric_infos] == ["hp_metric"]


def test_tensorboard_logger_logs_given_hparam_metrics_instead_of_the_placeholder(
    tmp_path: Path,
) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1}, {"val_acc": 0.75}, step=5)
    logger.log_hyperparams({"wd": 0.0}, 0.5)
    logger.finalize("success")
    assert _scalars(logger.log_dir) == {"val_acc": [(5, 0.75)], "hp_metric": [(0, 0.5)]}
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {
        "lr": 0.1,
        "wd": 0.0,
    }


def test_tensorboard_logger_without_default_hp_metric_writes_only_the_yaml(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, default_hp_metric=False)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    events = _events(logger.log_dir)
    assert events.Tags()["scalars"] == ["loss"]
    with pytest.raises(KeyError):
        events.PluginTagToContent("hparams")
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {"lr": 0.1}


def test_tensorboard_logger_writes_an_empty_hparams_yaml_with_its_events(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    assert Path(logger.log_dir, "hparams.yaml").read_text() == "{}\n"


def test_tensorboard_logger_creates_nothing_until_something_is_logged(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.save()
    logger.finalize("success")
    assert os.listdir(tmp_path) == []


class _Net(torch.nn.Module):
    def __init__(self, example: torch.Tensor | None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.example_input_array = example

    def forward(self, x: torch.Tensor) -> Any:
        return self.layer(x)


def test_tensorboard_logger_logs_the_graph_from_example_input_array(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    logger.log_graph(_Net(torch.zeros(3, 4)))
    logger.finalize("success")
    assert _events(logger.log_dir).Tags()["graph"] is True


def test_tensorboard_logger_logs_no_graph_unless_asked(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_graph(_Net(torch.zeros(3, 4)))
    logger.finalize("success")
    assert os.listdir(tmp_path) == []


def test_tensorboard_logger_warns_when_there_is_no_input_for_the_graph(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    with pytest.warns(UserWarning, match="_Net.example_input_array"):
        logger.log_graph(_Net(None))


def test_tensorboard_logger_reopens_its_writer_after_finalize(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    logger.log_metrics({"loss": 2.0}, step=1)
    logger.finalize("success")
    assert _scalars(logger.log_dir) == {"loss": [(0, 1.0), (1, 2.0)]}


def test_tensorboard_logger_pickles_without_its_writer(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._experiment is None
    assert copy.log_dir == logger.log_dir
    logger.finalize("success")


def test_tensorboard_logger_writes_nothing_on_other_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = TensorBoardLogger(tmp_path)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert os.listdir(tmp_path) == []


def test_tensorboard_logger_names_the_install_command_when_tensorboard_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tensorboard_module, "tensorboard_available", lambda: False)
    with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
        TensorBoardLogger(tmp_path)


def test_tensorboard_available_reports_the_installed_package() -> None:
    assert tensorboard_module.tensorboard_available() is True


def test_importing_loggers_and_profilers_does_not_import_tensorboard_or_yaml() -> None:
    code = (
        "import sys, fulmen.loggers, fulmen.profilers; "
        "print(sorted(m for m in ('tensorboard', 'torch.utils.tensorboard', 'yaml') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
