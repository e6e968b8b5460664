from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from fulmen.demos.boring_classes import BoringModel
from fulmen.utilities.model_summary import (
    ModelSummary,
    get_formatted_model_size,
    get_human_readable_count,
    parse_batch_shape,
    summarize,
)

_TOTALS = [
    "66        Trainable params",
    "0         Non-trainable params",
    "66        Total params",
    "0.000     Total estimated model params size (MB)",
    "1         Modules in train mode",
    "0         Modules in eval mode",
]
BORING_TABLE = "\n".join(
    [
        "  | Name  | Type   | Params | Mode  | FLOPs",
        "-" * 49,
        "0 | layer | Linear | 66     | train | 0    ",
        "-" * 49,
        *_TOTALS,
        "0         Total Flops",
    ]
)
BORING_TABLE_WITH_EXAMPLE = "\n".join(
    [
        "  | Name  | Type   | Params | Mode  | FLOPs | In sizes | Out sizes",
        "-" * 72,
        "0 | layer | Linear | 66     | train | 256   | [2, 32]  | [2, 2]   ",
        "-" * 72,
        *_TOTALS,
        "256       Total Flops",
    ]
)


def test_boring_model_table_is_lightnings() -> None:
    assert str(ModelSummary(BoringModel())) == BORING_TABLE


def test_example_input_adds_flops_and_sizes() -> None:
    model = BoringModel()
    model.example_input_array = torch.randn(2, 32)
    summary = ModelSummary(model)
    assert str(summary) == BORING_TABLE_WITH_EXAMPLE
    assert summary.total_flops == 256
    assert summary.in_sizes == [[2, 32]]
    assert summary.out_sizes == [[2, 2]]


class _Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.unused = nn.Linear(1000, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn(self.conv(x))
        return out


class _Net(nn.Module):
    """Nested layers, a frozen layer, an eval-mode head and a parameter of its own."""

    example_input_array: Any = None
    _trainer: Any = None

    def __init__(self, with_example: bool = True) -> None:
        super().__init__()
        self.features = _Features()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 10), nn.ReLU())
        self.scale = nn.Parameter(torch.ones(5))
        self.head.eval()
        self.features.unused.requires_grad_(False)
        if with_example:
            self.example_input_array = torch.randn(2, 3, 16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.pool(self.features(x)))
        return out

    # Lightning's summary calls these when it runs the example input.
    def _on_before_batch_transfer(self, batch: Any) -> Any:
        return batch

    def _apply_batch_transfer_handler(self, batch: Any) -> Any:
        return batch


def test_depth_one_lists_children_and_other_params() -> None:
    text = str(ModelSummary(_Net(), max_depth=1))
    assert text.splitlines()[2:6] == [
        "0 | features     | _Features         | 1.0 M  | train | 169 K | [2, 3, 16, 16] | [2, 8, 14, 14]",
        "1 | pool         | AdaptiveAvgPool2d | 0      | train | 0     | [2, 8, 14, 14] | [2, 8, 1, 1]  ",
        "2 | head         | Sequential        | 90     | eval  | 320   | [2, 8, 1, 1]   | [2, 10]       ",
        "  | other params | n/a               | 5      | n/a   | n/a   | n/a            | n/a           ",
    ]
    assert text.splitlines()[-7:] == [
        "335       Trainable params",
        "1.0 M     Non-trainable params",
        "1.0 M     Total params",
        "4.005     Total estimated model params size (MB)",
        "5         Modules in train mode",
        "4         Modules in eval mode",
        "169 K     Total Flops",
    ]


def test_deeper_levels_and_properties() -> None:
    summary = ModelSummary(_Net(), max_depth=-1)
    assert summary.layer_names == [
        "features", "features.conv", "features.bn", "features.unused",
        "pool", "head", "head.0", "head.1", "head.2",
    ]  # fmt: skip
    assert summary.param_nums == [1001240, 224, 16, 1001000, 0, 90, 0, 90, 0]
    assert summary.in_sizes[3] == "?"  # never called
    assert summary.training_modes == [True] * 5 + [False] * 4
    assert summary.total_training_modes == {"train": 5, "eval": 4}
    assert summary.total_parameters == 1001335
    assert summary.trainable_parameters == 335
    assert summary.model_size == pytest.approx(1001335 * 4 / 1e6)
    assert ModelSummary(_Net(), max_depth=2).layer_names == summary.layer_names
    assert ModelSummary(_Net(), max_depth=0).layer_names == []


