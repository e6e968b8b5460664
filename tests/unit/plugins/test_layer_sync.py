"""TorchSyncBatchNorm: swap batch norm layers for SyncBatchNorm and back, keeping their state."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from fulmen.plugins import LayerSync, TorchSyncBatchNorm


class ScaledBatchNorm(nn.BatchNorm2d):
    """A user's batch norm subclass with its own attribute and method."""

    def __init__(self, num_features: int, scale: float) -> None:
        super().__init__(num_features)
        self.scale = scale

    def describe(self) -> str:
        return f"scaled by {self.scale}"


def _sequential(module: nn.Module) -> nn.Sequential:
    assert isinstance(module, nn.Sequential)
    return module


def _model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 1),
        nn.BatchNorm2d(4),
        nn.Sequential(ScaledBatchNorm(4, scale=2.0), nn.ReLU()),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 6),
        nn.BatchNorm1d(6, affine=False),
        nn.Unflatten(1, (6, 1, 1, 1)),
        nn.BatchNorm3d(6, track_running_stats=False),
    )


def _types(model: nn.Module) -> list[str]:
    return [type(module).__name__ for module in model.modules()]


def test_layer_sync_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        LayerSync()  # type: ignore[abstract]


def test_apply_replaces_every_batch_norm_and_shares_its_state() -> None:
    model = _model()
    before = dict(model.named_parameters()), dict(model.named_buffers())
    synced = TorchSyncBatchNorm().apply(model)
    assert synced is model  # the top module is kept; its children are replaced in place
    assert _types(synced).count("SyncBatchNorm") == 4
    assert not any(type(m).__name__.startswith("BatchNorm") for m in synced.modules())
    params, buffers = dict(synced.named_parameters()), dict(synced.named_buffers())
    assert params.keys() == before[0].keys() and buffers.keys() == before[1].keys()
    assert all(params[name] is param for name, param in before[0].items())
    assert all(buffers[name] is buffer for name, buffer in before[1].items())


def test_revert_restores_the_original_classes_and_attributes() -> None:
    model = _model()
    original_types = _types(model)
    layer_sync = TorchSyncBatchNorm()
    reverted = _sequential(layer_sync.revert(layer_sync.apply(model)))
    assert _types(reverted) == original_types
    scaled, bn1d, bn3d = _sequential(reverted[2])[0], reverted[5], reverted[7]
    assert isinstance(scaled, ScaledBatchNorm)
    assert scaled.describe() == "scaled by 2.0"
    assert isinstance(bn1d, nn.BatchNorm1d) and isinstance(bn3d, nn.BatchNorm3d)
    assert (bn1d.affine, bn3d.track_running_stats, bn3d.running_mean) == (False, False, None)


def test_revert_carries_back_what_training_changed() -> None:
    model = _model()
    layer_sync = TorchSyncBatchNorm()
    synced = _sequential(layer_sync.apply(model))
    optimizer = torch.optim.SGD(synced.parameters(), lr=0.1)
    # One process and no process group: SyncBatchNorm normalizes like BatchNorm.
    synced(torch.randn(8, 3, 2, 2)).sum().backward()
    optimizer.step()
    synced_layer = synced[1]
    assert isinstance(synced_layer, nn.SyncBatchNorm)
    synced_layer.momentum = 0.5  # e.g. a callback that schedules the momentum
    synced.eval()
    expected_state = {key: value.clone() for key, value in synced.state_dict().items()}
    assert int(expected_state["1.num_batches_tracked"]) == 1

    reverted = _sequential(layer_sync.revert(synced))
    assert reverted.state_dict().keys() == expected_state.keys()
    for key, value in reverted.state_dict().items():
        assert torch.equal(value, expected_state[key]), key
    assert [p for group in optimizer.param_groups for p in group["params"]] == list(
        reverted.parameters()
    )
    assert not any(module.training for module in reverted.modules())
    reverted_layer = reverted[1]
    assert isinstance(reverted_layer, nn.BatchNorm2d) and reverted_layer.momentum == 0.5
    inputs = torch.randn(2, 3, 2, 2)
    assert torch.equal(reverted(inputs), synced(inputs))


