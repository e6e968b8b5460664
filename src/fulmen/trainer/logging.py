"""`self.log()` values: store them, reduce them over the epoch, hand them to the loggers.

Values stay tensors on their device while training runs. They are turned into Python numbers only
where they must be read: when the loggers are written (every `log_every_n_steps`), when the
progress bar refreshes (`progress_bar_metrics`) and at epoch end.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["Results"]

# hook -> (default on_step, default on_epoch, whether on_step=True is allowed)
_STEP_HOOKS = (
    "training_step",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "optimizer_step",
    "configure_gradient_clipping",
    "clip_gradients",
    "on_before_zero_grad",
    "optimizer_zero_grad",
)
_EVAL_STEP_HOOKS = (
    "validation_step",
    "test_step",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
)
_EPOCH_HOOKS = (
    "on_train_start",
    "on_validation_start",
    "on_test_start",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    # Lightning 1.x epoch-end hooks that fulmen still calls.
    "training_epoch_end",
    "validation_epoch_end",
    "test_epoch_end",
)
_FX_RULES: dict[str, tuple[bool, bool, bool]] = {
    **{fx: (True, False, True) for fx in _STEP_HOOKS},
    **{fx: (False, True, True) for fx in _EVAL_STEP_HOOKS},
    **{fx: (False, True, False) for fx in _EPOCH_HOOKS},
}
_REDUCE_NAMES = {"mean": "mean", "avg": "mean", "sum": "sum", "max": "max", "min": "min"}
_REDUCE_FNS = {torch.mean: "mean", torch.sum: "sum", torch.max: "max", torch.min: "min"}


class _Metric:
    """One logged key: its options, its last value and its running epoch aggregate."""

    __slots__ = (
        "name",
        "key",
        "fx",
        "options",
        "on_step",
        "on_epoch",
        "prog_bar",
        "logger",
        "reduce",
        "sync_dist",
        "group",
        "dataloader_idx",
        "value",
        "total",
        "weight",
        "values",
        "torchmetric",
        "stamp",
        "version",
        "synced",
        "synced_version",
        "step_name",
        "epoch_name",
        "signature",
    )

    def __init__(self, name: str, key: str, fx: str, options: tuple[Any, ...]) -> None:
        self.name = name
        self.key = key
        self.fx = fx
        self.options = options
        (
            self.on_step,
            self.on_epoch,
            self.prog_bar,
            self.logger,
            self.reduce,
            self.sync_dist,
            self.group,
            self.dataloader_idx,
        ) = options
        self.value: Tensor | None = None
        self.total: Tensor | None = None
        self.weight = 0
        self.values: list[Tensor] = []
        self.torchmetric: Any = None
        self.stamp = -1  # the batch in which it was last logged
        self.version = 0  # counts updates, so a value synchronized across ranks is reused
        self.synced: Tensor | None = None
        self.synced_version = -1
        self.signature: tuple[Any, ...] = ()
        # Fixed with the options; read on every publish, so computed once.
        self.step_name = f"{key}_step" if self.forked else key
        self.epoch_name = f"{key}_epoch" if self.forked else key

    @property
    def forked(self) -> bool:
        return bool(self.on_step and self.on_epoch)

    def update(self, value: Tensor, batch_size: int) -> None:
        self.value = value
        if not self.on_epoch or self.torchmetric is not None:
            return
        self.version += 1
        value = value.detach()
        reduce = self.reduce
        if reduce == "mean":
            weighted = value * batch_size
            self.total = weighted if self.total is None else self.total + weighted
            self.weight += batch_size
        elif reduce == "sum":
            self.total = value if self.total is None else self.total + value
        elif reduce == "max":
            self.total = value if self.total is None else torch.maximum(self.total, value)
        elif reduce == "min":
            self.total = value if self.total is None else torch.minimum(self.total, value)
        else:
            self.values.append(value)

    def compute(self) -> Tensor:
        if self.torchmetric is not None:
            return torch.as_tensor(self.torchmetric.compute()).detach()
        if self.reduce == "mean":
            assert self.total is not None
            return self.total / self.weight
        if self.total is not None:
            return self.total
        fn: Callable[[Tensor], Tensor] = self.reduce
        return fn(torch.stack(self.values))

    def compute_global(self, strategy: Any) -> Tensor:
        """The epoch value over all ranks: exact weighted mean, sum, max or min of every sample.

        Lightning averages the per-rank means, which is off when ranks saw different numbers of
        samples; here the totals and weights are summed instead.
        """
        if self.synced is not None and self.synced_version == self.version:
            return self.synced
        reduce = self.reduce
        if reduce == "mean":
            total = self.total if self.total is not None else torch.zeros(())
            both = torch.stack([total.float(), torch.tensor(float(self.weight))])
            both = strategy.reduce(both, group=self.group, reduce_op="sum")
            value = both[0] / both[1]
        elif reduce in ("sum", "max", "min"):
            # A rank that counted no sample (all its batches were padding) adds nothing.
            empty = {"sum": 0.0, "max": float("-inf"), "min": float("inf")}[reduce]
            total = self.total if self.total is not None else torch.tensor(empty)
            value = strategy.reduce(total, group=self.group, reduce_op=reduce)
        else:
            value = strategy.reduce(self.compute(), group=self.group, reduce_op="mean")
        self.synced, self.synced_version = value, self.version
        return value  # type: ignore[no-any-return]


class Results:
    """Everything `self.log` recorded, and the three views the trainer exposes of it."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.current_fx: str | None = None
        self.batch: Any = None  # the current batch, for batch-size inference
        self._batch_size: int | None = None
        self.dataloader_idx: int | None = None  # set while an eval loop has several loaders
        self.stamp = 0  # incremented per batch so a step value is counted once per batch
        # Set by the evaluation loop for a batch made only of DistributedSampler padding.
        self.ignore_batch = False
        self._store: dict[str, _Metric] = {}
        self._by_signature: dict[str, _Metric] = {}
        self._step_metrics: list[_Metric] = []
        self._unpublished = False  # a step value was logged since the last publish_step
        self._epoch_end = False
        self.callback: dict[str, Tensor] = {}
        self.logged: dict[str, Tensor] = {}
        self._progress: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ recording

    def log(self, module: Any, name: str, value: Any, **kw: Any) -> None:
        fx = self.current_fx
        # The same call as last time for this name (the common case, once per step): its
        # options were checked then, so reuse them.
        signature = (
            fx,
            self.dataloader_idx,
            kw["on_step"],
            kw["on_epoch"],
            kw["prog_bar"],
            kw["logger"],
            kw["reduce_fx"],
            kw["sync_dist"],
            kw["sync_dist_group"],
            kw["add_dataloader_idx"],
        )
        metric = self._by_signature.get(name)
        if (
            metric is None
            or metric.signature != signature
            or self._store.get(metric.key) is not metric
        ):
            metric = self._resolve(name, value, kw, signature)
            if metric is None:
                return
        tensor = self._to_tensor(name, value, kw["enable_graph"], metric)
        given = kw["batch_size"]
        if given is not None:
            _check_batch_size(name, given)
        if metric.on_epoch and metric.reduce == "mean":
            batch_size = given or self._infer_batch_size(name)
        else:
            batch_size = 1
        if metric.sync_dist and self.trainer.strategy.world_size > 1:
            self._update_synced(metric, tensor, batch_size, metric.fx)
        elif not self.ignore_batch:
            metric.update(tensor, batch_size)
        if metric.on_step:
            self._unpublished = True
            if metric.stamp != self.stamp:
                metric.stamp = self.stamp
                self._step_metrics.append(metric)

    def _resolve(
        self, name: str, value: Any, kw: dict[str, Any], signature: tuple[Any, ...]
    ) -> _Metric | None:
        fx = self.current_fx
        rules = _FX_RULES.get(fx) if fx is not None else None
        if rules is None or fx is None:
            raise MisconfigurationException(
                f"You can't `self.log({name!r}, ...)` inside `{fx}`. Log from a step, a batch "
                "hook or an epoch hook of training, validation or test."
            )
        if self.trainer.barebones:
            rank_zero_warn(
                "`self.log` does nothing with `Trainer(barebones=True)`; drop `barebones=True` "
                "to record metrics."
            )
            return None
        on_step = rules[0] if kw["on_step"] is None else kw["on_step"]
        on_epoch = rules[1] if kw["on_epoch"] is None else kw["on_epoch"]
        if on_step and not rules[2]:
            raise MisconfigurationException(
                f"You can't `self.log({name!r}, ..., on_step=True)` inside `{fx}`: it runs once "
                "per epoch, so only `on_epoch=True` is allowed."
            )
        if not on_step and not on_epoch:
            raise MisconfigurationException(
                f"self.log({name!r}, on_step=False, on_epoch=False) records nothing: set one True."
            )
        key = name
        idx = self.dataloader_idx
        if "/dataloader_idx_" in name:
            raise MisconfigurationException(
                f"self.log({name!r}): the '/dataloader_idx_' suffix is added by fulmen; log the "
                "name without it."
            )
        if idx is not None and kw["add_dataloader_idx"]:
            key = f"{name}/dataloader_idx_{idx}"
        logger = True if kw["logger"] is None else kw["logger"]
        options = (
            on_step,
            on_epoch,
            kw["prog_bar"],
            logger,
            _reduce_name(kw["reduce_fx"], name),
            kw["sync_dist"],
            kw["sync_dist_group"],
            idx,
        )
        metric = self._store.get(key)
        if metric is None or metric.fx != fx or metric.options != options:
            metric = self._add(metric, name, key, fx, options, value)
        metric.signature = signature
        self._by_signature[name] = metric
        return metric

    def _update_synced(self, metric: _Metric, tensor: Tensor, batch_size: int, fx: str) -> None:
        # The epoch aggregate keeps this rank's own values (reduced exactly at epoch end); the
        # step value is reduced now, in the same order on every rank, as Lightning does.
        if not self.ignore_batch:
            metric.update(tensor, batch_size)
        else:
            metric.version += 1  # versions must agree across ranks: they decide who syncs
        if metric.on_step:
            strategy = self.trainer.strategy
            strategy.check_same_keys((metric.key,), fx)
            metric.value = strategy.reduce(
                tensor.detach(), group=metric.group, reduce_op=_sync_op(metric.reduce)
            )
        elif metric.value is None:
            metric.value = tensor

    def _add(
        self,
        old: _Metric | None,
        name: str,
        key: str,
        fx: str,
        options: tuple[Any, ...],
        value: Any,
    ) -> _Metric:
        if old is not None and old.fx == fx and old.options != options:
            raise MisconfigurationException(
                f"You called `self.log({name!r}, ...)` in `{fx}` with different arguments than "
                f"before ({_describe(old.options)} then {_describe(options)}). Keep the options of "
                "a name the same, or log under another name."
            )
        if old is not None and old.fx != fx and old.stamp == self.stamp:
            raise MisconfigurationException(
                f"You called `self.log({name!r}, ...)` in `{old.fx}` and again in `{fx}` for the "
                "same batch. Log each name from one hook, or use different names."
            )
        metric = _Metric(name, key, fx, options)
        sync_dist, group = options[5], options[6]
        if group is not None and not sync_dist:
            raise MisconfigurationException(
                f"self.log({name!r}, ..., sync_dist_group=...) needs `sync_dist=True`: the group "
                "only says which processes to reduce over."
            )
        if _is_torchmetric(value):
            if sync_dist:
                rank_zero_warn(
                    f"self.log({name!r}, metric, sync_dist=True): a torchmetrics Metric reduces "
                    "its own state across processes in `compute()`; drop `sync_dist=True`."
                )
            metric.torchmetric = value
        elif isinstance(value, dict):
            raise MisconfigurationException(
                f"self.log({name!r}, <dict>) is not allowed: log scalars one by one, or use "
                "`self.log_dict(...)`."
            )
        self._store[key] = metric
        return metric

    def _to_tensor(self, name: str, value: Any, enable_graph: bool, metric: _Metric) -> Tensor:
        if metric.torchmetric is not None:
            cache = getattr(value, "_forward_cache", None)
            if metric.on_step and cache is None:
                raise MisconfigurationException(
                    f"self.log({name!r}, metric, on_step=True) needs the metric to be called "
                    "(`metric(preds, target)`) in this step, not only updated."
                )
            return torch.as_tensor(cache if cache is not None else 0.0).detach()
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise MisconfigurationException(
                    f"self.log({name!r}, value) needs a scalar, got a tensor of shape "
                    f"{tuple(value.shape)}. Reduce it first (e.g. `value.mean()`)."
                )
            tensor = value if enable_graph else value.detach()
            if tensor.dim():
                tensor = tensor.squeeze()
            return tensor if tensor.is_floating_point() else tensor.float()
        if isinstance(value, (bool, int, float)):
            return torch.tensor(float(value))
        raise MisconfigurationException(
            f"self.log({name!r}, {value!r}) is not supported: log a number, a scalar tensor or a "
            "torchmetrics Metric."
        )

    def _infer_batch_size(self, name: str) -> int:
        if self._batch_size is None:
            if self.batch is None:
                self._batch_size = 1
            else:
                from fulmen.utilities.data import extract_batch_size

                try:
                    self._batch_size = extract_batch_size(self.batch)
                except (MisconfigurationException, RecursionError):
                    raise MisconfigurationException(
                        f"self.log({name!r}, ...) averages over the epoch weighted by batch "
                        "size, but the batch size could not be read from the batch. Pass "
                        f"`self.log({name!r}, value, batch_size=N)`."
                    ) from None
        return self._batch_size

    # ------------------------------------------------------------------ loop events

    def new_batch(self, batch: Any) -> None:
        self.batch = batch
        self._batch_size = None
        self.stamp += 1
        self.ignore_batch = False

    def reset(self) -> None:
        """Forget the recorded values (at the start of an epoch or an evaluation run)."""
        for metric in self._store.values():
            # A torchmetrics object may hold updates of a run whose epoch never ended (the
            # sanity check, an interrupted epoch): they must not leak into the next one.
            if metric.torchmetric is not None:
                metric.torchmetric.reset()
        self._store = {}
        self._by_signature = {}
        self._step_metrics = []
        self._epoch_end = False

    def publish_step(self) -> None:
        """Make this batch's step values visible to callbacks and the progress bar."""
        callback, progress = self.callback, self._progress
        self._unpublished = False
        for metric in self._step_metrics:
            value = metric.value
            assert value is not None
            callback[metric.key] = value
            callback[metric.step_name] = value
            if metric.prog_bar:
                progress[metric.step_name] = value

    def step_end(self, should_log: bool, step: int) -> None:
        """After a training batch: publish step values; write them to loggers if due."""
        metrics = self._step_metrics
        if not metrics:
            return
        # Values logged in on_train_batch_end arrived after the first publish.
        if self._unpublished:
            self.publish_step()
        self._step_metrics = []
        if should_log:
            to_log = {m.step_name: m.value for m in metrics if m.logger and m.value is not None}
            if to_log:
                self.log_to_loggers(to_log, step)

    def epoch_end_reached(self) -> None:
        self._epoch_end = True
        self._publish_epoch(sync=True)

    def sync_epoch(self) -> None:
        """Synchronize epoch values logged since the last sync (a point every rank reaches)."""
        if self._epoch_end:
            self._publish_epoch(sync=True)

    def _publish_epoch(self, sync: bool = False) -> dict[str, Tensor]:
        """Compute epoch values and publish them to callback and progress-bar views.

        Values logged with `sync_dist=True` are reduced across ranks only when `sync` is set,
        at points of the loop every rank reaches; reading `trainer.callback_metrics` (maybe on
        one rank only) never starts a collective.
        """
        strategy = self.trainer.strategy
        distributed = strategy.world_size > 1
        if sync and distributed:
            keys = tuple(
                m.key
                for m in self._store.values()
                if m.sync_dist
                and m.on_epoch
                and m.torchmetric is None
                and m.synced_version != m.version
            )
            if keys:
                strategy.check_same_keys(keys, "epoch end")
        epoch_values: dict[str, Tensor] = {}
        for metric in self._store.values():
            if not metric.on_epoch or (
                metric.total is None and metric.torchmetric is None and not metric.values
            ):
                if not (metric.sync_dist and distributed and metric.on_epoch and sync):
                    continue
            if metric.sync_dist and distributed and metric.torchmetric is None:
                if sync or metric.synced_version == metric.version:
                    value = metric.compute_global(strategy)
                else:
                    value = metric.compute()
            else:
                value = metric.compute()
            self.callback[metric.key] = value
            self.callback[metric.epoch_name] = value
            if metric.prog_bar:
                self._progress[metric.epoch_name] = value
            if metric.logger:
                epoch_values[metric.epoch_name] = value
        return epoch_values

    def epoch_end(self, step: int) -> dict[str, Tensor]:
        """At the end of an epoch: final epoch values to loggers; torchmetrics are reset."""
        values = self._publish_epoch(sync=True)
        for metric in self._store.values():
            if metric.torchmetric is not None and metric.on_epoch:
                metric.torchmetric.reset()
        if values:
            self.log_to_loggers(values, step)
        self._epoch_end = False
        return values

    def log_to_loggers(self, metrics: dict[str, Tensor], step: int) -> None:
        self.logged.update(metrics)
        trainer = self.trainer
        if not trainer.loggers:
            return
        payload: dict[str, float] = {k: float(v) for k, v in metrics.items()}
        payload.setdefault("epoch", trainer.current_epoch)
        if "step" in payload:  # a logged "step" replaces the x-axis, as in Lightning
            step = int(payload.pop("step"))
        for logger in trainer.loggers:
            logger.log_metrics(payload, step=step)

    # ------------------------------------------------------------------ views

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        if self._epoch_end:
            self._publish_epoch()
        return self.callback

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        if self._epoch_end:
            self._publish_epoch()
        return {k: float(v) for k, v in self._progress.items()}

    def clear_views(self) -> None:
        # Cleared in place: the train and eval results share these dicts.
        self.callback.clear()
        self.logged.clear()
        self._progress.clear()

    def share_views(self, other: Results) -> None:
        """Publish into `other`'s views, so validation inside fit feeds the same metrics."""
        self.callback = other.callback
        self.logged = other.logged
        self._progress = other._progress


