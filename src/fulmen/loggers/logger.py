"""The `Logger` base class, the rank-zero `experiment` guard and the do-nothing `DummyLogger`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from argparse import Namespace
from collections.abc import Callable, Mapping
from functools import wraps
from typing import TYPE_CHECKING, Any

import torch.nn as nn
from torch import Tensor

from fulmen.utilities.rank_zero import rank_zero_only

if TYPE_CHECKING:
    from fulmen.callbacks.model_checkpoint import ModelCheckpoint

__all__ = ["Logger", "DummyLogger", "DummyExperiment", "rank_zero_experiment"]


class Logger(ABC):
    """Receive metrics and hyperparameters from the trainer and store them somewhere.

    Subclasses define `name`, `version`, `log_metrics` and `log_hyperparams`; the rest is optional.

    Example:
        >>> class PrintLogger(Logger):
        ...     name = "print"
        ...     version = 0
        ...     def log_metrics(self, metrics, step=None):
        ...         print(step, dict(metrics))
        ...     def log_hyperparams(self, params, *args, **kwargs):
        ...         print(params)
        >>> PrintLogger().log_metrics({"loss": 0.5}, step=3)
        3 {'loss': 0.5}
    """

    @property
    @abstractmethod
    def name(self) -> str | None:
        """The experiment name; for file loggers, the folder below `save_dir`."""

    @property
    @abstractmethod
    def version(self) -> int | str | None:
        """The run's version: an int becomes `version_<N>`, a string is used as is."""

    @property
    def root_dir(self) -> str | None:
        """The folder that holds every version of this experiment, if the logger writes files."""
        return None

    @property
    def log_dir(self) -> str | None:
        """The folder of this run, if the logger writes files."""
        return None

    @property
    def save_dir(self) -> str | None:
        """The folder the logger was told to write into, if it writes files."""
        return None

    @property
    def group_separator(self) -> str:
        """The character that groups metric names into sections, as in `train/loss`."""
        return "/"

    @property
    def experiment(self) -> Any:
        """The backend object (for instance a `SummaryWriter`); None when there is none."""
        return None

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        """Record `metrics` at `step`."""

    @abstractmethod
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Record the run's hyperparameters."""

    def log_graph(self, model: nn.Module, input_array: Tensor | None = None) -> None:  # noqa: B027 (a default no-op, as for hooks)
        """Record the model's computational graph, if the backend can show one."""

    def save(self) -> None:  # noqa: B027 (a default no-op, as for hooks)
        """Write anything buffered to its destination."""

    def finalize(self, status: str) -> None:
        """Write what is left and release resources; `status` is "success", "failed" or similar."""
        self.save()

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:  # noqa: B027 (a default no-op, as for hooks)
        """React to a checkpoint being written (for instance, upload it)."""


def rank_zero_experiment(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Make an `experiment` getter return a `DummyExperiment` on every rank but zero.

    Example:
        >>> class MyLogger:
        ...     @property
        ...     @rank_zero_experiment
        ...     def experiment(self):
        ...         return "the real writer"
        >>> MyLogger().experiment
        'the real writer'
    """

    @wraps(fn)
    def experiment(self: Any) -> Any:
        # Read at call time: the rank is only known once the strategy has set up the processes.
        if rank_zero_only.rank > 0:  # type: ignore[attr-defined]
            return DummyExperiment()
        return fn(self)

    return experiment


def _do_nothing(*args: Any, **kwargs: Any) -> None:
    return None


class DummyExperiment:
    """Accept any method call, index or item assignment and do nothing.

    Example:
        >>> experiment = DummyExperiment()
        >>> experiment.add_scalar("loss", 1.0) is None
        True
        >>> experiment[0] is experiment
        True
    """

    def __getattr__(self, name: str) -> Callable[..., None]:
        # Dunder lookups (copy, pickle) must fail normally, or copies would come back broken.
        if name.startswith("__"):
            raise AttributeError(name)
        return _do_nothing

    def __getitem__(self, index: Any) -> DummyExperiment:
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        return None


class DummyLogger(Logger):
    """Log nothing; stands in for the real loggers during `fast_dev_run`.

    Any method that a real logger might have (`log_image`, `watch`, ...) is accepted and ignored.

    Example:
        >>> logger = DummyLogger()
        >>> logger.log_metrics({"loss": 1.0}, step=0)
        >>> logger.log_image(key="samples", images=[]) is None
        True
        >>> logger.name, logger.version
        ('', '')
    """

    def __init__(self) -> None:
        self._experiment = DummyExperiment()

    @property
    def experiment(self) -> DummyExperiment:
        """A `DummyExperiment`: every call on it is ignored."""
        return self._experiment

    @property
    def name(self) -> str:
        """An empty string: there is no experiment."""
        return ""

    @property
    def version(self) -> str:
        """An empty string: there is no run."""
        return ""

    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        """Ignore `metrics`."""

    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Ignore `params`."""

    def __getitem__(self, index: int) -> DummyLogger:
        # Code written for 1.x's LoggerCollection indexes `trainer.logger`.
        return self

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)
        return _do_nothing