def test_revert_keeps_tensors_moved_after_apply() -> None:
    # `.to(device)` and `.double()` replace buffers with new tensors: revert must take those.
    layer_sync = TorchSyncBatchNorm()
    synced = layer_sync.apply(_model()).double()
    reverted = layer_sync.revert(synced)
    assert {t.dtype for t in reverted.parameters()} == {torch.float64}
    assert {t.dtype for t in reverted.buffers() if t.is_floating_point()} == {torch.float64}
    assert reverted(torch.randn(2, 3, 2, 2, dtype=torch.float64)).dtype == torch.float64


def test_revert_keeps_hooks_registered_on_the_original_layer() -> None:
    model = _model()
    calls: list[str] = []
    model[1].register_forward_hook(lambda *_: calls.append("hook"))
    layer_sync = TorchSyncBatchNorm()
    reverted = _sequential(layer_sync.revert(layer_sync.apply(model)))
    reverted(torch.randn(2, 3, 2, 2))
    assert calls == ["hook"]


def test_a_batch_norm_at_the_top_is_replaced_and_restored() -> None:
    layer = nn.BatchNorm1d(3).eval()
    layer_sync = TorchSyncBatchNorm()
    synced = layer_sync.apply(layer)
    assert type(synced) is nn.SyncBatchNorm and synced.training is False
    reverted = layer_sync.revert(synced)
    assert type(reverted) is nn.BatchNorm1d and reverted.training is False
    assert reverted.weight is layer.weight


def test_existing_sync_batch_norm_layers_are_left_alone() -> None:
    own = nn.SyncBatchNorm(4)
    model = nn.Sequential(own, nn.BatchNorm1d(4))
    layer_sync = TorchSyncBatchNorm()
    synced = _sequential(layer_sync.apply(model))
    assert synced[0] is own
    reverted = _sequential(layer_sync.revert(synced))
    assert reverted[0] is own
    assert type(reverted[1]) is nn.BatchNorm1d


def test_apply_twice_converts_once() -> None:
    layer_sync = TorchSyncBatchNorm()
    synced = layer_sync.apply(layer_sync.apply(_model()))
    assert type(_sequential(layer_sync.revert(synced))[1]) is nn.BatchNorm2d


def test_revert_without_apply_changes_nothing() -> None:
    model = _model()
    children = list(model.children())
    assert TorchSyncBatchNorm().revert(model) is model
    assert list(model.children()) == children


def test_a_synced_model_survives_pickling_and_still_reverts() -> None:
    layer_sync = TorchSyncBatchNorm()
    synced = pickle.loads(pickle.dumps(layer_sync.apply(_model())))
    assert _types(layer_sync.revert(synced)) == _types(_model())


@pytest.mark.compat
def test_apply_and_revert_keep_the_state_lightning_keeps() -> None:
    theirs = pytest.importorskip("pytorch_lightning.plugins").TorchSyncBatchNorm()
    torch.manual_seed(0)
    ours_model, their_model = _model(), _model()
    their_model.load_state_dict(ours_model.state_dict())
    ours, lightnings = TorchSyncBatchNorm().apply(ours_model), theirs.apply(their_model)
    assert _types(ours) == _types(lightnings)
    inputs = torch.randn(8, 3, 2, 2)
    assert torch.equal(ours(inputs), lightnings(inputs))

    ours, lightnings = TorchSyncBatchNorm().revert(ours), theirs.revert(lightnings)
    # Lightning rebuilds a generic `_BatchNormXd`; fulmen rebuilds the original classes.
    assert _types(lightnings).count("_BatchNormXd") == 4
    assert _types(ours) == _types(_model())
    assert ours.state_dict().keys() == lightnings.state_dict().keys()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, lightnings.state_dict()[key]), key
