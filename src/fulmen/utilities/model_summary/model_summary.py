"""The model summary table: each layer's type, parameter count, mode, FLOPs and tensor sizes.

Sizes and FLOPs come from one forward pass over `model.example_input_array` (when it is set), run
in eval mode without gradients; the modules' train/eval modes are restored afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter
from torch.utils.hooks import RemovableHandle

from fulmen.utilities.apply_func import move_data_to_device
from fulmen.utilities.rank_zero import rank_zero_warn

__all__ = [
    "LayerSummary",
    "ModelSummary",
    "get_formatted_model_size",
    "get_human_readable_count",
    "parse_batch_shape",
    "summarize",
]

UNKNOWN_SIZE = "?"
NOT_APPLICABLE = "n/a"
LEFTOVER_PARAMS_NAME = "other params"
_UNITS = (" ", "K", "M", "B", "T")


def parse_batch_shape(batch: Any) -> str | list[Any]:
    """Return the shape of a tensor as a list, nested for lists and tuples, `"?"` for anything else.

    Example:
        >>> parse_batch_shape((torch.zeros(2, 3), [torch.zeros(4)], "text"))
        [[2, 3], [[4]], '?']
    """
    if isinstance(batch, Tensor):
        return list(batch.shape)
    if isinstance(batch, (list, tuple)):
        return [parse_batch_shape(item) for item in batch]
    return UNKNOWN_SIZE


def get_human_readable_count(number: int) -> str:
    """Abbreviate a count with K, M, B or T: one decimal below 100 of the unit, whole units above.

    Example:
        >>> [get_human_readable_count(n) for n in (66, 1234, 123_456, 2_500_000)]
        ['66  ', '1.2 K', '123 K', '2.5 M']
    """
    if number < 0:
        raise ValueError(f"get_human_readable_count(number={number!r}) needs a count >= 0.")
    # The unit is chosen by the number of digits, three per unit, with T as the largest.
    unit_index = min((len(str(int(number))) - 1) // 3, len(_UNITS) - 1)
    if unit_index == 0:
        return f"{int(number):,d} {_UNITS[0]}"
    scaled = number / 1000**unit_index
    if scaled >= 100:
        return f"{int(scaled):,d} {_UNITS[unit_index]}"
    return f"{scaled:,.1f} {_UNITS[unit_index]}"


def get_formatted_model_size(total_model_size: float) -> str:
    """Format a size in MB with three decimals and thousands separators.

    Example:
        >>> get_formatted_model_size(1234.5678)
        '1,234.568'
    """
    return f"{total_model_size:,.3f}"


def _count_parameters(parameters: Any) -> int:
    # A lazy module's parameters have no shape until its first forward; they count as 0.
    return sum(0 if isinstance(p, UninitializedParameter) else p.numel() for p in parameters)


class LayerSummary:
    """Describe one layer; its input and output sizes are recorded on its first forward call.

    Example:
        >>> layer = LayerSummary(nn.Linear(3, 2))
        >>> _ = layer._module(torch.zeros(4, 3))
        >>> layer.layer_type, layer.num_parameters, layer.in_size, layer.out_size
        ('Linear', 8, [4, 3], [4, 2])
    """

    def __init__(self, module: nn.Module) -> None:
        self._module = module
        self._in_size: str | list[Any] = UNKNOWN_SIZE
        self._out_size: str | list[Any] = UNKNOWN_SIZE
        self._hook_handle: RemovableHandle | None = module.register_forward_hook(
            self._record_sizes, with_kwargs=True
        )

    def __del__(self) -> None:
        self.detach_hook()

    def _record_sizes(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        inputs = [*args, *kwargs.values()]
        self._in_size = parse_batch_shape(inputs[0] if len(inputs) == 1 else inputs)
        self._out_size = parse_batch_shape(output)
        self.detach_hook()

    def detach_hook(self) -> None:
        """Stop recording sizes; called after the summary's forward pass."""
        if self._hook_handle is not None:
            self._hook_handle.remove()
            self._hook_handle = None

    @property
    def in_size(self) -> str | list[Any]:
        """The input shape(s) of the first call, or `"?"` if the layer was not called."""
        return self._in_size

    @property
    def out_size(self) -> str | list[Any]:
        """The output shape(s) of the first call, or `"?"` if the layer was not called."""
        return self._out_size

    @property
    def layer_type(self) -> str:
        """The layer's class name."""
        return type(self._module).__name__

    @property
    def num_parameters(self) -> int:
        """The number of parameter entries in the layer and its children."""
        return _count_parameters(self._module.parameters())

    @property
    def training(self) -> bool:
        """Whether the layer is in train mode."""
        return self._module.training


