"""LightningDataModule: the data side of a project, in one class the Trainer knows how to drive."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from torch.utils.data import DataLoader, Dataset, IterableDataset

from fulmen.core.hooks import DataHooks
from fulmen.utilities.parsing import AttributeDict

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["LightningDataModule"]


class LightningDataModule(DataHooks):
    """Downloads, splits and loads the data for fit, validate, test and predict.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> dm = LightningDataModule.from_datasets(TensorDataset(torch.zeros(8, 2)), batch_size=4)
        >>> len(dm.train_dataloader())
        2
    """

    name: str | None = None
    CHECKPOINT_HYPER_PARAMS_KEY = "datamodule_hyper_parameters"
    CHECKPOINT_HYPER_PARAMS_NAME = "datamodule_hparams_name"
    CHECKPOINT_HYPER_PARAMS_TYPE = "datamodule_hparams_type"

    def __init__(self) -> None:
        super().__init__()
        self.trainer: Trainer | None = None
        self._hparams = AttributeDict()
        self._hparams_initial = AttributeDict()
        self._hparams_unstorable: set[str] = set()  # names checkpoints leave out
        self._log_hyperparams = True

    def state_dict(self) -> dict[str, Any]:
        """Return state to save in checkpoints under this class's qualified name."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state returned by `state_dict`."""

    def on_exception(self, exception: BaseException) -> None:
        """Called when a run is ended by an exception."""

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: str | list[str] | tuple[str, ...] | None = None,
        frame: Any | None = None,
        logger: bool = True,
    ) -> None:
        """Store `__init__` arguments in `self.hparams`; see `LightningModule.save_hyperparameters`."""
        from fulmen.core.module import _save_hyperparameters

        _save_hyperparameters(self, args, ignore, frame or inspect.currentframe().f_back, logger)  # type: ignore[union-attr]

    @property
    def hparams(self) -> AttributeDict:
        return self._hparams

    @property
    def hparams_initial(self) -> AttributeDict:
        import copy

        return copy.deepcopy(self._hparams_initial)

    @classmethod
    def from_datasets(
        cls,
        train_dataset: Dataset[Any] | Iterable[Dataset[Any]] | None = None,
        val_dataset: Dataset[Any] | Iterable[Dataset[Any]] | None = None,
        test_dataset: Dataset[Any] | Iterable[Dataset[Any]] | None = None,
        predict_dataset: Dataset[Any] | Iterable[Dataset[Any]] | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        **datamodule_kwargs: Any,
    ) -> LightningDataModule:
        """Build a datamodule from datasets (or lists/dicts of them, giving several loaders)."""

        def loader(ds: Dataset[Any], shuffle: bool) -> DataLoader[Any]:
            shuffle &= not isinstance(ds, IterableDataset)
            return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers)

        def loaders(ds: Any, shuffle: bool) -> Any:
            if isinstance(ds, Dataset):
                return loader(ds, shuffle)
            if isinstance(ds, dict):
                return {k: loader(v, shuffle) for k, v in ds.items()}
            return [loader(d, shuffle) for d in ds]

        datamodule = cls(**datamodule_kwargs)
        if train_dataset is not None:
            datamodule.train_dataloader = lambda: loaders(train_dataset, True)  # type: ignore[method-assign]
        if val_dataset is not None:
            datamodule.val_dataloader = lambda: loaders(val_dataset, False)  # type: ignore[method-assign]
        if test_dataset is not None:
            datamodule.test_dataloader = lambda: loaders(test_dataset, False)  # type: ignore[method-assign]
        if predict_dataset is not None:
            datamodule.predict_dataloader = lambda: loaders(predict_dataset, False)  # type: ignore[method-assign]
        return datamodule

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO[bytes],
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Build the datamodule from the hyperparameters and state saved in a checkpoint."""
        from fulmen.core.saving import load_from_checkpoint

        return load_from_checkpoint(
            cls,
            checkpoint_path,
            map_location=map_location,
            hparams_file=hparams_file,
            strict=None,
            weights_only=weights_only,
            **kwargs,
        )
