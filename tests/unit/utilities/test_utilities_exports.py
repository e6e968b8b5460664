from __future__ import annotations

import pytest

import fulmen.utilities


def test_utilities_export_the_names_lightning_exports() -> None:
    lightning = pytest.importorskip("pytorch_lightning.utilities")
    assert sorted(fulmen.utilities.__all__) == sorted(lightning.__all__)
    for name in fulmen.utilities.__all__:
        assert getattr(fulmen.utilities, name) is not None
