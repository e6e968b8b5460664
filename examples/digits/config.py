"""Settings for the digits example: edit them here, or override some from the command line."""

from __future__ import annotations

SEED = 42

# Fractions of the 1797 images held out; the rest (70%) is the training set.
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15

BATCH_SIZE = 64
NUM_WORKERS = 0

HIDDEN_DIM = 256
DROPOUT = 0.2
LR = 1e-3
WEIGHT_DECAY = 1e-4

MAX_EPOCHS = 30
PATIENCE = 5
# Halve the learning rate when val_loss has not improved for this many epochs.
LR_PATIENCE = 2
LR_FACTOR = 0.5

# About 20 training batches per epoch, so log more often than Lightning's default of 50 steps.
LOG_EVERY_N_STEPS = 10

OUTPUT_DIR = "runs/digits"
MIN_TEST_ACCURACY = 0.95
