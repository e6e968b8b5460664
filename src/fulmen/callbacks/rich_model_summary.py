"""The model summary drawn as a `rich` table (needs `pip install rich`)."""

from __future__ import annotations

import importlib.util
from typing import Any

from fulmen.callbacks.model_summary import ModelSummary
from fulmen.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)

__all__ = ["RichModelSummary"]


class RichModelSummary(ModelSummary):
    """Print the model summary at the start of `fit` as a `rich` table.

    Args:
        max_depth: layers down to this depth are listed (-1: all, 0: no summary).
        summarize_kwargs: `header_style`, the `rich` style of the header row ("bold magenta").

    Example:
        >>> try:
        ...     callback = RichModelSummary(max_depth=2)
        ... except ModuleNotFoundError as missing:
        ...     print("pip install rich" in str(missing))
        ... else:
        ...     print(True)
        True
    """

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        if importlib.util.find_spec("rich") is None:
            raise ModuleNotFoundError(
                "RichModelSummary draws its table with `rich`, which is not installed. "
                "Run `pip install rich`, or use `fulmen.callbacks.ModelSummary` instead."
            )
        super().__init__(max_depth, **summarize_kwargs)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        """Print the summary as a box table, then its totals, to the `rich` console."""
        from rich import get_console
        from rich.table import Table

        header_style: str = summarize_kwargs.get("header_style", "bold magenta")
        table = Table(header_style=header_style)
        for header, _ in summary_data:
            # Numbers and shapes line up on the right, names on the left.
            numeric = header in ("Params", "FLOPs", "In sizes", "Out sizes")
            table.add_column(header, justify="right" if numeric else "left")
        for row in zip(*(cells for _, cells in summary_data)):
            table.add_row(*row)

        totals = [
            ("Trainable params", get_human_readable_count(trainable_parameters)),
            (
                "Non-trainable params",
                get_human_readable_count(total_parameters - trainable_parameters),
            ),
            ("Total params", get_human_readable_count(total_parameters)),
            ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
            ("Modules in train mode", str(total_training_modes["train"])),
            ("Modules in eval mode", str(total_training_modes["eval"])),
            ("Total FLOPs", get_human_readable_count(total_flops)),
        ]
        grid = Table.grid(expand=True)
        grid.add_column()
        for label, value in totals:
            grid.add_row(f"[bold]{label}[/]: {value.strip()}")
        console = get_console()
        console.print(table)
        console.print(grid)
