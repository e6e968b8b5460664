"""Settings for the GAN example: edit them here, or override some from the command line."""

from __future__ import annotations

SEED = 3

# The real data: points around NUM_MODES small clusters evenly spaced on a circle.
NUM_MODES = 8
RADIUS = 2.0
MODE_STD = 0.05
NUM_SAMPLES = 8192
BATCH_SIZE = 128

LATENT_DIM = 8
HIDDEN_DIM = 64
# Adam with beta1 = 0.5, the usual choice for GANs: less momentum keeps the two players stable.
LR = 1e-3
BETAS = (0.5, 0.999)

MAX_EPOCHS = 32
LOG_EVERY_N_STEPS = 10
OUTPUT_DIR = "runs/gan"
