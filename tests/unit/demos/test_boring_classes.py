from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset

from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule
from fulmen.demos import BoringDataModule, BoringModel, DemoModel
from fulmen.demos.boring_classes import (
    BoringDataModuleNoLen,
    Net,
    RandomDataset,
    RandomDictDataset,
    RandomIterableDataset,
    RandomIterableDatasetWithLen,
)


def test_random_datasets_have_the_asked_shape() -> None:
    dataset = RandomDataset(4, 3)
    assert len(dataset) == 3
    assert dataset[2].shape == (4,)
    item = RandomDictDataset(4, 3)[0]
    assert torch.allclose(item["b"], item["a"] + 2)
    assert [x.shape for x in RandomIterableDataset(4, 3)] == [torch.Size([4])] * 3
    assert (
        len(RandomIterableDatasetWithLen(4, 5))
        == len(list(RandomIterableDatasetWithLen(4, 5)))
        == 5
    )
    with pytest.raises(TypeError):
        len(RandomIterableDataset(4, 3))  # type: ignore[arg-type]


def test_boring_model_steps_return_lightnings_keys() -> None:
    model = BoringModel()
    assert isinstance(model, LightningModule)
    batch = torch.randn(2, 32)
    expected = torch.nn.functional.mse_loss(model(batch), torch.ones(2, 2))
    assert torch.equal(model.training_step(batch, 0)["loss"], expected)  # type: ignore[index]
    assert torch.equal(model.validation_step(batch, 0)["x"], expected)  # type: ignore[index]
    assert torch.equal(model.test_step(batch, 0)["y"], expected)  # type: ignore[index]
    assert model.loss(torch.ones(3, 2)).item() == 0.0


def test_boring_model_optimizer_and_dataloaders() -> None:
    model = BoringModel()
    (optimizer,), (scheduler,) = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.1
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert (scheduler.step_size, scheduler.gamma) == (1, 0.1)
    for loader in (
        model.train_dataloader(),
        model.val_dataloader(),
        model.test_dataloader(),
        model.predict_dataloader(),
    ):
        assert isinstance(loader.dataset, RandomDataset)
        assert loader.dataset.data.shape == (64, 32)
        assert loader.batch_size == 1
        assert len(loader) == 64


def test_boring_data_module_splits_256_samples_by_stage() -> None:
    dm = BoringDataModule()
    assert isinstance(dm, LightningDataModule)
    dm.setup("fit")
    dm.setup("test")
    dm.setup("predict")
    subsets = [dm.random_train, dm.random_val, dm.random_test, dm.random_predict]
    assert all(isinstance(s, Subset) for s in subsets)
    assert [s.indices for s in subsets] == [
        range(0, 64),
        range(64, 128),
        range(128, 192),
        range(192, 256),
    ]
    assert [
        len(dl)
        for dl in (
            dm.train_dataloader(),
            dm.val_dataloader(),
            dm.test_dataloader(),
            dm.predict_dataloader(),
        )
    ] == [64] * 4
    validate_only = BoringDataModule()
    validate_only.setup("validate")
    assert hasattr(validate_only, "random_val") and not hasattr(validate_only, "random_train")


def test_boring_data_module_without_length_streams_each_split() -> None:
    dm = BoringDataModuleNoLen()
    dm.setup("fit")
    assert isinstance(dm.train_dataloader().dataset, RandomIterableDataset)
    assert sum(1 for _ in dm.val_dataloader()) == 128


def test_demo_model_and_net_shapes() -> None:
    model = DemoModel(out_dim=3, learning_rate=0.5)
    out = model(torch.randn(5, 4, 8))
    assert out.shape == (5, 3) and bool((out >= 0).all())
    loss = model.training_step(torch.randn(5, 32), 0)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.5
    log_probs = Net().eval()(torch.randn(2, 1, 28, 28))
    assert torch.allclose(log_probs.exp().sum(dim=1), torch.ones(2))


def test_boring_model_structure_matches_lightning() -> None:
    boring = pytest.importorskip("pytorch_lightning.demos.boring_classes")
    ours, theirs = BoringModel(), boring.BoringModel()
    assert repr(ours) == repr(theirs)
    theirs.load_state_dict(ours.state_dict())
    batch = torch.randn(3, 32)
    assert torch.equal(ours.step(batch), theirs.step(batch))
    assert repr(Net()) == repr(boring.Net())
    assert repr(DemoModel()) == repr(boring.DemoModel())
