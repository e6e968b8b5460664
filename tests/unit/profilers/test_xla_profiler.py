from __future__ import annotations

import pytest

from fulmen.profilers import Profiler, XLAProfiler
from fulmen.utilities.exceptions import MisconfigurationException


def test_xla_profiler_raises_because_fulmen_does_not_run_on_xla() -> None:
    assert issubclass(XLAProfiler, Profiler)
    with pytest.raises(MisconfigurationException, match=r"XLAProfiler\(port=9100\).*XLA/TPU"):
        XLAProfiler(port=9100)  # type: ignore[abstract]
