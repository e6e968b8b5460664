"""LightningModule: the user's model, its steps, its optimizers and `self.log()`.

The module owns what the user writes (steps, hooks, `configure_optimizers`); the trainer owns when
those run. Everything that reads progress (`current_epoch`, `global_step`) reads the trainer.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from fulmen.core.hooks import CheckpointHooks, DataHooks, ModelHooks
from fulmen.core.optimizer import LightningOptimizer
from fulmen.core.saving import find_unstorable_hparams, unstorable_hparam_message
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.parsing import AttributeDict, collect_init_args
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.loggers.logger import Logger
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT, OptimizerLRScheduler

__all__ = ["LightningModule"]


class LightningModule(ModelHooks, DataHooks, CheckpointHooks, nn.Module):
    """A `torch.nn.Module` that also knows how to train, evaluate and predict.

    Example:
        >>> import torch
        >>> class Regressor(LightningModule):
        ...     def __init__(self, lr: float = 0.1):
        ...         super().__init__()
        ...         self.save_hyperparameters()
        ...         self.layer = torch.nn.Linear(4, 1)
        ...     def training_step(self, batch, batch_idx):
        ...         x, y = batch
        ...         return torch.nn.functional.mse_loss(self.layer(x), y)
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        >>> Regressor(lr=0.5).hparams
        "lr": 0.5
    """

    # TorchScript (`to_torchscript`) compiles every property and typed attribute it finds on a
    # module; these serve training, not the exported model.
    __jit_unused_properties__: ClassVar[list[str]] = [
        "automatic_optimization",
        "current_epoch",
        "device",
        "dtype",
        "example_input_array",
        "fabric",
        "global_rank",
        "global_step",
        "hparams",
        "hparams_initial",
        "local_rank",
        "logger",
        "loggers",
        "on_gpu",
        "strict_loading",
        "trainer",
    ]
    __jit_ignored_attributes__: ClassVar[list[str]] = [
        "_automatic_optimization",
        "_example_input_array",
        "_fallback_device",
        "_fallback_dtype",
        "_hparams",
        "_hparams_initial",
        "_hparams_unstorable",
        "_log_hyperparams",
        "_param_requires_grad_state",
        "_strict_loading",
        "_trainer",
    ]

    # Plain attributes, set with object.__setattr__ in __init__ (declared for the type checker).
    _trainer: Trainer | None
    _automatic_optimization: bool
    _example_input_array: Any
    _hparams: AttributeDict
    _hparams_initial: AttributeDict
    _hparams_unstorable: set[str]  # names checkpoints leave out (see `save_hyperparameters`)
    _log_hyperparams: bool
    _strict_loading: bool | None
    _fallback_device: torch.device
    _fallback_dtype: torch.dtype
    _param_requires_grad_state: dict[int, bool]

    CHECKPOINT_HYPER_PARAMS_KEY = "hyper_parameters"
    CHECKPOINT_HYPER_PARAMS_NAME = "hparams_name"
    CHECKPOINT_HYPER_PARAMS_TYPE = "hparams_type"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # object.__setattr__ skips nn.Module's bookkeeping: these are plain attributes, and the
        # trainer writes some of them often.
        object.__setattr__(self, "_trainer", None)
        object.__setattr__(self, "_automatic_optimization", True)
        object.__setattr__(self, "_example_input_array", None)
        object.__setattr__(self, "_hparams", AttributeDict())
        object.__setattr__(self, "_hparams_initial", AttributeDict())
        object.__setattr__(self, "_hparams_unstorable", set())
        object.__setattr__(self, "_log_hyperparams", True)
        object.__setattr__(self, "_strict_loading", None)
        object.__setattr__(self, "_fallback_device", torch.device("cpu"))
        object.__setattr__(self, "_fallback_dtype", torch.get_default_dtype())

    def __getstate__(self) -> dict[str, Any]:
        # Copies and pickles of a module leave its trainer behind (it holds loaders, loggers...).
        state = dict(self.__dict__)
        state["_trainer"] = None
        return state

    # ------------------------------------------------------------------ steps the user writes

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the model; `predict_step` calls it by default."""
        return super().forward(*args, **kwargs)

    def training_step(self, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Compute and return the training loss (a tensor, or a dict with a "loss" key)."""
        raise MisconfigurationException(
            f"{type(self).__name__} defines no `training_step()`. `Trainer.fit` needs "
            "`training_step()`, `configure_optimizers()` and a train dataloader."
        )

    def validation_step(self, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Evaluate one validation batch; log metrics with `self.log`."""
        raise MisconfigurationException(
            f"{type(self).__name__} defines no `validation_step()`, which validation needs."
        )

    def test_step(self, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Evaluate one test batch; log metrics with `self.log`."""
        raise MisconfigurationException(
            f"{type(self).__name__} defines no `test_step()`. `Trainer.test` needs `test_step()`."
        )

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        """Return the prediction for one batch; calls `self(batch)` by default."""
        batch = kwargs.get("batch", args[0])
        return self(batch)

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """Return the optimizer(s), optionally with learning-rate schedulers."""
        raise MisconfigurationException(
            f"{type(self).__name__} defines no `configure_optimizers()`. `Trainer.fit` needs "
            "`training_step()`, `configure_optimizers()` and a train dataloader."
        )

    def configure_callbacks(self) -> Any:
        """Return callbacks to add to the trainer's; they replace trainer callbacks of the same type."""
        return []

    # ------------------------------------------------------------------ optimization hooks

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Compute gradients of `loss`."""
        loss.backward(*args, **kwargs)  # type: ignore[no-untyped-call]

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: Optimizer | LightningOptimizer,
        optimizer_closure: Any = None,
    ) -> None:
        """Step the optimizer; the closure runs training_step, zero_grad and backward."""
        optimizer.step(closure=optimizer_closure)

    def optimizer_zero_grad(
        self, epoch: int, batch_idx: int, optimizer: Optimizer | LightningOptimizer
    ) -> None:
        """Reset the gradients before backward."""
        optimizer.zero_grad()

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Step a scheduler; override for schedulers that do not follow torch's API."""
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric)

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip gradients before the optimizer step; by default with the Trainer's settings."""
        self.clip_gradients(
            optimizer,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
        )

    def clip_gradients(
        self,
        optimizer: Optimizer | LightningOptimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the gradients of `optimizer`'s parameters by norm (default) or by value."""
        if gradient_clip_val is None or gradient_clip_val == 0:
            return
        algorithm = gradient_clip_algorithm or "norm"
        if algorithm not in ("norm", "value"):
            raise MisconfigurationException(
                f"clip_gradients(gradient_clip_algorithm={algorithm!r}) is invalid: "
                "expected 'norm' or 'value'."
            )
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self._trainer is not None:
            raw = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
            self._trainer.precision_plugin.unscale_gradients(raw)
        if algorithm == "value":
            # A bound beyond a dtype's largest number clips nothing, and torch refuses to
            # convert it to that dtype: leave those gradients alone.
            by_dtype: dict[torch.dtype, list[Tensor]] = {}
            for param in params:
                if param.grad is not None:
                    by_dtype.setdefault(param.grad.dtype, []).append(param)
            for dtype, group in by_dtype.items():
                if gradient_clip_val < torch.finfo(dtype).max:
                    torch.nn.utils.clip_grad_value_(group, clip_value=gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, max_norm=gradient_clip_val)

    # ------------------------------------------------------------------ manual optimization

    def optimizers(
        self, use_pl_optimizer: bool = True
    ) -> LightningOptimizer | list[LightningOptimizer] | Optimizer | list[Optimizer]:
        """Return the optimizer, or the list of them when there are several."""
        if use_pl_optimizer:
            opts: list[Any] = list(self.trainer.strategy._lightning_optimizers)
        else:
            opts = list(self.trainer.optimizers)
        return opts[0] if len(opts) == 1 else opts

    def lr_schedulers(self) -> Any:
        """Return the scheduler, the list of them, or None."""
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        if not schedulers:
            return None
        return schedulers[0] if len(schedulers) == 1 else schedulers

    def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Call backward in manual optimization, running the backward hooks and precision."""
        trainer = self.trainer
        if self.automatic_optimization:
            raise MisconfigurationException(
                "`manual_backward` is for manual optimization; set `self.automatic_optimization "
                "= False` in `__init__` or let the Trainer call backward."
            )
        trainer._run_backward(loss, *args, **kwargs)

    def toggle_optimizer(self, optimizer: Optimizer | LightningOptimizer) -> None:
        """Freeze every parameter that `optimizer` does not own, remembering their state."""
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        saved: dict[int, bool] = {}
        for param in self.parameters():
            saved[id(param)] = param.requires_grad
            if id(param) not in owned:
                param.requires_grad = False
        object.__setattr__(self, "_param_requires_grad_state", saved)

    def untoggle_optimizer(self, optimizer: Optimizer | LightningOptimizer) -> None:
        """Undo `toggle_optimizer`."""
        saved: dict[int, bool] = getattr(self, "_param_requires_grad_state", {})
        for param in self.parameters():
            if id(param) in saved:
                param.requires_grad = saved[id(param)]
        object.__setattr__(self, "_param_requires_grad_state", {})

    @contextmanager
    def toggled_optimizer(self, optimizer: Optimizer | LightningOptimizer) -> Generator[None]:
        """Run a block with only `optimizer`'s parameters requiring gradients."""
        self.toggle_optimizer(optimizer)
        try:
            yield
        finally:
            self.untoggle_optimizer(optimizer)

    # ------------------------------------------------------------------ logging

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any | None = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Record a scalar for the progress bar, the loggers and callbacks such as EarlyStopping.

        Inside `training_step` values are logged per step by default; in validation and test
        steps and in epoch-end hooks they are averaged over the epoch (weighted by batch size).
        """
        trainer = self._trainer
        if trainer is None:
            rank_zero_warn(
                "`self.log()` was called on a module that is not attached to a Trainer; the "
                "value is dropped. Call it from a hook or step that the Trainer runs."
            )
            return
        trainer._results.log(
            self,
            name,
            value,
            prog_bar=prog_bar,
            logger=logger,
            on_step=on_step,
            on_epoch=on_epoch,
            reduce_fx=reduce_fx,
            enable_graph=enable_graph,
            sync_dist=sync_dist,
            sync_dist_group=sync_dist_group,
            add_dataloader_idx=add_dataloader_idx,
            batch_size=batch_size,
            metric_attribute=metric_attribute,
            rank_zero_only=rank_zero_only,
        )

    def log_dict(
        self,
        dictionary: Mapping[str, Any],
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any | None = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Log every entry of `dictionary` (or a torchmetrics `MetricCollection`) with `log`."""
        items = dictionary.items()
        if hasattr(dictionary, "compute") and hasattr(dictionary, "keys"):  # MetricCollection
            items = dictionary.items(keep_base=False, copy_state=False)  # type: ignore[call-arg]
        for name, value in items:
            self.log(
                name,
                value,
                prog_bar=prog_bar,
                logger=logger,
                on_step=on_step,
                on_epoch=on_epoch,
                reduce_fx=reduce_fx,
                enable_graph=enable_graph,
                sync_dist=sync_dist,
                sync_dist_group=sync_dist_group,
                add_dataloader_idx=add_dataloader_idx,
                batch_size=batch_size,
                rank_zero_only=rank_zero_only,
            )

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print on global rank zero only."""
        trainer = self._trainer
        if trainer is None:
            print(*args, **kwargs)
        elif trainer.is_global_zero:
            bar = trainer.progress_bar_callback
            # Through the bar, so the text does not land on the bar's line.
            if bar is not None and bar.is_enabled:
                bar.print(*args, **kwargs)
            else:
                print(*args, **kwargs)

    def all_gather(self, data: Any, group: Any | None = None, sync_grads: bool = False) -> Any:
        """Gather tensors from every process; each gains a leading world-size dimension."""
        if self._trainer is None:
            return data
        return self._trainer.strategy.all_gather(data, group=group, sync_grads=sync_grads)

    # ------------------------------------------------------------------ hyperparameters

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: str | list[str] | tuple[str, ...] | None = None,
        frame: Any | None = None,
        logger: bool = True,
    ) -> None:
        """Store `__init__` arguments in `self.hparams`; they are saved in checkpoints.

        Pass names to keep only those, a dict or `argparse.Namespace` to store it, and `ignore`
        to leave some out (for example modules, which are saved with the weights anyway).
        """
        _save_hyperparameters(self, args, ignore, frame or inspect.currentframe().f_back, logger)  # type: ignore[union-attr]

    @property
    def hparams(self) -> AttributeDict:
        """The hyperparameters stored by `save_hyperparameters`."""
        return self._hparams  # type: ignore[no-any-return]

    @property
    def hparams_initial(self) -> AttributeDict:
        """A copy of the hyperparameters as first stored, unaffected by later edits."""
        return copy.deepcopy(self._hparams_initial)

    # ------------------------------------------------------------------ trainer-derived state

    @property
    def trainer(self) -> Trainer:
        """The Trainer this module is attached to."""
        trainer = self._trainer
        # While `to_torchscript` runs, TorchScript reads every attribute, this one included.
        if trainer is None and not self.__dict__.get("_jit_is_scripting", False):
            raise RuntimeError(f"{type(self).__qualname__} is not attached to a `Trainer`.")
        return trainer  # type: ignore[return-value]  # None only while scripting

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        for module in self.modules():
            if isinstance(module, LightningModule):
                object.__setattr__(module, "_trainer", trainer)

    @property
    def fabric(self) -> None:
        """Always None: fulmen has no Fabric."""
        return None

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch if self._trainer is not None else 0

    @property
    def global_step(self) -> int:
        return self._trainer.global_step if self._trainer is not None else 0

    @property
    def global_rank(self) -> int:
        return self._trainer.global_rank if self._trainer is not None else 0

    @property
    def local_rank(self) -> int:
        return self._trainer.local_rank if self._trainer is not None else 0

    @property
    def logger(self) -> Logger | None:
        return self._trainer.logger if self._trainer is not None else None

    @property
    def loggers(self) -> list[Logger]:
        return self._trainer.loggers if self._trainer is not None else []

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def device(self) -> torch.device:
        """The device of the module's first parameter or buffer."""
        for tensor in self.parameters():
            return tensor.device
        for buffer in self.buffers():
            return buffer.device
        return self._fallback_device  # type: ignore[no-any-return]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the module's first floating-point parameter."""
        for tensor in self.parameters():
            if tensor.is_floating_point():
                return tensor.dtype
        return self._fallback_dtype  # type: ignore[no-any-return]

    @dtype.setter
    def dtype(self, value: torch.dtype) -> None:
        object.__setattr__(self, "_fallback_dtype", value)

    @property
    def automatic_optimization(self) -> bool:
        """Whether the Trainer runs zero_grad/backward/step; set False for manual optimization."""
        return self._automatic_optimization  # type: ignore[no-any-return]

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        object.__setattr__(self, "_automatic_optimization", value)

    @property
    def example_input_array(self) -> Any:
        """An example input, used by the model summary, `to_onnx` and graph logging."""
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, example: Any) -> None:
        object.__setattr__(self, "_example_input_array", example)

    @property
    def strict_loading(self) -> bool:
        """Whether `load_state_dict` requires every key to match (True unless set)."""
        return True if self._strict_loading is None else bool(self._strict_loading)

    @strict_loading.setter
    def strict_loading(self, value: bool) -> None:
        object.__setattr__(self, "_strict_loading", value)

    # ------------------------------------------------------------------ utilities

    def freeze(self) -> LightningModule:
        """Stop gradients for every parameter and switch to eval mode."""
        for param in self.parameters():
            param.requires_grad = False
        self.eval()
        return self

    def unfreeze(self) -> LightningModule:
        """Let every parameter require gradients again and switch to train mode."""
        for param in self.parameters():
            param.requires_grad = True
        self.train()
        return self

    @torch.no_grad()
    def to_torchscript(
        self,
        file_path: str | Path | None = None,
        method: Literal["script", "trace"] = "script",
        example_inputs: Any | None = None,
        **kwargs: Any,
    ) -> Any:
        """Compile the model in eval mode with TorchScript; save it to `file_path` if given.

        `method="trace"` runs `example_inputs` (default: `example_input_array`) through
        `forward`; other keyword arguments go to `torch.jit.script` or `torch.jit.trace`.
        Torch 2.9+ deprecates TorchScript in favour of `torch.export` (and `to_onnx`).

        Example:
            >>> import warnings
            >>> from fulmen.demos.boring_classes import BoringModel
            >>> model, x = BoringModel(), torch.ones(1, 32)
            >>> with warnings.catch_warnings():
            ...     warnings.simplefilter("ignore", DeprecationWarning)  # torch's, see above
            ...     traced = model.to_torchscript(method="trace", example_inputs=x)
            >>> bool(torch.allclose(traced(x), model(x)))
            True
        """
        if method not in ("script", "trace"):
            raise ValueError(
                f"to_torchscript(method={method!r}) is invalid: expected 'script' or 'trace'."
            )
        inputs = self.example_input_array if example_inputs is None else example_inputs
        if method == "trace" and inputs is None:
            raise ValueError(
                "to_torchscript(method='trace') needs `example_inputs` or "
                "`self.example_input_array` to run `forward` on."
            )
        mode = self.training
        lightning_modules = [m for m in self.modules() if isinstance(m, LightningModule)]
        # TorchScript reads every attribute; while it does, `trainer` must not raise unattached.
        for module in lightning_modules:
            object.__setattr__(module, "_jit_is_scripting", True)
        try:
            self.eval()
            if method == "script":
                exported = torch.jit.script(self, **kwargs)
            else:
                inputs = self.on_before_batch_transfer(inputs, 0)
                inputs = self.transfer_batch_to_device(inputs, self.device, 0)
                inputs = self.on_after_batch_transfer(inputs, 0)
                inputs = inputs if isinstance(inputs, tuple) else (inputs,)
                exported = torch.jit.trace(func=self, example_inputs=inputs, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            for module in lightning_modules:
                module.__dict__.pop("_jit_is_scripting", None)
            self.train(mode)
        if file_path is not None:
            import fsspec

            with fsspec.open(str(file_path), "wb") as stream:
                torch.jit.save(exported, stream)
        return exported

    @torch.no_grad()
    def to_onnx(
        self,
        file_path: str | Path | IO[bytes] | None = None,
        input_sample: Any | None = None,
        check_outputs: bool = True,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        **kwargs: Any,
    ) -> Any:
        """Export the model in eval mode to ONNX, then check the export against the model.

        `input_sample` (default: `example_input_array`) is what the exporter runs through
        `forward`; other keyword arguments go to `torch.onnx.export`, whose default (dynamo)
        exporter returns an `ONNXProgram`. When onnxruntime is installed and `check_outputs` is
        True, the exported graph runs on the sample and its outputs must match the model's within
        `rtol` and `atol`, or a RuntimeError says which output differs and by how much.

        Example:
            >>> from fulmen.demos.boring_classes import BoringModel
            >>> program = BoringModel().to_onnx(input_sample=torch.ones(1, 32), verbose=False)
            >>> type(program).__name__
            'ONNXProgram'
        """
        import importlib.util
        import warnings

        needed = ["onnx"] if kwargs.get("dynamo") is False else ["onnx", "onnxscript"]
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            raise ModuleNotFoundError(
                f"`{type(self).__name__}.to_onnx()` needs {missing}; install them with "
                "`pip install 'fulmen[onnx]'`."
            )
        sample = self.example_input_array if input_sample is None else input_sample
        if sample is None:
            raise ValueError(
                "to_onnx() needs `input_sample` or `self.example_input_array` to run `forward` on."
            )
        mode = self.training
        self.eval()
        try:
            sample = self.on_before_batch_transfer(sample, 0)
            sample = self.transfer_batch_to_device(sample, self.device, 0)
            sample = self.on_after_batch_transfer(sample, 0)
            args = sample if isinstance(sample, tuple) else (sample,)
            target = str(file_path) if isinstance(file_path, Path) else file_path
            with warnings.catch_warnings():
                # torch.export's own pytree code trips this deprecation; nothing a user can act on.
                warnings.filterwarnings(
                    "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
                )
                exported = torch.onnx.export(self, args, target, **kwargs)  # type: ignore[arg-type]
            if check_outputs and importlib.util.find_spec("onnxruntime") is not None:
                import onnxruntime  # type: ignore[import-untyped]

                def tensors(tree: Any) -> list[Tensor]:
                    if isinstance(tree, Tensor):
                        return [tree]
                    items = tree.values() if isinstance(tree, Mapping) else tree
                    if isinstance(tree, (Mapping, list, tuple)):
                        return [leaf for item in items for leaf in tensors(item)]
                    return []

                # Read back what was written when there is a file; else the program in memory.
                if isinstance(file_path, (str, Path)):
                    model: Any = str(file_path)
                elif exported is not None:
                    model = exported.model_proto.SerializeToString()
                else:
                    model = getattr(file_path, "getvalue", lambda: None)()
                keyword_inputs = kwargs.get("kwargs") or {}
                inputs = tensors(args) + tensors(keyword_inputs)
                if model is None:
                    rank_zero_warn(
                        f"to_onnx() cannot read the export back from {file_path!r} to check it. "
                        "Export to a path, or pass check_outputs=False."
                    )
                    return exported
                session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
                names = [i.name for i in session.get_inputs()]
                if len(names) != len(inputs):
                    rank_zero_warn(
                        f"to_onnx() cannot check the export: the graph takes {len(names)} inputs "
                        f"and the sample holds {len(inputs)} tensors. Pass check_outputs=False "
                        "to skip the check."
                    )
                    return exported
                feeds = {name: t.detach().cpu().numpy() for name, t in zip(names, inputs)}
                actual = [torch.from_numpy(out) for out in session.run(None, feeds)]
                expected = [t.detach().cpu() for t in tensors(self(*args, **keyword_inputs))]
                if len(actual) != len(expected):
                    raise RuntimeError(
                        f"to_onnx(): the exported graph returns {len(actual)} tensors, the model "
                        f"{len(expected)}. Pass check_outputs=False to export without this check."
                    )
                for index, (got, want) in enumerate(zip(actual, expected)):
                    same_shape = got.shape == want.shape
                    if same_shape and torch.allclose(
                        got.double(), want.double(), rtol=rtol, atol=atol, equal_nan=True
                    ):
                        continue
                    difference = (
                        f"differs by up to {(got.double() - want.double()).abs().max().item():.3g}"
                        if same_shape
                        else f"has shape {tuple(got.shape)} instead of {tuple(want.shape)}"
                    )
                    raise RuntimeError(
                        f"to_onnx(): output {index} of the exported graph {difference} from the "
                        f"model's (rtol={rtol!r}, atol={atol!r}). The export does not compute what "
                        "`forward` does; loosen `rtol`/`atol`, or pass check_outputs=False."
                    )
        finally:
            self.train(mode)
        return exported

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO[bytes],
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Build the module from a checkpoint: its hyperparameters (overridden by kwargs), then weights.

        Example:
            >>> import torch, tempfile, os
            >>> from fulmen.demos.boring_classes import BoringModel
            >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
            >>> torch.save({"state_dict": BoringModel().state_dict()}, path)
            >>> type(BoringModel.load_from_checkpoint(path)).__name__
            'BoringModel'
        """
        from fulmen.core.saving import load_from_checkpoint

        return load_from_checkpoint(
            cls,
            checkpoint_path,
            map_location=map_location,
            hparams_file=hparams_file,
            strict=strict,
            weights_only=weights_only,
            **kwargs,
        )


def _save_hyperparameters(
    obj: Any, args: tuple[Any, ...], ignore: Any, frame: Any, logger: bool
) -> None:
    """Fill `obj._hparams` from names, a dict/Namespace, or the `__init__` frame's arguments."""
    object.__setattr__(obj, "_log_hyperparams", logger)
    ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
    if len(args) == 1 and not isinstance(args[0], str):
        value = args[0]
        params = (
            dict(vars(value))
            if hasattr(value, "__dict__") and not isinstance(value, Mapping)
            else dict(value)
        )
    else:
        # Every __init__ of the chain counts (a subclass passing arguments up); subclasses win.
        init_args: dict[str, Any] = {}
        for chain_args in collect_init_args(frame, []):
            init_args.update(chain_args)
        if args:
            missing = [name for name in args if name not in init_args]
            if missing:
                raise ValueError(
                    f"save_hyperparameters{args!r}: {missing} are not arguments of "
                    f"{type(obj).__name__}.__init__ (which has {sorted(init_args)})."
                )
            params = {name: init_args[name] for name in args}
        else:
            params = init_args
    params = {k: v for k, v in params.items() if k not in ignored}
    # Checkpoints must load with `weights_only=True`: what it cannot read stays out of them
    # (`Trainer.save_checkpoint` drops it), said here, where the user can still fix it.
    unstorable = find_unstorable_hparams(params)
    for key in unstorable:
        rank_zero_warn(unstorable_hparam_message(obj, key, params[key]))
    object.__setattr__(obj, "_hparams_unstorable", set(unstorable))
    hparams = AttributeDict(params)
    object.__setattr__(obj, "_hparams", hparams)
    object.__setattr__(
        obj, "_hparams_initial", AttributeDict({k: _initial_copy(v) for k, v in hparams.items()})
    )


def _initial_copy(value: Any) -> Any:
    # Modules and tensors are kept by reference: deep-copying a large model can take minutes.
    # Whatever cannot be copied (an open file, a lock) is kept by reference too.
    if isinstance(value, (nn.Module, Tensor)):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:
        return value