def _describe(options: tuple[Any, ...]) -> str:
    on_step, on_epoch, prog_bar, logger, reduce, sync_dist = options[:6]
    reduce_name = reduce if isinstance(reduce, str) else getattr(reduce, "__name__", repr(reduce))
    return (
        f"on_step={on_step}, on_epoch={on_epoch}, prog_bar={prog_bar}, logger={logger}, "
        f"reduce_fx={reduce_name!r}, sync_dist={sync_dist}"
    )


def _is_torchmetric(value: Any) -> bool:
    # Checked by duck type so that fulmen does not import torchmetrics until it is used.
    return (
        isinstance(value, torch.nn.Module)
        and hasattr(value, "compute")
        and hasattr(value, "update")
    )


def _reduce_name(reduce_fx: Any, name: str) -> Any:
    if isinstance(reduce_fx, str):
        reduce = _REDUCE_NAMES.get(reduce_fx.lower())
        if reduce is None:
            raise MisconfigurationException(
                f"self.log({name!r}, reduce_fx={reduce_fx!r}) is invalid: expected one of "
                f"{sorted(_REDUCE_NAMES)} or a callable."
            )
        return reduce
    if reduce_fx in _REDUCE_FNS:
        return _REDUCE_FNS[reduce_fx]
    if callable(reduce_fx):
        return reduce_fx
    raise MisconfigurationException(
        f"self.log({name!r}, reduce_fx={reduce_fx!r}) is invalid: expected a name or a callable."
    )


def _sync_op(reduce: Any) -> str:
    return reduce if isinstance(reduce, str) else "mean"


def _check_batch_size(name: str, batch_size: Any) -> None:
    # The epoch mean is weighted by batch size: 0 divides by zero, a negative size subtracts.
    if type(batch_size) is int and batch_size >= 1:
        return
    try:
        valid = not isinstance(batch_size, bool) and operator.index(batch_size) >= 1
    except TypeError:
        valid = False
    if not valid:
        raise MisconfigurationException(
            f"self.log({name!r}, ..., batch_size={batch_size!r}) is invalid: expected an int >= 1 "
            "(the number of samples in the batch), or None to read it from the batch."
        )
