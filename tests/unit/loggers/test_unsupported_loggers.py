from __future__ import annotations

import inspect

import pytest

from fulmen.loggers import CometLogger, LitLogger, Logger
from fulmen.utilities.exceptions import MisconfigurationException

UNSUPPORTED = [CometLogger, LitLogger]


@pytest.mark.parametrize("logger_class", UNSUPPORTED, ids=lambda cls: cls.__name__)
def test_unsupported_logger_raises_naming_itself_and_the_alternatives(logger_class: type) -> None:
    assert issubclass(logger_class, Logger)
    message = (
        f"`{logger_class.__name__}` is not supported yet in fulmen (planned in the logging issue); "
        "use TensorBoardLogger or CSVLogger."
    )
    with pytest.raises(MisconfigurationException) as error:
        logger_class()
    assert str(error.value) == message


def test_unsupported_logger_still_rejects_unknown_arguments() -> None:
    with pytest.raises(TypeError):
        CometLogger("positional-api-key")  # type: ignore[abstract, misc]


@pytest.mark.compat
@pytest.mark.parametrize("logger_class", UNSUPPORTED, ids=lambda cls: cls.__name__)
def test_unsupported_logger_has_lightnings_signature(logger_class: type) -> None:
    lightning_loggers = pytest.importorskip("pytorch_lightning.loggers")
    theirs = inspect.signature(getattr(lightning_loggers, logger_class.__name__))
    ours = inspect.signature(logger_class)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]
