"""Turn a LightningModule, a LightningDataModule and the Trainer into a command line.

`LightningCLI` reads every `__init__` argument of the three classes from their signatures (with
jsonargparse, the `cli` extra: `pip install fulmen[cli]`), parses `fit|validate|test|predict`
with `--trainer.*`, `--model.*`, `--data.*`, `--optimizer`, `--lr_scheduler` and `--config`
files, builds the objects and runs the subcommand. `SaveConfigCallback` writes the parsed config
into the run's log directory so that the run can be repeated with `--config config.yaml`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from types import MethodType
from typing import Any, TypeVar

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

import fulmen
from fulmen.callbacks.callback import Callback
from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule
from fulmen.trainer.call import is_overridden
from fulmen.trainer.trainer import Trainer
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn
from fulmen.utilities.seed import seed_everything

try:
    from jsonargparse import ArgumentParser, Namespace
    from jsonargparse._actions import ActionConfigFile
    from jsonargparse.typing import class_from_function
except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "fulmen.cli needs jsonargparse. Install it with `pip install 'fulmen[cli]'` "
        "(or `pip install 'jsonargparse[signatures]>=4.27'`)."
    ) from err

__all__ = [
    "ArgsType",
    "LRSchedulerCallable",
    "LRSchedulerType",
    "LRSchedulerTypeTuple",
    "LRSchedulerTypeUnion",
    "LightningArgumentParser",
    "LightningCLI",
    "OptimizerCallable",
    "ReduceLROnPlateau",
    "SaveConfigCallback",
    "instantiate_class",
    "instantiate_module",
]

ModuleType = TypeVar("ModuleType")


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Torch's `ReduceLROnPlateau` that also names the metric it watches, so the CLI can wire it.

    Example:
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> ReduceLROnPlateau(optimizer, monitor="val_loss", patience=2).monitor
        'val_loss'
    """

    def __init__(self, optimizer: Optimizer, monitor: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, *args, **kwargs)
        self.monitor = monitor


# The types Lightning's CLI exposes for annotating optimizer and scheduler arguments.
LRSchedulerTypeTuple = (LRScheduler, ReduceLROnPlateau)
LRSchedulerTypeUnion = LRScheduler | ReduceLROnPlateau
LRSchedulerType = type[LRScheduler] | type[ReduceLROnPlateau]
OptimizerCallable = Callable[[Iterable[Any]], Optimizer]
LRSchedulerCallable = Callable[[Optimizer], LRScheduler | ReduceLROnPlateau]
ArgsType = list[str] | dict[str, Any] | Namespace | None

_AUTOMATIC = "AUTOMATIC"
_LIGHTNING_CLASSES = (Trainer, LightningModule, LightningDataModule, Callback)


