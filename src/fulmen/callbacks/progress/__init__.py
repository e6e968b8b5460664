"""Progress bars: the `ProgressBar` base, `TQDMProgressBar` (default) and `RichProgressBar`."""

from __future__ import annotations

from fulmen.callbacks.progress.progress_bar import ProgressBar
from fulmen.callbacks.progress.rich_progress import RichProgressBar
from fulmen.callbacks.progress.tqdm_progress import TQDMProgressBar

__all__ = ["ProgressBar", "RichProgressBar", "TQDMProgressBar"]
