"""BaseFinetuning's freezing tools and BackboneFinetuning's schedule, without a Trainer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch
from torch import nn

import fulmen as pl
from fulmen.callbacks.finetuning import BackboneFinetuning, BaseFinetuning, multiplicative
from fulmen.utilities.exceptions import MisconfigurationException


class OwnParameter(nn.Module):
    """A parent module that holds a parameter of its own next to a child."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(2))
        self.inner = nn.Linear(2, 2)


def network() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.ReLU()), OwnParameter()
    )


class Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        self.head = nn.Linear(2, 1)


def grads(module: nn.Module) -> list[bool]:
    return [p.requires_grad for p in module.parameters()]


def test_flatten_modules_lists_leaves_and_parents_with_own_parameters() -> None:
    names = [type(m).__name__ for m in BaseFinetuning.flatten_modules(network())]
    assert names == ["Linear", "BatchNorm1d", "ReLU", "OwnParameter", "Linear"]
    nested = [nn.Linear(1, 1), nn.ModuleDict({"a": nn.Linear(1, 1), "b": OwnParameter()})]
    names = [type(m).__name__ for m in BaseFinetuning.flatten_modules(nested)]
    assert names == ["Linear", "Linear", "OwnParameter", "Linear"]


def test_filter_params_yields_each_parameter_once() -> None:
    net = network()
    assert len(list(BaseFinetuning.filter_params(net))) == 7
    assert len(list(BaseFinetuning.filter_params(net, train_bn=False))) == 5
    BaseFinetuning.freeze(net)
    assert len(list(BaseFinetuning.filter_params(net, requires_grad=False))) == 5


def test_freeze_keeps_batchnorm_training_unless_asked() -> None:
    net = network()
    batch_norm = cast(nn.BatchNorm1d, cast(nn.Sequential, net[1])[0])
    BaseFinetuning.freeze(net, train_bn=False)
    assert grads(net) == [False] * 7
    assert batch_norm.track_running_stats is False
    BaseFinetuning.freeze(net, train_bn=True)
    assert grads(net) == [False, False, True, True, False, False, False]
    assert batch_norm.track_running_stats is True


def test_make_trainable_undoes_freeze() -> None:
    net = network()
    BaseFinetuning.freeze(net, train_bn=False)
    BaseFinetuning.make_trainable(net)
    assert grads(net) == [True] * 7
    assert cast(nn.BatchNorm1d, cast(nn.Sequential, net[1])[0]).track_running_stats is True


def test_freeze_module_touches_only_its_own_parameters() -> None:
    net = network()
    BaseFinetuning.freeze_module(net)  # a Sequential holds no parameter itself
    assert grads(net) == [True] * 7
    BaseFinetuning.freeze_module(net[2])
    assert grads(net[2]) == [False, True, True]


def test_filter_on_optimizer_drops_held_parameters_by_identity() -> None:
    held, equal_valued = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([held], lr=1.0)
    # A parameter equal in value to a held one is a different parameter and is kept.
    assert BaseFinetuning.filter_on_optimizer(optimizer, [equal_valued]) == [equal_valued]
    with pytest.warns(UserWarning, match="already in the optimizer and are skipped"):
        kept = BaseFinetuning.filter_on_optimizer(optimizer, iter([held, equal_valued]))
    assert kept == [equal_valued]


def test_unfreeze_and_add_param_group_sets_the_learning_rate() -> None:
    net = network()
    BaseFinetuning.freeze(net, train_bn=False)
    optimizer = torch.optim.SGD(net[0].parameters(), lr=1.0)
    BaseFinetuning.unfreeze_and_add_param_group(net[2], optimizer)
    BaseFinetuning.unfreeze_and_add_param_group([net[1]], optimizer, lr=0.3, initial_denom_lr=3.0)
    assert [(g["lr"], len(g["params"])) for g in optimizer.param_groups] == [
        (1.0, 2),
        (0.1, 3),  # no lr: the first group's rate / initial_denom_lr
        (0.3, 2),  # an lr is used as given
    ]
    assert grads(net) == [False, False] + [True] * 5  # net[0] stays as it was