def _as_dict(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = value.as_dict() if isinstance(value, Namespace) else dict(value)
    return result


# jsonargparse 4.49 renamed `instantiate_classes` to `instantiate` and `skip_none` to `skip_unset`.
_RENAMED_API = hasattr(ArgumentParser, "instantiate")


def _instantiate(parser: ArgumentParser, config: Namespace) -> Namespace:
    instantiate = parser.instantiate if _RENAMED_API else parser.instantiate_classes
    result: Namespace = instantiate(config)
    return result


def _keep_nulls() -> dict[str, bool]:
    # Saved configs list every argument, None included.
    return {"skip_unset" if _RENAMED_API else "skip_none": False}


def instantiate_class(args: Any | tuple[Any, ...], init: dict[str, Any] | Namespace) -> Any:
    """Import `init["class_path"]` and call it with `*args` and `init["init_args"]`.

    Example:
        >>> params = torch.nn.Linear(2, 1).parameters()
        >>> optimizer = instantiate_class(params, {"class_path": "torch.optim.SGD",
        ...                                        "init_args": {"lr": 0.5}})
        >>> type(optimizer).__name__, optimizer.defaults["lr"]
        ('SGD', 0.5)
    """
    init = _as_dict(init)
    module_name, _, class_name = init["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    positional = args if isinstance(args, tuple) else (args,)
    return cls(*positional, **init.get("init_args", {}))


def instantiate_module(class_type: type[ModuleType], config: dict[str, Any]) -> ModuleType:
    """Build `class_type` (or the subclass named by `config["_class_path"]`) from `config`.

    The arguments are checked against the signature, as the CLI checks them.

    Example:
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> type(instantiate_module(LightningModule, {
        ...     "_class_path": "fulmen.demos.boring_classes.BoringModel"})).__name__
        'BoringModel'
    """
    parser = ArgumentParser(exit_on_error=False)
    config = dict(config)
    if "_class_path" in config:
        parser.add_subclass_arguments(class_type, "module", fail_untyped=False)
        config = {"class_path": config.pop("_class_path"), "init_args": config}
    else:
        parser.add_class_arguments(class_type, "module", fail_untyped=False)
    namespace = _instantiate(parser, parser.parse_object({"module": config}))
    module: ModuleType = namespace.module
    return module


class LightningArgumentParser(ArgumentParser):
    """jsonargparse's parser, taught the Trainer, modules, callbacks, optimizers and schedulers.

    Example:
        >>> parser = LightningArgumentParser()
        >>> _ = parser.add_lightning_class_args(Trainer, "trainer")
        >>> parser.parse_args(["--trainer.max_epochs=3"]).trainer.max_epochs
        3
    """

    def __init__(
        self,
        *args: Any,
        description: str = "fulmen Trainer command line tool",
        env_prefix: str = "PL",
        default_env: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args, description=description, env_prefix=env_prefix, default_env=default_env, **kwargs
        )
        self.callback_keys: list[str] = []
        # nested key -> (accepted classes, where the parsed value goes: "AUTOMATIC" or a key)
        self._optimizers: dict[str, tuple[type | tuple[type, ...], str]] = {}
        self._lr_schedulers: dict[str, tuple[type | tuple[type, ...], str]] = {}

    def add_lightning_class_args(
        self,
        lightning_class: type | Callable[..., Any],
        nested_key: str,
        subclass_mode: bool = False,
        required: bool = True,
    ) -> list[str]:
        """Add the `__init__` arguments of a Trainer, module, datamodule or callback class.

        A callback added here is built and appended to the Trainer's callbacks. With
        `subclass_mode=True` the value is any subclass, given as `class_path` and `init_args`.
        """
        if callable(lightning_class) and not isinstance(lightning_class, type):
            lightning_class = class_from_function(lightning_class)
        if not (
            isinstance(lightning_class, type) and issubclass(lightning_class, _LIGHTNING_CLASSES)
        ):
            raise MisconfigurationException(
                f"add_lightning_class_args(lightning_class={lightning_class!r}) is invalid: expected "
                "a subclass of Trainer, LightningModule, LightningDataModule or Callback, or a "
                "function that returns one."
            )
        if issubclass(lightning_class, Callback):
            self.callback_keys.append(nested_key)
        if subclass_mode:
            added: list[str] = self.add_subclass_arguments(
                lightning_class, nested_key, fail_untyped=False, required=required
            )
            return added
        # The Trainer is built by LightningCLI itself, so that it can add the callbacks.
        added = self.add_class_arguments(
            lightning_class,
            nested_key,
            fail_untyped=False,
            instantiate=not issubclass(lightning_class, Trainer),
            sub_configs=True,
        )
        return added

    def add_optimizer_args(
        self,
        optimizer_class: type[Optimizer] | tuple[type[Optimizer], ...] = (Optimizer,),
        nested_key: str = "optimizer",
        link_to: str = _AUTOMATIC,
    ) -> None:
        """Add an optimizer option; "AUTOMATIC" puts it into the model's `configure_optimizers`.

        A tuple accepts any subclass (`--optimizer Adam --optimizer.lr 0.01`); one class takes
        only its init arguments (`--optimizer.lr 0.01`). `link_to="model.opt"` passes the
        parsed `class_path`/`init_args` to that model argument instead.
        """
        self._add_optimizer_or_scheduler(optimizer_class, nested_key, link_to, Optimizer, "params")
        self._optimizers[nested_key] = (optimizer_class, link_to)

    def add_lr_scheduler_args(
        self,
        lr_scheduler_class: LRSchedulerType | tuple[LRSchedulerType, ...] = LRSchedulerTypeTuple,  # type: ignore[assignment]
        nested_key: str = "lr_scheduler",
        link_to: str = _AUTOMATIC,
    ) -> None:
        """Add a learning-rate scheduler option, as `add_optimizer_args` adds an optimizer."""
        self._add_optimizer_or_scheduler(
            lr_scheduler_class, nested_key, link_to, LRSchedulerTypeTuple, "optimizer"
        )
        self._lr_schedulers[nested_key] = (lr_scheduler_class, link_to)

    def _add_optimizer_or_scheduler(
        self,
        classes: Any,
        nested_key: str,
        link_to: str,
        base: type | tuple[type, ...],
        first_argument: str,
    ) -> None:
        candidates = classes if isinstance(classes, tuple) else (classes,)
        if not all(isinstance(c, type) and issubclass(c, base) for c in candidates):
            raise MisconfigurationException(
                f"Cannot add {nested_key!r} arguments from {classes!r}: expected a subclass of "
                f"{base!r} or a tuple of them."
            )
        # The optimizer's `params` (the scheduler's `optimizer`) only exists at run time, and the
        # object is built then, from the parsed class path and init args.
        options: dict[str, Any] = {
            "instantiate": False,
            "fail_untyped": False,
            "skip": {first_argument},
        }
        if isinstance(classes, tuple):
            self.add_subclass_arguments(classes, nested_key, required=False, **options)
        else:
            self.add_class_arguments(classes, nested_key, **options)


class SaveConfigCallback(Callback):
    """Write the parsed config to `<log_dir>/config.yaml` when the run starts (on rank zero).

    Args:
        overwrite: replace an existing file; by default an existing file stops the run, so
            that a second run cannot silently replace the first run's record.
        multifile: keep configs that came from separate files as separate files.
        save_to_log_dir: write the file; subclasses that only log the config (in
            `save_config`) turn this off.
    """

    def __init__(
        self,
        parser: LightningArgumentParser,
        config: Namespace,
        config_filename: str = "config.yaml",
        overwrite: bool = False,
        multifile: bool = False,
        save_to_log_dir: bool = True,
    ) -> None:
        if not save_to_log_dir and not is_overridden("save_config", self, SaveConfigCallback):
            raise ValueError(
                "SaveConfigCallback(save_to_log_dir=False) would save nothing: override "
                "`save_config` in a subclass to store the config elsewhere."
            )
        self.parser = parser
        self.config = config
        self.config_filename = config_filename
        self.overwrite = overwrite
        self.multifile = multifile
        self.save_to_log_dir = save_to_log_dir
        self.already_saved = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Save the config once per callback, refusing to replace a previous run's file."""
        if self.already_saved:
            return
        if self.save_to_log_dir:
            import fsspec

            config_path = os.path.join(trainer.log_dir, self.config_filename)
            fs, local_path = fsspec.core.url_to_fs(config_path)
            if not self.overwrite:
                # Rank zero looks, and every rank learns the answer, so that all of them stop.
                exists = bool(fs.isfile(local_path)) if trainer.is_global_zero else False
                if trainer.strategy.broadcast(exists):
                    raise RuntimeError(
                        f"SaveConfigCallback found {config_path!r} already there and stops "
                        "rather than overwrite a previous run's config. Delete the file, choose "
                        "another log directory, pass `LightningCLI(save_config_kwargs="
                        '{"overwrite": True})` to replace it, or '
                        "`LightningCLI(save_config_callback=None)` to save no config."
                    )
            if trainer.is_global_zero:
                fs.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
                self.parser.save(
                    self.config,
                    config_path,
                    overwrite=self.overwrite,
                    multifile=self.multifile,
                    **_keep_nulls(),
                )
        if trainer.is_global_zero:
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = bool(trainer.strategy.broadcast(self.already_saved))

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Store the config somewhere else too (a logger, say); runs on rank zero only."""


class LightningCLI:
    """Parse the command line (or `args`) into a Trainer, a model and a datamodule, then run.

    Subcommands are `fit`, `validate`, `test` and `predict`; `run=False` parses without a
    subcommand and only builds `cli.trainer`, `cli.model` and `cli.datamodule`.

    In a script, `LightningCLI(MyModel, MyData)` parses `sys.argv`; `args=` parses a list or a
    dict instead, and warns if the command line holds arguments too (hence the empty one below).

    Example:
        >>> from unittest import mock
        >>> from fulmen.demos.boring_classes import BoringDataModule, BoringModel
        >>> with mock.patch("sys.argv", ["train.py"]):
        ...     cli = LightningCLI(BoringModel, BoringDataModule, run=False,
        ...                        args=["--trainer.max_epochs=2", "--seed_everything=7"])
        >>> cli.trainer.max_epochs, type(cli.model).__name__, cli.config.seed_everything
        (2, 'BoringModel', 7)
    """

    def __init__(
        self,
        model_class: type[LightningModule] | Callable[..., LightningModule] | None = None,
        datamodule_class: type[LightningDataModule]
        | Callable[..., LightningDataModule]
        | None = None,
        save_config_callback: type[SaveConfigCallback] | None = SaveConfigCallback,
        save_config_kwargs: dict[str, Any] | None = None,
        trainer_class: type[Trainer] | Callable[..., Trainer] = Trainer,
        trainer_defaults: dict[str, Any] | None = None,
        seed_everything_default: bool | int = True,
        parser_kwargs: dict[str, Any] | dict[str, dict[str, Any]] | None = None,
        parser_class: type[LightningArgumentParser] = LightningArgumentParser,
        subclass_mode_model: bool = False,
        subclass_mode_data: bool = False,
        args: ArgsType = None,
        run: bool = True,
        auto_configure_optimizers: bool = True,
        load_from_checkpoint_support: bool = True,
    ) -> None:
        self.save_config_callback = save_config_callback
        self.save_config_kwargs = save_config_kwargs or {}
        self.trainer_class = trainer_class
        self.trainer_defaults = trainer_defaults or {}
        self.seed_everything_default = seed_everything_default
        self.parser_kwargs = parser_kwargs or {}
        self.parser_class = parser_class
        self.auto_configure_optimizers = auto_configure_optimizers
        self.load_from_checkpoint_support = load_from_checkpoint_support
        # Without a class, any subclass may be named on the command line.
        self.model_class = model_class
        self._model_class: Any = model_class or LightningModule
        self.subclass_mode_model = model_class is None or subclass_mode_model
        self.datamodule_class = datamodule_class
        self._datamodule_class: Any = datamodule_class or LightningDataModule
        self.subclass_mode_data = datamodule_class is None or subclass_mode_data
        self._subcommand_method_arguments: dict[str, list[str]] = {}

        main_kwargs, subparser_kwargs = self._setup_parser_kwargs(self.parser_kwargs)
        self.setup_parser(run, main_kwargs, subparser_kwargs)
        self.parse_arguments(self.parser, args)
        self._parse_ckpt_path()
        self.subcommand: str | None = self.config["subcommand"] if run else None
        self._set_seed()
        self.before_instantiate_classes()
        self.instantiate_classes()
        self.after_instantiate_classes()
        if self.subcommand is not None:
            self._run_subcommand(self.subcommand)

    # ------------------------------------------------------------------ building the parser

    def _setup_parser_kwargs(
        self, parser_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # `parser_kwargs={"fit": {...}}` configures one subcommand's parser; other keys the main one.
        names = self.subcommands()
        main = {k: v for k, v in parser_kwargs.items() if k not in names}
        sub = {k: v for k, v in parser_kwargs.items() if k in names}
        return main, sub

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Create a parser with the `--config` option."""
        kwargs.setdefault("dump_header", [f"fulmen=={fulmen.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c",
            "--config",
            action=ActionConfigFile,
            help="Path to a configuration file in json or yaml format (may be repeated).",
        )
        return parser

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        """Build `self.parser`: one sub-parser per subcommand, or one flat parser for `run=False`."""
        self.parser = self.init_parser(**main_kwargs)
        if add_subcommands:
            self._subcommand_parsers: dict[str, LightningArgumentParser] = {}
            self._add_subcommands(self.parser, **subparser_kwargs)
        else:
            self._add_arguments(self.parser)

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add `--seed_everything`."""
        parser.add_argument(
            "--seed_everything",
            type=bool | int,
            default=self.seed_everything_default,
            help=(
                "Seed Python, NumPy and torch before the classes are built: an int is the seed, "
                "true takes PL_GLOBAL_SEED (or 0) and records it here, false seeds nothing."
            ),
        )

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the `trainer`, `model` and `data` argument groups."""
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        # Callbacks from `trainer_defaults` are added to the parsed ones, never replaced by them.
        parser.set_defaults(
            {f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"}
        )
        parser.add_lightning_class_args(
            self._model_class, "model", subclass_mode=self.subclass_mode_model
        )
        parser.add_lightning_class_args(
            self._datamodule_class,
            "data",
            subclass_mode=self.subclass_mode_data,
            required=self.datamodule_class is not None,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add your own arguments or links (`parser.link_arguments`) in a subclass."""

    def _add_arguments(self, parser: LightningArgumentParser) -> None:
        self.add_default_arguments_to_parser(parser)
        self.add_core_arguments_to_parser(parser)
        self.add_arguments_to_parser(parser)
        if self.auto_configure_optimizers:
            if not parser._optimizers:
                parser.add_optimizer_args()
            if not parser._lr_schedulers:
                parser.add_lr_scheduler_args()
        self.link_optimizers_and_lr_schedulers(parser)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Map each subcommand to the Trainer-method arguments the CLI fills itself."""
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "test": {"model", "dataloaders", "datamodule"},
            "predict": {"model", "dataloaders", "datamodule"},
        }

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        subcommands = parser.add_subcommands(required=True, dest="subcommand")
        trainer_class = (
            self.trainer_class
            if isinstance(self.trainer_class, type)
            else class_from_function(self.trainer_class)
        )
        for name in self.subcommands():
            sub_parser = self._prepare_subcommand_parser(
                trainer_class, name, **kwargs.get(name, {})
            )
            self._subcommand_parsers[name] = sub_parser
            summary = (inspect.getdoc(getattr(trainer_class, name)) or "").split("\n")[0]
            subcommands.add_subcommand(name, sub_parser, help=summary)

    def _prepare_subcommand_parser(
        self, trainer_class: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        parser = self.init_parser(**kwargs)
        self._add_arguments(parser)
        added = parser.add_method_arguments(
            trainer_class, subcommand, skip=self.subcommands()[subcommand]
        )
        self._subcommand_method_arguments[subcommand] = added
        return parser

    @staticmethod
    def link_optimizers_and_lr_schedulers(parser: LightningArgumentParser) -> None:
        """Pass optimizers and schedulers whose `link_to` names a key to that key."""
        for key, (classes, link_to) in {**parser._optimizers, **parser._lr_schedulers}.items():
            if link_to == _AUTOMATIC:
                continue
            if isinstance(classes, tuple):
                parser.link_arguments(key, link_to)
            else:
                # A single class is parsed as init args only; the target wants the class path too.
                class_path = f"{classes.__module__}.{classes.__name__}"
                parser.link_arguments(key, link_to, compute_fn=_with_class_path(class_path))

    # ------------------------------------------------------------------ parsing

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse `args` (a list of strings, a dict or a Namespace), or `sys.argv` when None."""
        if args is not None and len(sys.argv) > 1:
            rank_zero_warn(
                "LightningCLI(args=...) parses the given args and ignores the command line "
                f"arguments {sys.argv[1:]!r}. Pass one or the other."
            )
        if isinstance(args, (dict, Namespace)):
            self.config: Namespace = parser.parse_object(args)
        else:
            self.config = parser.parse_args(args)

    def _parse_ckpt_path(self) -> None:
        # The model is built with the hyperparameters saved in `--ckpt_path`, so that
        # `test --ckpt_path best.ckpt` needs no repeat of the model options it was trained with.
        if not self.load_from_checkpoint_support or not self.config.get("subcommand"):
            return
        subcommand = self.config["subcommand"]
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        from fulmen.core.saving import load_checkpoint_file

        checkpoint = load_checkpoint_file(ckpt_path, map_location="cpu")
        hparams = dict(checkpoint.get(LightningModule.CHECKPOINT_HYPER_PARAMS_KEY) or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "init_args": hparams}
        try:
            self.config = self.parser.parse_object(
                {"subcommand": subcommand, subcommand: {"model": hparams}}, self.config
            )
        except SystemExit:
            sys.stderr.write(
                f"The hyperparameters saved in ckpt_path={ckpt_path!r} do not fit the model's "
                "arguments (see the error above).\n"
            )
            raise

    def _set_seed(self) -> None:
        section = self.config[self.subcommand] if self.subcommand else self.config
        seed = section.get("seed_everything")
        if seed is False or seed is None:
            return
        # `True` picks the seed (PL_GLOBAL_SEED, else 0) and records it, so the saved config
        # repeats this run exactly.
        chosen = seed_everything(None if seed is True else seed, workers=True)
        section["seed_everything"] = chosen

    # ------------------------------------------------------------------ building the objects

    def before_instantiate_classes(self) -> None:
        """Runs after parsing, before any class is built; override to change `self.config`."""

    def after_instantiate_classes(self) -> None:
        """Runs after the Trainer, model and datamodule are built."""

    def instantiate_classes(self) -> None:
        """Build the model, the datamodule and the Trainer from the parsed config."""
        self.config_init = _instantiate(self.parser, self.config)
        self.datamodule: LightningDataModule | None = self._get(self.config_init, "data")
        self.model: LightningModule = self._get(self.config_init, "model")
        self._add_configure_optimizers_method_to_model(self.subcommand)
        self.trainer = self.instantiate_trainer()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Build the Trainer from the config, `kwargs` overriding it, with the extra callbacks."""
        parser = self._parser(self.subcommand)
        extra_callbacks = [self._get(self.config_init, key) for key in parser.callback_keys]
        trainer_config = {
            **_as_top_level_dict(self._get(self.config_init, "trainer", {})),
            **kwargs,
        }
        return self._instantiate_trainer(trainer_config, extra_callbacks)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        configured = config.get("callbacks")
        if configured is None:
            configured = []
        elif not isinstance(configured, list):
            configured = [configured]
        defaults = self.trainer_defaults.get("callbacks", [])
        defaults = defaults if isinstance(defaults, list) else [defaults]
        config["callbacks"] = [*configured, *callbacks, *defaults]
        if self.save_config_callback is not None and not config.get("fast_dev_run", False):
            section = self.config[self.subcommand] if self.subcommand else self.config
            config["callbacks"].append(
                self.save_config_callback(
                    self._parser(self.subcommand), section, **self.save_config_kwargs
                )
            )
        return self.trainer_class(**config)

    def _parser(self, subcommand: str | None) -> LightningArgumentParser:
        if subcommand is None:
            return self.parser
        return self._subcommand_parsers[subcommand]

    def _get(self, config: Namespace, key: str, default: Any = None) -> Any:
        section = config[self.subcommand] if self.subcommand else config
        return section.get(key, default)

    @staticmethod
    def configure_optimizers(
        lightning_module: LightningModule,
        optimizer: Optimizer,
        lr_scheduler: LRScheduler | ReduceLROnPlateau | None = None,
    ) -> Any:
        """Return what `configure_optimizers` returns for the optimizer and scheduler options.

        Override to change it (a per-step scheduler interval, say).
        """
        if lr_scheduler is None:
            return optimizer
        if isinstance(lr_scheduler, ReduceLROnPlateau):
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": lr_scheduler, "monitor": lr_scheduler.monitor},
            }
        return [optimizer], [lr_scheduler]

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        if not self.auto_configure_optimizers:
            return
        parser = self._parser(subcommand)
        optimizer_keys = _automatic_keys(parser._optimizers)
        scheduler_keys = _automatic_keys(parser._lr_schedulers)
        if not optimizer_keys:
            return
        if len(optimizer_keys) > 1 or len(scheduler_keys) > 1:
            raise MisconfigurationException(
                f"{type(self).__name__} can put one optimizer and one scheduler into "
                f"`configure_optimizers`, but {optimizer_keys + scheduler_keys} are all "
                "'AUTOMATIC'. Give the others a `link_to` target or override "
                "`configure_optimizers` in your LightningModule."
            )
        optimizer_init = _class_config(
            parser._optimizers[optimizer_keys[0]][0], self._get(self.config_init, optimizer_keys[0])
        )
        if optimizer_init is None:
            return  # the option exists but was not used: the model's own method stays
        scheduler_init = None
        if scheduler_keys:
            scheduler_init = _class_config(
                parser._lr_schedulers[scheduler_keys[0]][0],
                self._get(self.config_init, scheduler_keys[0]),
            )
        model = self.model
        if is_overridden("configure_optimizers", model, LightningModule):
            rank_zero_warn(
                f"`{type(model).__name__}.configure_optimizers` will be overridden by "
                f"`{type(self).__name__}.configure_optimizers`."
            )
        # A partial of module-level names stays picklable (spawned processes, deep copies).
        configure = partial(
            _configure_from_options,
            optimizer_init=optimizer_init,
            scheduler_init=scheduler_init,
            build=self.configure_optimizers,
        )
        object.__setattr__(model, "configure_optimizers", MethodType(configure, model))

    # ------------------------------------------------------------------ running

    def _run_subcommand(self, subcommand: str) -> None:
        before = getattr(self, f"before_{subcommand}", None)
        if callable(before):
            before()
        method = getattr(self, subcommand, getattr(self.trainer, subcommand))
        method(**self._prepare_subcommand_kwargs(subcommand))
        after = getattr(self, f"after_{subcommand}", None)
        if callable(after):
            after()

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        wanted = self._subcommand_method_arguments[subcommand]
        kwargs = {k: v for k, v in self.config_init[subcommand].items() if k in wanted}
        kwargs["model"] = self.model
        if self.datamodule is not None:
            kwargs["datamodule"] = self.datamodule
        return kwargs


def _as_top_level_dict(section: Any) -> dict[str, Any]:
    # Only the first level becomes a dict: deeper values (a `max_time` dict) stay as parsed.
    return dict(vars(section)) if isinstance(section, Namespace) else dict(section)


def _configure_from_options(
    module: LightningModule,
    optimizer_init: dict[str, Any],
    scheduler_init: dict[str, Any] | None,
    build: Callable[..., Any],
) -> Any:
    # Built when the Trainer asks, so that the optimizer holds the parameters as they are then:
    # created in `configure_model`, moved to the device by the strategy.
    optimizer = instantiate_class(module.parameters(), optimizer_init)
    scheduler = instantiate_class(optimizer, scheduler_init) if scheduler_init else None
    return build(module, optimizer, scheduler)


def _automatic_keys(register: dict[str, tuple[type | tuple[type, ...], str]]) -> list[str]:
    return [key for key, (_, link_to) in register.items() if link_to == _AUTOMATIC]


def _class_config(classes: type | tuple[type, ...], value: Any) -> dict[str, Any] | None:
    # A tuple was parsed as class_path + init_args; a single class as its init args only.
    if not value:
        return None
    parsed = _as_dict(value)
    if isinstance(classes, tuple):
        return parsed
    return {"class_path": f"{classes.__module__}.{classes.__name__}", "init_args": parsed}


def _with_class_path(class_path: str) -> Callable[[Any], dict[str, Any]]:
    def add_class_path(init_args: Any) -> dict[str, Any]:
        parsed = _as_dict(init_args) if init_args else {}
        if "class_path" in parsed:
            return parsed
        return {"class_path": class_path, "init_args": parsed}

    return add_class_path