def _precision_bits(model: nn.Module) -> int:
    trainer = getattr(model, "_trainer", None)
    precision = str(getattr(trainer, "precision", "32-true"))
    # Mixed precision keeps the weights in float32; only "-true" precisions change their size.
    return {"64-true": 64, "64": 64, "16-true": 16, "bf16-true": 16}.get(precision, 32)


class ModelSummary:
    """Summarize the layers of `model` down to `max_depth` levels (-1: all, 0: none).

    `print(summary)` shows the table Lightning prints at the start of `fit`.

    Example:
        >>> summary = ModelSummary(nn.Sequential(nn.Linear(32, 2)))
        >>> summary.layer_names, summary.total_parameters
        (['0'], 66)
        >>> print(summary)  # doctest: +NORMALIZE_WHITESPACE
          | Name | Type   | Params | Mode  | FLOPs
        ------------------------------------------------
        0 | 0    | Linear | 66     | train | 0
        ------------------------------------------------
        66        Trainable params
        0         Non-trainable params
        66        Total params
        0.000     Total estimated model params size (MB)
        1         Modules in train mode
        0         Modules in eval mode
        0         Total Flops
    """

    def __init__(self, model: nn.Module, max_depth: int = 1) -> None:
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(
                f"ModelSummary(max_depth={max_depth!r}) is invalid: expected -1 (all levels), "
                "0 (no layers) or a positive int."
            )
        self._model = model
        self._max_depth = max_depth
        self._flop_counts: dict[str, dict[Any, int]] = {}
        self._total_flops = 0
        self._precision_megabytes = _precision_bits(model) / 8 * 1e-6
        self._layer_summary = self.summarize()

    @property
    def named_modules(self) -> list[tuple[str, nn.Module]]:
        """The summarized layers with their qualified names, in registration order."""
        if self._max_depth == 0:
            return []
        if self._max_depth == 1:
            return list(self._model.named_children())
        return [
            (name, module)
            for name, module in self._model.named_modules()
            if name and (self._max_depth == -1 or name.count(".") < self._max_depth)
        ]

    @property
    def layer_names(self) -> list[str]:
        return list(self._layer_summary)

    @property
    def layer_types(self) -> list[str]:
        return [layer.layer_type for layer in self._layer_summary.values()]

    @property
    def in_sizes(self) -> list[Any]:
        return [layer.in_size for layer in self._layer_summary.values()]

    @property
    def out_sizes(self) -> list[Any]:
        return [layer.out_size for layer in self._layer_summary.values()]

    @property
    def param_nums(self) -> list[int]:
        return [layer.num_parameters for layer in self._layer_summary.values()]

    @property
    def training_modes(self) -> list[bool]:
        return [layer.training for layer in self._layer_summary.values()]

    @property
    def total_training_modes(self) -> dict[str, int]:
        """How many submodules (all depths, the model itself excluded) are in train and eval mode."""
        modes = [module.training for name, module in self._model.named_modules() if name]
        return {"train": modes.count(True), "eval": modes.count(False)}

    @property
    def total_parameters(self) -> int:
        return _count_parameters(self._model.parameters())

    @property
    def trainable_parameters(self) -> int:
        return _count_parameters(p for p in self._model.parameters() if p.requires_grad)

    @property
    def total_layer_params(self) -> int:
        return sum(self.param_nums)

    @property
    def model_size(self) -> float:
        """The parameters' size in MB (10**6 bytes) at the trainer's precision (default 32-bit)."""
        return self.total_parameters * self._precision_megabytes

    @property
    def flop_counts(self) -> dict[str, dict[Any, int]]:
        """FLOPs per layer and operator, from the forward over `example_input_array`."""
        return self._flop_counts

    @property
    def total_flops(self) -> int:
        """FLOPs of one forward over `example_input_array`; 0 when it is not set."""
        return self._total_flops

    def summarize(self) -> dict[str, LayerSummary]:
        """Build the per-layer summaries, running the example forward pass if there is one."""
        layers = {name: LayerSummary(module) for name, module in self.named_modules}
        if getattr(self._model, "example_input_array", None) is not None:
            self._forward_example_input()
        for layer in layers.values():
            layer.detach_hook()
        if any(isinstance(p, UninitializedParameter) for p in self._model.parameters()):
            rank_zero_warn(
                "The model has lazy layers whose parameters do not exist yet, so the parameter "
                "counts in its summary are too low. Set `example_input_array` on the model so that "
                "the summary runs a forward pass that creates them."
            )
        return layers

    def _forward_example_input(self) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        model = self._model
        example = getattr(model, "example_input_array", None)
        device = next((p.device for p in model.parameters() if p.device.type != "meta"), None)
        if device is not None:
            example = move_data_to_device(example, device)
        trainer = getattr(model, "_trainer", None)
        precision_plugin = getattr(trainer, "precision_plugin", None)
        forward_context = getattr(precision_plugin, "forward_context", contextlib.nullcontext)
        modes = {module: module.training for module in model.modules()}
        model.eval()
        counter = FlopCounterMode(display=False)
        try:
            with torch.no_grad(), forward_context(), counter:
                if isinstance(example, (list, tuple)):
                    model(*example)
                elif isinstance(example, dict):
                    model(**example)
                else:
                    model(example)
        finally:
            # Set each flag directly: `.train()` would overwrite the children's own modes.
            for module, training in modes.items():
                module.training = training
        # The counter names modules "<ModelClass>.<qualified name>".
        counts = counter.get_flop_counts()
        root = type(model).__name__
        self._flop_counts = {
            name: dict(counts.get(f"{root}.{name}", {})) for name, _ in self.named_modules
        }
        self._total_flops = counter.get_total_flops()

    def _get_summary_data(self) -> list[tuple[str, list[str]]]:
        """Return the table's columns as (header, cells), including the "other params" row."""
        layer_flops = [sum(self._flop_counts.get(name, {}).values()) for name in self.layer_names]
        columns = [
            (" ", [str(i) for i in range(len(self._layer_summary))]),
            ("Name", self.layer_names),
            ("Type", self.layer_types),
            ("Params", [get_human_readable_count(n) for n in self.param_nums]),
            ("Mode", ["train" if mode else "eval" for mode in self.training_modes]),
            ("FLOPs", [get_human_readable_count(n) for n in layer_flops]),
        ]
        has_sizes = getattr(self._model, "example_input_array", None) is not None
        if has_sizes:
            columns.append(("In sizes", [str(size) for size in self.in_sizes]))
            columns.append(("Out sizes", [str(size) for size in self.out_sizes]))
        # Parameters owned by the model itself rather than by a listed layer. With max_depth > 1
        # nested layers are counted twice, so the sum exceeds the total and no row is added.
        leftover = self.total_parameters - self.total_layer_params
        if leftover > 0:
            extra = {
                "Name": LEFTOVER_PARAMS_NAME,
                "Params": get_human_readable_count(leftover),
                " ": "",
            }
            columns = [
                (header, [*cells, extra.get(header, NOT_APPLICABLE)]) for header, cells in columns
            ]
        return columns

    def __str__(self) -> str:
        return _format_summary_table(
            self._get_summary_data(),
            self.total_parameters,
            self.trainable_parameters,
            self.model_size,
            self.total_training_modes,
            self.total_flops,
        )

    def __repr__(self) -> str:
        return str(self)


