"""`to_torchscript` and `to_onnx`: the saved model computes what the eager model computes."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from fulmen import LightningModule

# Torch 2.9+ deprecates TorchScript (and the TorchScript-based ONNX exporter) in favour of
# torch.export; the warnings are torch's, about the technique the user chose.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]


class Classifier(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        self.example_input_array = torch.randn(4, 8)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).softmax(dim=-1)


class TwoInputs(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Linear(3, 2), nn.Linear(5, 2)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        return self.left(a) + self.right(b), self.left(a)


class Noisy(Classifier):
    """Adds fresh noise on every call, so no export can reproduce its outputs."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + torch.rand(x.shape[0], 3)


def eager(model: LightningModule, *inputs: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(*inputs)


@pytest.mark.parametrize("method", ["script", "trace"])
def test_saved_torchscript_computes_the_eager_outputs(tmp_path: Path, method: str) -> None:
    model = Classifier()
    path = tmp_path / "model.pt"
    model.to_torchscript(path, method=method)
    assert model.training  # the mode the module was in comes back
    loaded = torch.jit.load(str(path))
    x = torch.randn(6, 8)
    torch.testing.assert_close(loaded(x), eager(model, x))


def test_trace_uses_example_inputs_before_example_input_array() -> None:
    model = TwoInputs()
    a, b = torch.randn(2, 3), torch.randn(2, 5)
    traced = model.to_torchscript(method="trace", example_inputs=(a, b))
    for got, want in zip(traced(a, b), eager(model, a, b)):
        torch.testing.assert_close(got, want)


def test_torchscript_refuses_an_unknown_method_and_a_trace_without_inputs() -> None:
    with pytest.raises(ValueError, match="method='compile'"):
        Classifier().to_torchscript(method="compile")  # type: ignore[arg-type]
    model = TwoInputs()
    with pytest.raises(ValueError, match="example_inputs"):
        model.to_torchscript(method="trace")


onnx_needed = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript", "onnxruntime")),
    reason="needs onnx, onnxscript and onnxruntime (`pip install fulmen[onnx]`)",
)


def run_onnx(path_or_bytes: str | bytes, *inputs: Tensor) -> list[Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    return [torch.from_numpy(out) for out in outputs]


@onnx_needed
def test_saved_onnx_computes_the_eager_outputs(tmp_path: Path) -> None:
    model = Classifier()
    path = tmp_path / "model.onnx"
    model.to_onnx(path, verbose=False)
    assert model.training
    (got,) = run_onnx(str(path), model.example_input_array)
    torch.testing.assert_close(got, eager(model, model.example_input_array))


@onnx_needed
def test_onnx_with_two_inputs_and_two_outputs(tmp_path: Path) -> None:
    model = TwoInputs()
    a, b = torch.randn(2, 3), torch.randn(2, 5)
    model.to_onnx(tmp_path / "model.onnx", (a, b), verbose=False)
    for got, want in zip(run_onnx(str(tmp_path / "model.onnx"), a, b), eager(model, a, b)):
        torch.testing.assert_close(got, want)


@onnx_needed
def test_onnx_without_a_path_returns_the_program() -> None:
    model = Classifier()
    program = model.to_onnx(verbose=False)
    (got,) = run_onnx(program.model_proto.SerializeToString(), model.example_input_array)
    torch.testing.assert_close(got, eager(model, model.example_input_array))


@onnx_needed
def test_legacy_onnx_exporter_into_a_buffer() -> None:
    model = Classifier()
    buffer = io.BytesIO()
    model.to_onnx(buffer, dynamo=False)
    (got,) = run_onnx(buffer.getvalue(), model.example_input_array)
    torch.testing.assert_close(got, eager(model, model.example_input_array))


@onnx_needed
def test_onnx_export_that_differs_from_the_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"output 0 of the exported graph differs by up to"):
        Noisy().to_onnx(tmp_path / "noisy.onnx", verbose=False)
    Noisy().to_onnx(tmp_path / "unchecked.onnx", check_outputs=False, verbose=False)
    assert (tmp_path / "unchecked.onnx").is_file()


@onnx_needed
def test_onnx_needs_a_sample() -> None:
    with pytest.raises(ValueError, match="input_sample"):
        TwoInputs().to_onnx(verbose=False)
