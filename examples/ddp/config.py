"""Settings for the DDP example: edit them here, or override some from the command line."""

from __future__ import annotations

SEED = 11

# Two processes on the CPU (gloo backend), so the example runs on any machine. On a machine with
# GPUs, set ACCELERATOR = "gpu" and DEVICES to the number of GPUs.
ACCELERATOR = "cpu"
DEVICES = 2
STRATEGY = "ddp"

NUM_FEATURES = 20
NUM_CLASSES = 4
NUM_TRAIN = 4096
NUM_VAL = 1024
# Per process: with 2 processes, each optimizer step sees 2 x 64 samples.
BATCH_SIZE = 64

HIDDEN_DIM = 64
LR = 1e-2
MAX_EPOCHS = 5
LOG_EVERY_N_STEPS = 10
OUTPUT_DIR = "runs/ddp"