def test_forward_runs_in_eval_mode_without_gradients_and_restores_modes() -> None:
    model = _Net()
    ModelSummary(model)
    assert model.features.bn.running_mean is not None
    assert torch.equal(model.features.bn.running_mean, torch.zeros(8))
    assert model.training and model.features.training and not model.head.training
    assert all(p.grad is None for p in model.parameters())


def test_model_size_follows_the_trainer_precision() -> None:
    model = _Net(with_example=False)
    sizes = {}
    for precision in ("64-true", "32-true", "16-true", "bf16-true", "bf16-mixed"):
        model._trainer = SimpleNamespace(precision=precision)
        sizes[precision] = ModelSummary(model).model_size
    assert sizes["64-true"] == pytest.approx(2 * sizes["32-true"])
    assert sizes["16-true"] == sizes["bf16-true"] == pytest.approx(sizes["32-true"] / 2)
    assert sizes["bf16-mixed"] == sizes["32-true"]


def test_example_input_as_tuple_or_dict_is_unpacked() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            out: torch.Tensor = self.layer(x) * scale
            return out

    model = TwoInputs()
    model.example_input_array = (torch.zeros(4, 2), 2.0)  # type: ignore[assignment]
    assert ModelSummary(model).out_sizes == [[4, 3]]
    model.example_input_array = {"x": torch.zeros(5, 2), "scale": 3.0}  # type: ignore[assignment]
    assert ModelSummary(model).in_sizes == [[5, 2]]


def test_lazy_parameters_warn_and_count_zero() -> None:
    model = nn.Sequential(nn.LazyLinear(3))
    with pytest.warns(UserWarning, match="lazy layers"):
        summary = ModelSummary(model)
    assert summary.total_parameters == 0


def test_example_input_materializes_lazy_layers_without_warning() -> None:
    model = nn.Sequential(nn.LazyLinear(3))
    model.example_input_array = torch.zeros(1, 4)  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ModelSummary(model).total_parameters == 15


@pytest.mark.parametrize("max_depth", [-2, 1.5, "1", True])
def test_invalid_max_depth_is_rejected(max_depth: Any) -> None:
    with pytest.raises(ValueError, match="max_depth="):
        ModelSummary(nn.Linear(1, 1), max_depth=max_depth)


def test_summarize_returns_a_summary() -> None:
    summary = summarize(BoringModel(), max_depth=2)
    assert isinstance(summary, ModelSummary)
    assert repr(summary) == str(summary) == BORING_TABLE


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0, "0  "), (999, "999  "), (1000, "1.0 K"), (1050, "1.1 K"), (1999, "2.0 K"),
        (12345, "12.3 K"), (99950, "100.0 K"), (123999, "123 K"), (999999, "999 K"),
        (1_500_000, "1.5 M"), (10**9, "1.0 B"), (2 * 10**12, "2.0 T"), (10**15, "1,000 T"),
    ],
)  # fmt: skip
def test_human_readable_count(number: int, text: str) -> None:
    assert get_human_readable_count(number) == text


def test_formatting_helpers() -> None:
    assert get_formatted_model_size(1234.5678) == "1,234.568"
    assert get_formatted_model_size(0.0004) == "0.000"
    assert parse_batch_shape({"a": torch.zeros(1)}) == "?"
    assert parse_batch_shape(torch.tensor(1.0)) == []


@pytest.mark.parametrize("max_depth", [0, 1, 2, -1])
@pytest.mark.parametrize("with_example", [True, False])
def test_table_matches_lightning(max_depth: int, with_example: bool) -> None:
    lightning = pytest.importorskip("pytorch_lightning.utilities.model_summary")
    torch.manual_seed(0)
    ours = str(ModelSummary(_Net(with_example), max_depth=max_depth))
    torch.manual_seed(0)
    theirs = str(lightning.ModelSummary(_Net(with_example), max_depth=max_depth))
    assert ours == theirs


def test_boring_model_table_matches_lightning() -> None:
    boring = pytest.importorskip("pytorch_lightning.demos.boring_classes")
    lightning = pytest.importorskip("pytorch_lightning.utilities.model_summary")
    model = boring.BoringModel()
    model.example_input_array = torch.randn(2, 32)
    assert str(lightning.ModelSummary(model)) == BORING_TABLE_WITH_EXAMPLE
    assert str(lightning.ModelSummary(boring.BoringModel())) == BORING_TABLE


@pytest.mark.gpu
def test_example_input_moves_to_the_model_device() -> None:
    model = BoringModel().cuda()
    model.example_input_array = torch.randn(2, 32)
    summary = ModelSummary(model)
    assert summary.total_flops == 256
    assert summary.in_sizes == [[2, 32]]
