"""Learning-rate and batch-size tuning."""

from fulmen.tuner.tuning import Tuner

__all__ = ["Tuner"]
