"""WandbLogger against a real `wandb` in offline mode, read back from the run file it writes."""

from __future__ import annotations

import glob
import importlib.util
import inspect
import json
import pickle
import struct
import time
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.loggers import WandbLogger
from fulmen.loggers.logger import DummyExperiment
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_only


@pytest.fixture
def wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`wandb` in offline mode, with every folder it writes inside the test's tmp_path."""
    module = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    yield module
    if module.run is not None:
        module.finish()


def _records(save_dir: Path, run_id: str) -> list[Any]:
    """Return the records of the offline run file: a LevelDB-style log of protobuf records.

    `wandb.finish()` can return before its service has written the file, so this waits (up to
    30 s) for the closing `exit` record.
    """
    (path,) = glob.glob(str(save_dir / "wandb" / "offline-run-*" / f"run-{run_id}.wandb"))
    deadline = time.monotonic() + 30
    records = _parse_run_file(Path(path).read_bytes())
    while not records or records[-1].WhichOneof("record_type") != "exit":
        assert time.monotonic() < deadline, f"{path} has no exit record"
        time.sleep(0.05)
        records = _parse_run_file(Path(path).read_bytes())
    return records


def _parse_run_file(data: bytes) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    assert data[:4] == b":W&B"
    block_size, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(data):
        left_in_block = block_size - position % block_size
        if left_in_block < 7:  # too small for a header: padding up to the next block
            position += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if position + 7 + length > len(data):  # still being written
            break
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _finish_and_read(wandb: Any, logger: WandbLogger, save_dir: Path) -> dict[str, Any]:
    """Close the run; return its history rows (user keys only), config, artifacts, metrics."""
    run_id = logger.version
    assert run_id is not None
    wandb.finish()
    history, config, artifacts, metrics = [], {}, [], []
    for record in _records(save_dir, run_id):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
            history.append({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "config":
            for item in record.config.update:
                if item.key != "_wandb":
                    config[item.key] = json.loads(item.value_json)
        elif kind == "metric":
            metrics.append(
                (record.metric.name or record.metric.glob_name, record.metric.step_metric)
            )
        elif kind == "artifact" and record.artifact.type == "model":
            artifacts.append(record.artifact)
    return {"history": history, "config": config, "artifacts": artifacts, "metrics": metrics}


def _checkpoint_callback(tmp_path: Path, names: list[str], best: str) -> SimpleNamespace:
    paths = {}
    for score, name in enumerate(names):
        path = tmp_path / name
        path.write_bytes(b"weights of " + name.encode())
        paths[str(path)] = torch.tensor(float(score))
    return SimpleNamespace(
        last_model_path=str(tmp_path / names[-1]),
        current_score=torch.tensor(float(len(names) - 1)),
        best_model_path=str(tmp_path / best),
        best_model_score=paths[str(tmp_path / best)],
        best_k_models=paths,
        save_top_k=1,
        monitor="val_loss",
        mode="min",
        save_last=None,
        save_weights_only=False,
    )


def test_missing_wandb_raises_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "wandb" else find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install wandb.*fulmen\[wandb\]"):
        WandbLogger()


def test_offline_with_log_model_is_rejected(wandb: Any) -> None:
    with pytest.raises(MisconfigurationException, match="log_model=True, offline=True"):
        WandbLogger(offline=True, log_model=True)


@pytest.mark.parametrize(
    ("argument", "value"), [("log_model", "best"), ("add_file_policy", "copy")]
)
def test_invalid_choice_arguments_are_rejected(wandb: Any, argument: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"WandbLogger\({argument}='{value}'\) is invalid"):
        WandbLogger(**{argument: value})  # type: ignore[arg-type]


def test_name_is_the_project_and_version_the_run_id(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path, version="given-id")
    assert (logger.name, logger.version, logger.save_dir) == (
        "lightning_logs",
        "given-id",
        str(tmp_path),
    )
    assert wandb.run is None  # nothing is started before first use

    logger = WandbLogger(save_dir=tmp_path, project="proj", name="display")
    assert logger.version is None
    run = logger.experiment
    assert (logger.name, logger.version, run.project, run.name) == (
        "proj",
        run.id,
        "proj",
        "display",
    )
    assert run is wandb.run


def test_project_comes_from_the_environment_when_not_given(
    wandb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    assert WandbLogger().name == "from-env"


def test_dir_is_used_only_without_save_dir(wandb: Any, tmp_path: Path) -> None:
    assert WandbLogger(save_dir=None, dir=tmp_path / "d").save_dir == str(tmp_path / "d")
    assert WandbLogger(save_dir=tmp_path / "s", dir=tmp_path / "d").save_dir == str(tmp_path / "s")


def test_metrics_are_logged_with_trainer_global_step_and_prefix(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path, prefix="train")
    logger.log_metrics({"loss": 0.5, "acc": torch.tensor(0.25)}, step=3)
    logger.log_metrics({"loss": 0.125})
    history = _finish_and_read(wandb, logger, tmp_path)["history"]
    assert history == [
        {"train-loss": 0.5, "train-acc": 0.25, "trainer/global_step": 3},
        # W&B repeats the last step value in rows logged without one (step_sync).
        {"train-loss": 0.125, "trainer/global_step": 3},
    ]


def test_trainer_global_step_is_the_x_axis_of_every_metric(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    assert _finish_and_read(wandb, logger, tmp_path)["metrics"] == [
        ("trainer/global_step", ""),
        ("*", "trainer/global_step"),
    ]


def test_hyperparameters_go_to_the_config_as_json(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_hyperparams(
        {
            "lr": 0.1,
            "nested": {"depth": 2, "act": torch.nn.ReLU},
            "namespace": Namespace(momentum=torch.tensor(0.9)),
            "loss_fn": len,
            "path": Path("data"),
            "layers": (64, 32),
        }
    )
    logger.log_hyperparams(Namespace(lr=0.2))
    config = _finish_and_read(wandb, logger, tmp_path)["config"]
    assert config == {
        "lr": 0.2,
        "nested": {"depth": 2, "act": "ReLU"},
        "namespace": {"momentum": pytest.approx(0.9)},
        "loss_fn": "len",
        "path": "data",
        "layers": [64, 32],
    }


def test_an_open_run_is_reused_with_a_warning(wandb: Any, tmp_path: Path) -> None:
    run = wandb.init(dir=str(tmp_path), project="mine")
    logger = WandbLogger(save_dir=tmp_path)
    with pytest.warns(UserWarning, match="wandb run already in progress"):
        assert logger.experiment is run
    assert logger.version == run.id


def test_a_given_experiment_is_used_as_is(wandb: Any) -> None:
    calls: list[Any] = []
    experiment = SimpleNamespace(id="abc", log=calls.append)
    logger = WandbLogger(experiment=experiment)
    logger.log_metrics({"loss": 1.0}, step=7)
    assert logger.version == "abc"
    assert calls == [{"loss": 1.0, "trainer/global_step": 7}]
    assert wandb.run is None


def test_use_artifact_asks_the_run_for_it(wandb: Any) -> None:
    used: list[tuple[str, str | None]] = []

    def use_artifact(name: str, type: str | None = None) -> str:
        used.append((name, type))
        return name

    experiment = SimpleNamespace(use_artifact=use_artifact)
    logger = WandbLogger(experiment=experiment)
    assert (
        logger.use_artifact("team/proj/model-1:best", artifact_type="model")
        == "team/proj/model-1:best"
    )
    assert used == [("team/proj/model-1:best", "model")]


def test_images_tables_and_text_are_logged_as_wandb_media(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    images = [torch.zeros(3, 4, 5), torch.ones(3, 4, 5)]
    logger.log_image("samples", images, step=1, caption=["zeros", "ones"])
    logger.log_table("scores", columns=["name", "score"], data=[["a", 1], ["b", 2]], step=2)
    logger.log_text("notes", columns=["text"], data=[["hello"]], step=3)
    history = _finish_and_read(wandb, logger, tmp_path)["history"]
    image_row, table_row, text_row = history
    assert image_row["samples/_type"] == "images/separated"
    assert image_row["samples/captions"] == ["zeros", "ones"]
    assert (
        image_row["samples/count"],
        image_row["samples/width"],
        image_row["samples/height"],
    ) == (2, 5, 4)
    assert image_row["trainer/global_step"] == 1
    assert (table_row["scores/_type"], table_row["scores/nrows"], table_row["scores/ncols"]) == (
        "table-file",
        2,
        2,
    )
    table = json.loads(
        Path(
            glob.glob(str(tmp_path / "wandb/offline-run-*/files" / table_row["scores/path"]))[0]
        ).read_text()
    )
    assert (table["columns"], table["data"]) == (["name", "score"], [["a", 1], ["b", 2]])
    assert (text_row["notes/_type"], text_row["trainer/global_step"]) == ("table-file", 3)


def test_media_arguments_are_checked(wandb: Any) -> None:
    logger = WandbLogger()
    with pytest.raises(TypeError, match="Expected a list as 'images', got Tensor"):
        logger.log_image("samples", torch.zeros(3, 4, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Expected 2 items for 'caption'.*got 1"):
        logger.log_image("samples", [torch.zeros(3, 4, 4)] * 2, caption=["only one"])
    assert wandb.run is None  # checked before the run is started


def test_watch_logs_gradients_and_parameters(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    model = torch.nn.Linear(2, 1)
    logger.watch(model, log="all", log_freq=1)
    model(torch.randn(4, 2)).sum().backward()
    logger.log_metrics({"loss": 1.0}, step=0)
    (row,) = _finish_and_read(wandb, logger, tmp_path)["history"]
    assert {"gradients/weight/_type", "parameters/weight/_type", "gradients/bias/_type"} <= set(row)


def test_log_model_all_uploads_each_new_checkpoint_once(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model="all", add_file_policy="immutable")
    callback = _checkpoint_callback(tmp_path, ["epoch=0.ckpt"], best="epoch=0.ckpt")
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type]
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type]
    (artifact,) = _finish_and_read(wandb, logger, tmp_path)["artifacts"]
    assert artifact.name == f"model-{logger.version}"
    assert sorted(artifact.aliases) == ["best", "latest"]
    assert [entry.path for entry in artifact.manifest.contents] == ["model.ckpt"]
    assert json.loads(artifact.metadata) == {
        "score": 0.0,
        "original_filename": "epoch=0.ckpt",
        "SimpleNamespace": {
            "monitor": "val_loss",
            "mode": "min",
            "save_last": None,
            "save_top_k": 1,
            "save_weights_only": False,
        },
    }


def test_log_model_true_uploads_at_the_end_of_a_successful_fit(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model=True, checkpoint_name="my-model")
    callback = _checkpoint_callback(tmp_path, ["a.ckpt", "b.ckpt"], best="a.ckpt")
    assert logger.experiment is wandb.run  # the run a fit would have started
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type]
    logger.finalize("failed")
    logger.finalize("success")
    artifacts = _finish_and_read(wandb, logger, tmp_path)["artifacts"]
    uploaded = [
        (a.name, json.loads(a.metadata)["original_filename"], sorted(a.aliases)) for a in artifacts
    ]
    assert sorted(uploaded) == [
        ("my-model", "a.ckpt", ["best", "latest"]),
        ("my-model", "b.ckpt", ["latest"]),
    ]


def test_log_model_true_with_save_top_k_all_uploads_each_time(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model=True)
    callback = _checkpoint_callback(tmp_path, ["a.ckpt"], best="a.ckpt")
    callback.save_top_k = -1
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type]
    assert len(_finish_and_read(wandb, logger, tmp_path)["artifacts"]) == 1


def test_only_rank_zero_starts_a_run(wandb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = WandbLogger()
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    assert wandb.run is None


def test_a_pickled_copy_carries_the_run_id_but_not_the_run(wandb: Any, tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    run_id = logger.experiment.id
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._experiment is None
    assert copy.version == run_id


@pytest.mark.compat
def test_signature_matches_lightning() -> None:
    lightning_loggers = pytest.importorskip("pytorch_lightning.loggers")
    theirs = inspect.signature(lightning_loggers.WandbLogger)
    ours = inspect.signature(WandbLogger)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]
