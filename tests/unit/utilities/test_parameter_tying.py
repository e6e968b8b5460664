from __future__ import annotations

import torch
from torch import nn

from fulmen.utilities.parameter_tying import find_shared_parameters, set_shared_parameters


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 2)
        self.c = nn.Linear(2, 2)
        self.b.weight = self.a.weight
        self.c.weight = self.a.weight
        inner = nn.Linear(2, 2)
        self.d = nn.Sequential(inner)
        self.e = nn.Linear(2, 2)
        self.e.bias = inner.bias


def test_find_shared_parameters_groups_names_in_registration_order() -> None:
    assert find_shared_parameters(_Tied()) == [
        ["a.weight", "b.weight", "c.weight"],
        ["d.0.bias", "e.bias"],
    ]
    assert find_shared_parameters(nn.Linear(2, 2)) == []


def test_set_shared_parameters_ties_again_after_they_were_split() -> None:
    model = _Tied()
    groups = find_shared_parameters(model)
    model.b.weight = nn.Parameter(torch.zeros(2, 2))
    model.e.bias = nn.Parameter(torch.zeros(2))
    assert set_shared_parameters(model, groups) is model
    assert model.b.weight is model.a.weight
    assert model.c.weight is model.a.weight
    assert model.e.bias is model.d[0].bias
    assert find_shared_parameters(model) == groups