def test_unfreeze_without_train_bn_leaves_batchnorm_out_of_the_group() -> None:
    net = network()
    optimizer = torch.optim.SGD(net[0].parameters(), lr=1.0)
    BaseFinetuning.unfreeze_and_add_param_group(net[1], optimizer, train_bn=False)
    assert len(optimizer.param_groups) == 1


def test_base_class_needs_both_methods() -> None:
    base = BaseFinetuning()
    with pytest.raises(NotImplementedError, match="freeze_before_training"):
        base.freeze_before_training(Model())
    with pytest.raises(NotImplementedError, match="finetune_function"):
        base.finetune_function(Model(), 0, torch.optim.SGD(Model().parameters(), lr=1.0))


def test_multiplicative_doubles() -> None:
    assert multiplicative(7) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unfreeze_backbone_at_epoch": -1}, r"unfreeze_backbone_at_epoch=-1\) is invalid"),
        ({"lambda_func": 2.0}, r"lambda_func=2.0\) is invalid"),
        ({"backbone_initial_ratio_lr": 0}, r"backbone_initial_ratio_lr=0\) is invalid"),
        ({"backbone_initial_lr": -0.1}, r"backbone_initial_lr=-0.1\) is invalid: .* or None"),
        ({"initial_denom_lr": 0.0}, r"initial_denom_lr=0.0\) is invalid"),
        ({"rounding": -2}, r"rounding=-2\) is invalid"),
    ],
)
def test_backbone_finetuning_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        BackboneFinetuning(**kwargs)


def test_missing_backbone_is_named_in_the_error() -> None:
    class NoBackbone(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 1)

    with pytest.raises(MisconfigurationException, match=r"NoBackbone.backbone is missing"):
        BackboneFinetuning().setup(None, NoBackbone(), "fit")  # type: ignore[arg-type]
    module = NoBackbone()
    module.backbone = "resnet"  # type: ignore[assignment]
    with pytest.raises(MisconfigurationException, match=r"backbone is str"):
        BackboneFinetuning().setup(None, module, "fit")  # type: ignore[arg-type]


def run_schedule(
    finetuning: BackboneFinetuning, epochs: int, head_lrs: list[float]
) -> list[list[float]]:
    model = Model()
    finetuning.freeze_before_training(model)
    optimizer = torch.optim.SGD(model.head.parameters(), lr=head_lrs[0])
    seen = []
    for epoch in range(epochs):
        optimizer.param_groups[0]["lr"] = head_lrs[epoch]
        finetuning.finetune_function(model, epoch, optimizer)
        seen.append([g["lr"] for g in optimizer.param_groups])
    return seen


def test_backbone_joins_at_its_epoch_and_its_rate_grows_up_to_the_head_rate() -> None:
    seen = run_schedule(BackboneFinetuning(unfreeze_backbone_at_epoch=1), 5, [0.1] * 5)
    assert seen == [
        [0.1],
        [0.1, 0.1 * 0.1],
        [0.1, 0.1 * 0.1 * 2],
        [0.1, 0.1 * 0.1 * 4],
        [0.1, 0.1 * 0.1 * 8],
    ]
    aligned = run_schedule(
        BackboneFinetuning(unfreeze_backbone_at_epoch=0), 4, [0.1, 0.05, 0.03, 0.01]
    )
    assert aligned == [[0.1, 0.1 * 0.1], [0.05, 0.1 * 0.1 * 2], [0.03, 0.03], [0.01, 0.01]]


def test_backbone_initial_lr_and_lambda_without_alignment() -> None:
    finetuning = BackboneFinetuning(
        unfreeze_backbone_at_epoch=1,
        backbone_initial_lr=0.5,
        lambda_func=lambda epoch: 1.5,
        should_align=False,
        initial_denom_lr=4.0,  # unused: an explicit rate is taken as it is
    )
    assert run_schedule(finetuning, 3, [0.1] * 3) == [[0.1], [0.1, 0.5], [0.1, 0.75]]


