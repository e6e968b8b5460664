"""Settings for the autoencoder example: edit them here, or override some from the command line."""

from __future__ import annotations

SEED = 7

# Of the 1797 digits, this fraction is held out for validation; the rest trains.
VAL_FRACTION = 0.15
BATCH_SIZE = 64
NUM_WORKERS = 0

# 64 pixels squeezed through an 8-number code and back.
HIDDEN_DIM = 128
CODE_DIM = 8
LR = 2e-3

MAX_EPOCHS = 20
# How many validation digits are drawn, original above reconstruction, after every validation.
NUM_IMAGES = 16

LOG_EVERY_N_STEPS = 10
OUTPUT_DIR = "runs/autoencoder"