def _format_summary_table(
    summary_data: list[tuple[str, list[str]]],
    total_parameters: int,
    trainable_parameters: int,
    model_size: float,
    total_training_modes: dict[str, int],
    total_flops: int,
) -> str:
    """Lay out the columns as a text table followed by the totals, one per line."""
    widths = [max([len(header), *(len(cell) for cell in cells)]) for header, cells in summary_data]
    n_rows = len(summary_data[0][1]) if summary_data else 0

    def line(cells: list[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths))

    header = line([header for header, _ in summary_data])
    rule = "-" * (len(header) + 6)
    rows = [line([cells[i] for _, cells in summary_data]) for i in range(n_rows)]
    totals = [
        (get_human_readable_count(trainable_parameters), "Trainable params"),
        (get_human_readable_count(total_parameters - trainable_parameters), "Non-trainable params"),
        (get_human_readable_count(total_parameters), "Total params"),
        (get_formatted_model_size(model_size), "Total estimated model params size (MB)"),
        (str(total_training_modes["train"]), "Modules in train mode"),
        (str(total_training_modes["eval"]), "Modules in eval mode"),
        (get_human_readable_count(total_flops), "Total Flops"),
    ]
    lines = [header, rule, *rows, rule, *(f"{value:<10}{label}" for value, label in totals)]
    return "\n".join(lines)


def summarize(lightning_module: nn.Module, max_depth: int = 1) -> ModelSummary:
    """Return the `ModelSummary` of a module (print it to see the table).

    Example:
        >>> summarize(nn.Sequential(nn.Linear(2, 2), nn.ReLU())).param_nums
        [6, 0]
    """
    return ModelSummary(lightning_module, max_depth=max_depth)