def test_backbone_unfreezes_with_its_batchnorm_as_asked() -> None:
    model = Model()
    finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=0, train_bn=False)
    finetuning.freeze_before_training(model)
    assert grads(model.backbone) == [False, False, True, True]  # frozen, BatchNorm trains
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
    finetuning.finetune_function(model, 0, optimizer)
    assert len(optimizer.param_groups[1]["params"]) == 2  # the Linear only, train_bn=False
    assert grads(model.backbone) == [True] * 4


def test_unfreezing_a_backbone_whose_batchnorm_trains_already_does_not_warn() -> None:
    model = Model()
    BaseFinetuning.freeze(model.backbone)  # BatchNorm keeps training ...
    optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
    BaseFinetuning.unfreeze_and_add_param_group(model.backbone, optimizer)  # ... and stays put
    assert [len(g["params"]) for g in optimizer.param_groups] == [4, 2]


def test_verbose_logs_the_rates(caplog: pytest.LogCaptureFixture) -> None:
    finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=0, verbose=True, rounding=3)
    with caplog.at_level("INFO"):
        run_schedule(finetuning, 2, [0.0125, 0.0125])
    assert [r.getMessage() for r in caplog.records] == [
        "Current lr: 0.013, Backbone lr: 0.001",
        "Current lr: 0.013, Backbone lr: 0.003",
    ]


def epoch_start(
    callback: BaseFinetuning, model: Model, optimizer: torch.optim.Optimizer, epoch: int
) -> None:
    trainer = SimpleNamespace(optimizers=[optimizer], current_epoch=epoch)
    callback.on_train_epoch_start(trainer, model)  # type: ignore[arg-type]


def test_state_names_the_added_groups_and_rebuilds_them_on_resume() -> None:
    model = Model()
    finetuning = BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    finetuning.setup(None, model, "fit")  # type: ignore[arg-type]
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
    for epoch in range(3):
        epoch_start(finetuning, model, optimizer, epoch)
        model.head(model.backbone(torch.randn(4, 2))).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    state = finetuning.state_dict()
    groups = state["internal_optimizer_metadata"][0]
    assert [g["params"] for g in groups] == [
        ["backbone.1.weight", "backbone.1.bias", "head.weight", "head.bias"],
        ["backbone.0.weight", "backbone.0.bias"],
    ]
    assert state["previous_backbone_lr"] == pytest.approx(0.02)
    optimizer_state = optimizer.state_dict()

    # Resume in Lightning's order: setup, load_state_dict, on_fit_start, then the optimizer state.
    resumed_model = Model()
    resumed = BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    resumed.setup(None, resumed_model, "fit")  # type: ignore[arg-type]
    resumed.load_state_dict(state)
    fresh = torch.optim.Adam(filter(lambda p: p.requires_grad, resumed_model.parameters()), lr=0.1)
    fake_trainer = SimpleNamespace(optimizers=[fresh])
    resumed.on_fit_start(fake_trainer, resumed_model)  # type: ignore[arg-type]
    fresh.load_state_dict(optimizer_state)
    assert [len(g["params"]) for g in fresh.param_groups] == [4, 2]
    resumed_weight, weight = resumed_model.backbone[0].weight, model.backbone[0].weight
    assert isinstance(resumed_weight, torch.Tensor) and isinstance(weight, torch.Tensor)
    assert fresh.param_groups[1]["params"][0] is resumed_weight
    assert torch.equal(fresh.state[resumed_weight]["exp_avg"], optimizer.state[weight]["exp_avg"])
    assert grads(resumed_model.backbone) == [True] * 4  # unfrozen again, as before the save
    epoch_start(resumed, resumed_model, fresh, 3)
    assert fresh.param_groups[1]["lr"] == pytest.approx(0.04)


def test_load_state_dict_accepts_the_pre_1_6_layout() -> None:
    finetuning = BaseFinetuning()
    finetuning.load_state_dict({0: [{"lr": 0.1, "params": ["w"]}]})  # type: ignore[dict-item]
    assert finetuning.state_dict() == {
        "internal_optimizer_metadata": {0: [{"lr": 0.1, "params": ["w"]}]}
    }
