"""A small GAN trained with manual optimization: two optimizers, stepped in turn on each batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fulmen import LightningModule


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, outputs),
    )


class GAN(LightningModule):
    """Learn to draw points like the real ones; `modes` are the real clusters' centres."""

    def __init__(
        self,
        modes: Tensor,
        mode_std: float = 0.05,
        latent_dim: int = 8,
        hidden_dim: int = 64,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["modes"])
        # Two players with separate optimizers, so the Trainer must not step them itself.
        self.automatic_optimization = False
        self.generator = _mlp(latent_dim, hidden_dim, 2)
        self.discriminator = _mlp(2, hidden_dim, 1)
        # A buffer moves to the device with the module and is saved in checkpoints.
        self.modes: Tensor
        self.register_buffer("modes", modes)

    def forward(self, z: Tensor) -> Tensor:
        points: Tensor = self.generator(z)
        return points

    def training_step(self, batch: tuple[Tensor], batch_idx: int) -> None:
        (real,) = batch
        opt_g, opt_d = self.optimizers()  # type: ignore[misc,attr-defined]
        z = torch.randn(real.size(0), self.hparams.latent_dim, device=self.device)
        ones = torch.ones(real.size(0), 1, device=self.device)
        zeros = torch.zeros_like(ones)

        # Generator: make the discriminator call the fakes real. Toggling freezes the
        # discriminator's parameters, so this backward pass computes no gradients for them.
        self.toggle_optimizer(opt_g)
        fake = self(z)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        self.manual_backward(g_loss)
        opt_g.step()
        opt_g.zero_grad()
        self.untoggle_optimizer(opt_g)

        # Discriminator: tell real from fake. `detach` keeps this loss out of the generator.
        self.toggle_optimizer(opt_d)
        real_loss = F.binary_cross_entropy_with_logits(self.discriminator(real), ones)
        fake_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros)
        d_loss = (real_loss + fake_loss) / 2
        self.manual_backward(d_loss)
        opt_d.step()
        opt_d.zero_grad()
        self.untoggle_optimizer(opt_d)

        self.log_dict({"g_loss": g_loss, "d_loss": d_loss}, prog_bar=True)

    def on_train_epoch_end(self) -> None:
        # How good are the samples? `quality`: the share of generated points within 3 standard
        # deviations of a real cluster; `modes_covered`: clusters that got at least 2% of them.
        with torch.no_grad():
            samples = self(torch.randn(2000, self.hparams.latent_dim, device=self.device))
        distances = torch.cdist(samples, self.modes)
        nearest, which = distances.min(dim=1)
        close = nearest < 3 * self.hparams.mode_std
        counts = torch.bincount(which[close], minlength=len(self.modes))
        self.log("quality", close.float().mean(), prog_bar=True)
        self.log("modes_covered", (counts >= 0.02 * len(samples)).sum().float(), prog_bar=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr, betas = self.hparams.lr, tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        return [opt_g, opt_d]
