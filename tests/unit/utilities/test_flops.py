from __future__ import annotations

import pytest
import torch
from torch import nn

from fulmen.utilities.flops import measure_flops


def _meta_model() -> tuple[nn.Module, torch.Tensor]:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))
        x = torch.randn(8, 32)
    return model, x


def test_measure_flops_counts_the_forward_pass() -> None:
    model, x = _meta_model()
    # A linear layer costs 2 * batch * in * out.
    assert measure_flops(model, lambda: model(x)) == 2 * 8 * (32 * 64 + 64 * 2)


def test_measure_flops_adds_the_backward_pass_of_the_loss() -> None:
    model, x = _meta_model()
    forward = measure_flops(model, lambda: model(x))
    assert measure_flops(model, lambda: model(x), lambda y: y.sum()) > 2 * forward


def test_measure_flops_matches_lightning() -> None:
    utilities = pytest.importorskip("pytorch_lightning.utilities")
    model, x = _meta_model()
    for loss_fn in (None, lambda y: y.sum()):
        assert measure_flops(model, lambda: model(x), loss_fn) == utilities.measure_flops(
            model, lambda: model(x), loss_fn
        )
