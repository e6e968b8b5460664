"""MLFlowLogger against a real `mlflow` file store, read back with `MlflowClient`."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml

from fulmen.loggers import MLFlowLogger
from fulmen.loggers.logger import DummyExperiment
from fulmen.utilities.rank_zero import rank_zero_only


@pytest.fixture
def mlflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    module = pytest.importorskip("mlflow")
    # mlflow 3 refuses file stores unless asked; they need no database packages.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return module


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"file:{tmp_path}/mlruns"


def _history(logger: MLFlowLogger, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in logger.experiment.get_metric_history(logger.run_id, key)]


def _checkpoint_callback(tmp_path: Path, names: list[str], best: str) -> SimpleNamespace:
    scores = {}
    for score, name in enumerate(names):
        (tmp_path / name).write_bytes(b"weights of " + name.encode())
        scores[str(tmp_path / name)] = torch.tensor(float(score))
    return SimpleNamespace(
        last_model_path=str(tmp_path / names[-1]),
        current_score=scores[str(tmp_path / names[-1])],
        best_model_path=str(tmp_path / best),
        best_model_score=scores[str(tmp_path / best)],
        best_k_models=scores,
        save_top_k=1,
        monitor="val_loss",
        mode="min",
        save_last=True,
        save_weights_only=False,
    )


def _artifacts(logger: MLFlowLogger, path: str | None = None) -> list[str]:
    return sorted(a.path for a in logger.experiment.list_artifacts(logger.run_id, path))


def test_missing_mlflow_raises_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlflow" else find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install mlflow.*fulmen\[mlflow\]"):
        MLFlowLogger()


def test_invalid_log_model_is_rejected(mlflow: Any, uri: str) -> None:
    with pytest.raises(ValueError, match=r"MLFlowLogger\(log_model='best'\) is invalid"):
        MLFlowLogger(tracking_uri=uri, log_model="best")  # type: ignore[arg-type]


def test_default_store_is_save_dir_as_a_file_uri(mlflow: Any, tmp_path: Path) -> None:
    logger = MLFlowLogger(save_dir=str(tmp_path / "runs"))
    assert logger.save_dir == str(tmp_path / "runs")
    logger.log_metrics({"loss": 1.0})
    assert (tmp_path / "runs" / str(logger.name) / str(logger.version)).is_dir()


def test_remote_store_has_no_save_dir(mlflow: Any) -> None:
    assert MLFlowLogger(tracking_uri="http://127.0.0.1:1").save_dir is None


def test_name_is_the_experiment_id_and_version_the_run_id(
    mlflow: Any, uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fulmen"):
        logger = MLFlowLogger("exp", tracking_uri=uri, run_name="first", tags={"team": "a"})
        assert caplog.messages == []  # nothing happens before first use
        experiment_id, run_id = logger.name, logger.version
    assert caplog.messages == ["Experiment with name exp not found. Creating it."]
    client = logger.experiment
    assert client.get_experiment_by_name("exp").experiment_id == experiment_id
    run = client.get_run(run_id)
    assert (run.info.experiment_id, run.info.run_name, run.data.tags["team"]) == (
        experiment_id,
        "first",
        "a",
    )
    assert "mlflow.user" in run.data.tags  # MLflow's own context tags are added

    second = MLFlowLogger("exp", tracking_uri=uri)
    assert second.name == experiment_id
    assert second.version != run_id


def test_run_name_overrides_the_run_name_tag(
    mlflow: Any, uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    tags = {"mlflow.runName": "from-tags"}
    logger = MLFlowLogger(tracking_uri=uri, run_name="from-arg", tags=tags)
    with caplog.at_level(logging.WARNING, logger="fulmen"):
        run = logger.experiment.get_run(logger.run_id)
    assert run.info.run_name == "from-arg"
    assert "The value will be overridden by from-arg" in caplog.text
    assert tags == {"mlflow.runName": "from-tags"}  # the caller's dict is left alone


def test_an_existing_run_is_continued(mlflow: Any, uri: str) -> None:
    first = MLFlowLogger("exp", tracking_uri=uri)
    first.log_metrics({"loss": 2.0}, step=0)
    again = MLFlowLogger("ignored", tracking_uri=uri, run_id=first.run_id)
    again.log_metrics({"loss": 1.0}, step=1)
    assert (again.name, again.version) == (first.name, first.version)
    assert _history(again, "loss") == [(0, 2.0), (1, 1.0)]
    assert again.experiment.get_experiment_by_name("ignored") is None


def test_artifact_location_is_given_to_a_new_experiment(
    mlflow: Any, uri: str, tmp_path: Path
) -> None:
    logger = MLFlowLogger("exp", tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"))
    experiment = logger.experiment.get_experiment(logger.name)
    assert experiment.artifact_location.endswith(str(tmp_path / "artifacts"))


def test_metrics_are_logged_at_their_step_with_prefix(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger(tracking_uri=uri, prefix="train")
    logger.log_metrics({"loss": 0.5, "acc": torch.tensor(0.25)}, step=3)
    logger.log_metrics({"loss": 0.125})
    assert _history(logger, "train-loss") == [(3, 0.5), (0, 0.125)]
    assert _history(logger, "train-acc") == [(3, 0.25)]


def test_unsupported_characters_are_dropped_from_metric_names(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger(tracking_uri=uri)
    with pytest.warns(RuntimeWarning) as warned:
        logger.log_metrics({"loss@val": 1.0, "val/acc (top-1).x": 2.0}, step=0)
    assert [str(w.message).split(". ")[-1] for w in warned] == [
        "Replacing loss@val with lossval.",
        "Replacing val/acc (top-1).x with val/acc top-1.x.",
    ]
    assert set(logger.experiment.get_run(logger.run_id).data.metrics) == {
        "lossval",
        "val/acc top-1.x",
    }


def test_string_metrics_are_discarded(
    mlflow: Any, uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = MLFlowLogger(tracking_uri=uri)
    with caplog.at_level(logging.WARNING, logger="fulmen"):
        logger.log_metrics({"note": "hello", "loss": 1.0}, step=0)  # type: ignore[dict-item]
    assert "Discarding metric with string value note=hello." in caplog.messages
    assert set(logger.experiment.get_run(logger.run_id).data.metrics) == {"loss"}


def test_more_than_a_batch_of_metrics_is_split(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger(tracking_uri=uri)
    logger.log_metrics({f"m{i}": float(i) for i in range(1001)}, step=0)
    metrics = logger.experiment.get_run(logger.run_id).data.metrics
    assert (len(metrics), metrics["m1000"]) == (1001, 1000.0)


def test_hyperparameters_are_flattened_text(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger(tracking_uri=uri)
    logger.log_hyperparams({"lr": 0.1, "optim": {"name": "adam", "betas": (0.9, 0.99)}})
    params = logger.experiment.get_run(logger.run_id).data.params
    assert params == {"lr": "0.1", "optim/name": "adam", "optim/betas": "(0.9, 0.99)"}


def test_long_hyperparameter_values_are_cut_to_mlflows_limit(mlflow: Any, uri: str) -> None:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    logger = MLFlowLogger(tracking_uri=uri)
    with pytest.warns(UserWarning, match=r"hyperparameters \['long'\] are longer"):
        logger.log_hyperparams({"long": "x" * (MAX_PARAM_VAL_LENGTH + 10), "short": "y"})
    params = logger.experiment.get_run(logger.run_id).data.params
    assert (len(params["long"]), params["short"]) == (MAX_PARAM_VAL_LENGTH, "y")


def test_more_than_a_batch_of_hyperparameters_is_split(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger(tracking_uri=uri)
    logger.log_hyperparams({f"p{i}": i for i in range(250)})
    params = logger.experiment.get_run(logger.run_id).data.params
    assert (len(params), params["p249"]) == (250, "249")


@pytest.mark.parametrize(
    ("status", "expected"),
    [("success", "FINISHED"), ("finished", "FINISHED"), ("failed", "FAILED"), ("KILLED", "KILLED")],
)
def test_finalize_ends_the_run_with_the_status(
    mlflow: Any, uri: str, status: str, expected: str
) -> None:
    logger = MLFlowLogger(tracking_uri=uri)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize(status)
    assert logger.experiment.get_run(logger.run_id).info.status == expected


def test_finalize_before_any_use_starts_no_run(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger("exp", tracking_uri=uri)
    logger.finalize("success")
    assert logger._run_id is None
    assert logger._mlflow_client.get_experiment_by_name("exp") is None


def test_synchronous_false_logs_in_the_background(mlflow: Any, uri: str) -> None:
    logger = MLFlowLogger(tracking_uri=uri, synchronous=False)
    for step in range(20):
        logger.log_metrics({"loss": float(step)}, step=step)
    logger.log_hyperparams({"lr": 0.1})
    # finalize waits for the background writes before ending the run, so all is there at once.
    logger.finalize("success")
    run = logger.experiment.get_run(logger.run_id)
    assert (run.data.metrics, run.data.params) == ({"loss": 19.0}, {"lr": "0.1"})
    assert run.info.status == "FINISHED"
    history = logger.experiment.get_metric_history(logger.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(20))


def test_log_model_all_uploads_each_new_checkpoint_with_metadata(
    mlflow: Any, uri: str, tmp_path: Path
) -> None:
    logger = MLFlowLogger(tracking_uri=uri, log_model="all")
    callback = _checkpoint_callback(tmp_path, ["epoch=0-step=4.ckpt"], best="epoch=0-step=4.ckpt")
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type]
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type] # unchanged: not again
    assert _artifacts(logger) == ["epoch=0-step=4"]
    assert _artifacts(logger, "epoch=0-step=4") == [
        "epoch=0-step=4/aliases.txt",
        "epoch=0-step=4/epoch=0-step=4.ckpt",
        "epoch=0-step=4/metadata.yaml",
    ]
    folder = Path(logger.save_dir or "", logger.name or "", logger.run_id or "", "artifacts")
    checkpoint_folder = folder / "epoch=0-step=4"
    assert (
        checkpoint_folder / "epoch=0-step=4.ckpt"
    ).read_bytes() == b"weights of epoch=0-step=4.ckpt"
    assert (checkpoint_folder / "aliases.txt").read_text() == "['latest', 'best']"
    assert yaml.safe_load((checkpoint_folder / "metadata.yaml").read_text()) == {
        "score": 0.0,
        "original_filename": "epoch=0-step=4.ckpt",
        "Checkpoint": {
            "monitor": "val_loss",
            "mode": "min",
            "save_last": True,
            "save_top_k": 1,
            "save_weights_only": False,
        },
    }


def test_log_model_true_uploads_at_the_end(mlflow: Any, uri: str, tmp_path: Path) -> None:
    logger = MLFlowLogger(tracking_uri=uri, log_model=True)
    callback = _checkpoint_callback(tmp_path, ["a.ckpt", "b.ckpt"], best="a.ckpt")
    logger.after_save_checkpoint(callback)  # type: ignore[arg-type]
    assert _artifacts(logger) == []
    logger.finalize("success")
    assert _artifacts(logger) == ["a", "b"]
    assert os.path.isfile(
        Path(uri[len("file:") :], str(logger.name), str(logger.run_id), "artifacts/b/b.ckpt")
    )


def test_only_rank_zero_talks_to_mlflow(
    mlflow: Any, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = MLFlowLogger("exp", tracking_uri=uri)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert logger._mlflow_client.get_experiment_by_name("exp") is None


@pytest.mark.compat
def test_signature_matches_lightning() -> None:
    lightning_loggers = pytest.importorskip("pytorch_lightning.loggers")
    theirs = inspect.signature(lightning_loggers.MLFlowLogger)
    ours = inspect.signature(MLFlowLogger)
    assert [(p.name, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.kind) for p in theirs.parameters.values()
    ]
    # `tracking_uri` defaults to $MLFLOW_TRACKING_URI as read at import, which may differ.
    assert [p.default for p in ours.parameters.values() if p.name != "tracking_uri"] == [
        p.default for p in theirs.parameters.values() if p.name != "tracking_uri"
    ]
