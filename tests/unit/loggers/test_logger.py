from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import torch

from fulmen.loggers import Logger
from fulmen.loggers.logger import DummyExperiment, DummyLogger, rank_zero_experiment
from fulmen.utilities.rank_zero import rank_zero_only


class _MinimalLogger(Logger):
    def __init__(self) -> None:
        self.saved = 0

    @property
    def name(self) -> str:
        return "minimal"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def save(self) -> None:
        self.saved += 1


def test_logger_requires_name_version_log_metrics_and_log_hyperparams() -> None:
    assert Logger.__abstractmethods__ == {"name", "version", "log_metrics", "log_hyperparams"}
    with pytest.raises(TypeError):
        Logger()  # type: ignore[abstract]


def test_logger_defaults_have_no_directories_and_slash_separator() -> None:
    logger = _MinimalLogger()
    assert (logger.root_dir, logger.log_dir, logger.save_dir) == (None, None, None)
    assert logger.group_separator == "/"
    assert logger.experiment is None
    logger.log_graph(torch.nn.Linear(1, 1))
    logger.after_save_checkpoint(object())  # type: ignore[arg-type]


def test_logger_finalize_saves() -> None:
    logger = _MinimalLogger()
    logger.finalize("success")
    assert logger.saved == 1


def test_dummy_experiment_swallows_calls_indexing_and_assignment() -> None:
    experiment = DummyExperiment()
    assert experiment.add_scalar("loss", 1.0, 3) is None
    assert experiment.log({"a": 1}, commit=False) is None
    assert experiment[0] is experiment
    experiment["key"] = 1


def test_dummy_logger_accepts_any_logger_call_and_logs_nothing() -> None:
    logger = DummyLogger()
    assert isinstance(logger, Logger)
    assert (logger.name, logger.version) == ("", "")
    assert (logger.save_dir, logger.log_dir, logger.root_dir) == (None, None, None)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    assert logger.log_image(key="samples", images=[]) is None
    assert logger.experiment.watch(object(), log="all") is None
    assert logger[0] is logger
    logger.finalize("success")


def test_dummy_logger_copies_and_pickles_despite_accepting_any_attribute() -> None:
    logger = DummyLogger()
    with pytest.raises(AttributeError):
        logger.__missing_dunder__  # noqa: B018
    assert isinstance(copy.deepcopy(logger).experiment, DummyExperiment)
    assert isinstance(pickle.loads(pickle.dumps(logger)), DummyLogger)
    assert isinstance(copy.copy(DummyExperiment()), DummyExperiment)


class _Holder:
    @property
    @rank_zero_experiment
    def experiment(self) -> str:
        return "real"


def test_rank_zero_experiment_returns_the_real_experiment_on_rank_zero() -> None:
    assert _Holder().experiment == "real"


def test_rank_zero_experiment_returns_a_dummy_on_other_ranks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    experiment = _Holder().experiment
    assert isinstance(experiment, DummyExperiment)
    assert experiment.add_scalar("loss", 1.0) is None


@pytest.mark.compat
def test_loggers_all_matches_lightning() -> None:
    lightning_loggers = pytest.importorskip("pytorch_lightning.loggers")
    import fulmen.loggers

    assert sorted(fulmen.loggers.__all__) == sorted(lightning_loggers.__all__)
