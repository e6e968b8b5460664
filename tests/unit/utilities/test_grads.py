from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fulmen.utilities.grads import grad_norm


def _model_with_grads() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    model[0].weight.grad = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    model[1].weight.grad = torch.tensor([[0.0, -12.0]])
    return model


def test_grad_norm_keys_and_values_for_two_norm() -> None:
    norms = grad_norm(_model_with_grads(), 2)
    assert list(norms) == [
        "grad_2.0_norm/0.weight",
        "grad_2.0_norm/1.weight",
        "grad_2.0_norm_total",
    ]
    assert norms["grad_2.0_norm/0.weight"].item() == pytest.approx(5.0)
    assert norms["grad_2.0_norm/1.weight"].item() == pytest.approx(12.0)
    assert norms["grad_2.0_norm_total"].item() == pytest.approx(13.0)


def test_grad_norm_inf_and_custom_separator() -> None:
    norms = grad_norm(_model_with_grads(), "inf", group_separator=".")
    assert norms == {
        "grad_inf_norm.0.weight": torch.tensor(4.0),
        "grad_inf_norm.1.weight": torch.tensor(12.0),
        "grad_inf_norm_total": torch.tensor(12.0),
    }
    assert list(grad_norm(_model_with_grads(), math.inf)) == [
        "grad_inf_norm/0.weight",
        "grad_inf_norm/1.weight",
        "grad_inf_norm_total",
    ]


def test_grad_norm_skips_parameters_without_gradients() -> None:
    model = nn.Linear(2, 2)
    assert grad_norm(model, 2) == {}
    model.bias.grad = torch.ones(2)
    assert list(grad_norm(model, 1)) == ["grad_1.0_norm/bias", "grad_1.0_norm_total"]


@pytest.mark.parametrize("norm_type", [0, -1, "abc"])
def test_grad_norm_rejects_non_positive_or_unknown_norms(norm_type: object) -> None:
    with pytest.raises(ValueError, match="expected a positive number or 'inf'"):
        grad_norm(nn.Linear(1, 1), norm_type)  # type: ignore[arg-type]


def test_grad_norm_matches_lightning() -> None:
    utilities = pytest.importorskip("pytorch_lightning.utilities")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    model(torch.randn(5, 4)).sum().backward()
    for norm_type in (1, 2, 2.5, "inf"):
        ours, theirs = grad_norm(model, norm_type), utilities.grad_norm(model, norm_type)
        assert list(ours) == list(theirs)
        for key in ours:
            assert ours[key].item() == pytest.approx(float(theirs[key]), rel=1e-5)
