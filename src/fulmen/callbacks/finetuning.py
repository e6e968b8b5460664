"""Finetuning: freeze parts of the model before training and unfreeze them on a schedule.

`BaseFinetuning` holds the freezing tools and remembers the parameter groups it adds to the
optimizers, by parameter name, so that a resumed fit rebuilds them before the optimizer state is
loaded. `BackboneFinetuning` is the ready-made schedule for a module with a `backbone`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["BackboneFinetuning", "BaseFinetuning", "multiplicative"]

# A module, or any nesting of iterables (lists, ModuleLists, ModuleDicts) of modules.
_MODULES = nn.Module | Iterable[nn.Module | Iterable[Any]]


def multiplicative(epoch: int) -> float:
    """Double the backbone's learning rate every epoch: `BackboneFinetuning`'s default."""
    return 2.0


class BaseFinetuning(Callback):
    """Freeze modules before training and unfreeze them during it; subclass to set the schedule.

    Implement `freeze_before_training(pl_module)` (called in `setup`) and
    `finetune_function(pl_module, epoch, optimizer)` (called at the start of every training
    epoch, once per optimizer).

    Example:
        >>> import torch
        >>> class UnfreezeAtEpoch2(BaseFinetuning):
        ...     def freeze_before_training(self, pl_module):
        ...         self.freeze(pl_module.encoder)
        ...     def finetune_function(self, pl_module, epoch, optimizer):
        ...         if epoch == 2:
        ...             self.unfreeze_and_add_param_group(pl_module.encoder, optimizer, lr=0.01)
        >>> encoder = torch.nn.Linear(2, 2)
        >>> BaseFinetuning.freeze(encoder)
        >>> [p.requires_grad for p in encoder.parameters()]
        [False, False]
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> BaseFinetuning.unfreeze_and_add_param_group(encoder, optimizer)
        >>> [group["lr"] for group in optimizer.param_groups]  # lr / initial_denom_lr
        [0.1, 0.01]
    """

    def __init__(self) -> None:
        # Per optimizer index: its parameter groups, with parameter names instead of tensors.
        self._internal_optimizer_metadata: dict[int, list[dict[str, Any]]] = {}
        self._restarting = False

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        """Freeze the modules that training starts without."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `freeze_before_training(pl_module)`."
        )

    def finetune_function(
        self, pl_module: LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        """Unfreeze modules, or change learning rates, at the start of `epoch`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement "
            "`finetune_function(pl_module, epoch, optimizer)`."
        )

    # ---------------------------------------------------------------------------- tools

    @staticmethod
    def flatten_modules(modules: _MODULES) -> list[nn.Module]:
        """List the leaf modules of `modules`, and the parents that hold parameters themselves."""
        if isinstance(modules, nn.ModuleDict):
            modules = modules.values()
        if isinstance(modules, nn.Module):
            found: Iterable[nn.Module] = modules.modules()
        else:
            found = [m for item in modules for m in BaseFinetuning.flatten_modules(item)]
        return [m for m in found if not list(m.children()) or m._parameters]

    @staticmethod
    def filter_params(
        modules: _MODULES, train_bn: bool = True, requires_grad: bool = True
    ) -> Generator[nn.Parameter]:
        """Yield the parameters of `modules` whose `requires_grad` is `requires_grad`.

        With `train_bn=False`, BatchNorm parameters are left out.
        """
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm) and not train_bn:
                continue
            # Own parameters only: a parent's children are visited on their own.
            for param in module.parameters(recurse=False):
                if param.requires_grad == requires_grad:
                    yield param

    @staticmethod
    def make_trainable(modules: _MODULES) -> None:
        """Let `modules` train: gradients on, BatchNorm statistics tracked."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm):
                module.track_running_stats = True
            for param in module.parameters(recurse=False):
                param.requires_grad = True

    @staticmethod
    def freeze_module(module: nn.Module) -> None:
        """Freeze the parameters `module` holds itself; a BatchNorm also stops tracking stats."""
        if isinstance(module, _BatchNorm):
            module.track_running_stats = False
        for param in module.parameters(recurse=False):
            param.requires_grad = False

    @staticmethod
    def freeze(modules: _MODULES, train_bn: bool = True) -> None:
        """Freeze `modules`; with `train_bn=True`, BatchNorm layers stay trainable."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm) and train_bn:
                BaseFinetuning.make_trainable(module)
            else:
                BaseFinetuning.freeze_module(module)

    @staticmethod
    def filter_on_optimizer(
        optimizer: Optimizer, params: Iterable[nn.Parameter]
    ) -> list[nn.Parameter]:
        """Drop from `params` those `optimizer` already holds (a parameter may sit in one group)."""
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        given = list(params)
        kept = [p for p in given if id(p) not in held]
        if len(kept) != len(given):
            rank_zero_warn(
                "Some parameters to unfreeze are already in the optimizer and are skipped. If the "
                "optimizer should only see trainable parameters, build it in "
                "`configure_optimizers` as "
                f"`{type(optimizer).__name__}(filter(lambda p: p.requires_grad, "
                "self.parameters()), ...)`."
            )
        return kept

    @staticmethod
    def unfreeze_and_add_param_group(
        modules: _MODULES,
        optimizer: Optimizer,
        lr: float | None = None,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
    ) -> None:
        """Unfreeze `modules` and give their parameters a new group in `optimizer`.

        The group's learning rate is `lr`, or the first group's rate divided by
        `initial_denom_lr` when `lr` is None.
        """
        # Parameters that were training already (BatchNorm kept trainable by `freeze`) and are in
        # the optimizer stay where they are, without the warning meant for frozen ones.
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        training = {id(p) for p in BaseFinetuning.filter_params(modules, requires_grad=True)}
        BaseFinetuning.make_trainable(modules)
        group_lr = optimizer.param_groups[0]["lr"] / initial_denom_lr if lr is None else float(lr)
        params = [
            p
            for p in BaseFinetuning.filter_params(modules, train_bn=train_bn, requires_grad=True)
            if not (id(p) in training and id(p) in held)
        ]
        params = BaseFinetuning.filter_on_optimizer(optimizer, params)
        if params:
            optimizer.add_param_group({"params": params, "lr": group_lr})

    # ---------------------------------------------------------------------------- hooks

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.freeze_before_training(pl_module)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._restarting:
            return
        # Rebuild the groups the previous run added, so the optimizer state loads into them.
        params = dict(pl_module.named_parameters())
        for index, optimizer in enumerate(trainer.optimizers):
            saved = self._internal_optimizer_metadata.get(index)
            if saved is None:
                continue
            current = optimizer.param_groups
            # Groups the optimizer has keep their settings (the optimizer state may hold newer
            # ones); the added groups come back with their saved settings.
            optimizer.param_groups = [
                {
                    **(current[i] if i < len(current) else group),
                    "params": [params[name] for name in group["params"]],
                }
                for i, group in enumerate(saved)
            ]
            # `freeze_before_training` froze everything again; what was added had been unfrozen.
            for group in saved[len(current) :]:
                _make_trainable_by_name(pl_module, group["params"])
        self._restarting = False

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        names = {param: name for name, param in pl_module.named_parameters()}
        for index, optimizer in enumerate(trainer.optimizers):
            before = len(optimizer.param_groups)
            self.finetune_function(pl_module, trainer.current_epoch, optimizer)
            groups = optimizer.param_groups
            saved = self._internal_optimizer_metadata.get(index)
            if saved is None:
                self._internal_optimizer_metadata[index] = _named_groups(groups, names)
            elif len(groups) != before:
                saved.extend(_named_groups(groups[before:], names))

    def state_dict(self) -> dict[str, Any]:
        return {"internal_optimizer_metadata": self._internal_optimizer_metadata}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restarting = True
        # Checkpoints of Lightning before 1.6 stored the metadata as the whole state.
        metadata = state_dict.get("internal_optimizer_metadata", state_dict)
        self._internal_optimizer_metadata = {int(key): value for key, value in metadata.items()}


class BackboneFinetuning(BaseFinetuning):
    """Train with `pl_module.backbone` frozen, then unfreeze it with its own learning rate.

    At epoch `unfreeze_backbone_at_epoch` the backbone joins the optimizer as a new parameter
    group, at `backbone_initial_lr`, or at `backbone_initial_ratio_lr` times the current rate.
    After that its rate is multiplied by `lambda_func(epoch + 1)` each epoch, and with
    `should_align` never exceeds the rate of the first group.

    Example:
        >>> import torch
        >>> class Model(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.backbone, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
        >>> model = Model()
        >>> finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=1)
        >>> finetuning.freeze_before_training(model)
        >>> optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
        >>> for epoch in range(4):
        ...     finetuning.finetune_function(model, epoch, optimizer)
        >>> [round(group["lr"], 6) for group in optimizer.param_groups]  # 0.01, 0.02, then 0.04
        [0.1, 0.04]
    """

    def __init__(
        self,
        unfreeze_backbone_at_epoch: int = 10,
        lambda_func: Callable[[int], float] = multiplicative,
        backbone_initial_ratio_lr: float = 10e-2,
        backbone_initial_lr: float | None = None,
        should_align: bool = True,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
        verbose: bool = False,
        rounding: int = 12,
    ) -> None:
        super().__init__()
        if (
            isinstance(unfreeze_backbone_at_epoch, bool)
            or not isinstance(unfreeze_backbone_at_epoch, int)
            or unfreeze_backbone_at_epoch < 0
        ):
            raise MisconfigurationException(
                f"BackboneFinetuning(unfreeze_backbone_at_epoch={unfreeze_backbone_at_epoch!r}) "
                "is invalid: expected an int >= 0."
            )
        if not callable(lambda_func):
            raise MisconfigurationException(
                f"BackboneFinetuning(lambda_func={lambda_func!r}) is invalid: expected a function "
                "of the epoch that returns the factor for the backbone's learning rate."
            )
        for name, value in (
            ("backbone_initial_ratio_lr", backbone_initial_ratio_lr),
            ("backbone_initial_lr", backbone_initial_lr),
            ("initial_denom_lr", initial_denom_lr),
        ):
            if value is None and name == "backbone_initial_lr":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                allowed = "a positive number" + (
                    " or None" if name == "backbone_initial_lr" else ""
                )
                raise MisconfigurationException(
                    f"BackboneFinetuning({name}={value!r}) is invalid: expected {allowed}."
                )
        if isinstance(rounding, bool) or not isinstance(rounding, int) or rounding < 0:
            raise MisconfigurationException(
                f"BackboneFinetuning(rounding={rounding!r}) is invalid: expected an int >= 0."
            )
        self.unfreeze_backbone_at_epoch = unfreeze_backbone_at_epoch
        self.lambda_func = lambda_func
        self.backbone_initial_ratio_lr = backbone_initial_ratio_lr
        self.backbone_initial_lr = backbone_initial_lr
        self.should_align = should_align
        self.initial_denom_lr = initial_denom_lr
        self.train_bn = train_bn
        self.verbose = verbose
        self.rounding = rounding
        self.previous_backbone_lr: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "previous_backbone_lr": self.previous_backbone_lr}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous_backbone_lr = state_dict["previous_backbone_lr"]
        super().load_state_dict(
            {key: value for key, value in state_dict.items() if key != "previous_backbone_lr"}
        )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        _backbone(pl_module)
        super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: nn.Module) -> None:
        """Freeze the backbone (its BatchNorm layers keep training)."""
        self.freeze(_backbone(pl_module))

    def finetune_function(self, pl_module: nn.Module, epoch: int, optimizer: Optimizer) -> None:
        """Unfreeze the backbone at `unfreeze_backbone_at_epoch`; afterwards raise its rate."""
        if epoch < self.unfreeze_backbone_at_epoch:
            return
        current_lr = optimizer.param_groups[0]["lr"]
        if epoch == self.unfreeze_backbone_at_epoch:
            backbone_lr = (
                self.backbone_initial_lr
                if self.backbone_initial_lr is not None
                else current_lr * self.backbone_initial_ratio_lr
            )
            self.unfreeze_and_add_param_group(
                _backbone(pl_module),
                optimizer,
                backbone_lr,
                train_bn=self.train_bn,
                initial_denom_lr=self.initial_denom_lr,
            )
        else:
            assert self.previous_backbone_lr is not None
            backbone_lr = self.lambda_func(epoch + 1) * self.previous_backbone_lr
            if self.should_align and backbone_lr > current_lr:
                backbone_lr = current_lr
            optimizer.param_groups[-1]["lr"] = backbone_lr
        self.previous_backbone_lr = backbone_lr
        if self.verbose:
            rank_zero_info(
                f"Current lr: {round(current_lr, self.rounding)}, "
                f"Backbone lr: {round(backbone_lr, self.rounding)}"
            )


def _backbone(pl_module: nn.Module) -> nn.Module:
    backbone = getattr(pl_module, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise MisconfigurationException(
            f"BackboneFinetuning needs the LightningModule to have a `backbone` attribute that is "
            f"an nn.Module; {type(pl_module).__name__}.backbone is "
            f"{'missing' if backbone is None else type(backbone).__name__}. Assign the layers to "
            "finetune to `self.backbone` in `__init__`."
        )
    return backbone


def _named_groups(
    groups: list[dict[str, Any]], names: dict[nn.Parameter, str]
) -> list[dict[str, Any]]:
    """Copy parameter groups with each parameter replaced by its name, for the checkpoint."""
    return [{**group, "params": [names[p] for p in group["params"]]} for group in groups]


def _make_trainable_by_name(pl_module: nn.Module, names: list[str]) -> None:
    for name in names:
        owner = pl_module.get_submodule(name.rpartition(".")[0])
        owner.get_parameter(name.rpartition(".")[2]).requires_grad = True
        if isinstance(owner, _BatchNorm):
            owner.track_running_stats = True
