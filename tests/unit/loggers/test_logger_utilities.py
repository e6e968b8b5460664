from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest
import torch
import yaml

from fulmen.loggers.utilities import (
    add_prefix,
    convert_params,
    flatten_dict,
    next_version,
    save_hparams_to_yaml,
    version_dir_name,
)


def test_next_version_is_zero_for_a_missing_or_empty_folder(tmp_path: Path) -> None:
    assert next_version(tmp_path / "missing") == 0
    assert next_version(tmp_path) == 0


def test_next_version_follows_the_highest_numbered_version_folder(tmp_path: Path) -> None:
    for name in ("version_0", "version_2", "version_10", "version_x", "baseline"):
        (tmp_path / name).mkdir()
    (tmp_path / "version_99").write_text("a file, not a version folder")
    assert next_version(tmp_path) == 11


def test_version_dir_name_formats_ints_and_keeps_strings() -> None:
    assert version_dir_name(0) == "version_0"
    assert version_dir_name("run-a") == "run-a"


def test_add_prefix_joins_with_the_separator_only_when_a_prefix_is_set() -> None:
    assert add_prefix({"loss": 1}, "", "-") == {"loss": 1}
    assert add_prefix({"loss": 1, "acc": 2}, "val", "/") == {"val/loss": 1, "val/acc": 2}


def test_convert_params_accepts_none_dicts_and_namespaces() -> None:
    assert convert_params(None) == {}
    assert convert_params({"a": 1}) == {"a": 1}
    assert convert_params(Namespace(a=1, b="x")) == {"a": 1, "b": "x"}


def test_flatten_dict_joins_nested_keys() -> None:
    params = {
        "optim": {"name": "adam", "betas": {"b1": 0.9}},
        "data": Namespace(batch=4),
        "seed": 1,
    }
    assert flatten_dict(params) == {
        "optim/name": "adam",
        "optim/betas/b1": 0.9,
        "data/batch": 4,
        "seed": 1,
    }


def test_save_hparams_to_yaml_writes_plain_yaml(tmp_path: Path) -> None:
    path = tmp_path / "hparams.yaml"
    hparams = Namespace(
        lr=torch.tensor(0.5),
        sizes=(64, torch.tensor([1, 2])),
        data=Namespace(root=tmp_path, batch=4),
        name="run",
        flag=None,
    )
    save_hparams_to_yaml(path, hparams)
    assert yaml.safe_load(path.read_text()) == {
        "lr": 0.5,
        "sizes": [64, [1, 2]],
        "data": {"root": str(tmp_path), "batch": 4},
        "name": "run",
        "flag": None,
    }


def test_save_hparams_to_yaml_skips_values_yaml_cannot_hold_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "hparams.yaml"
    with pytest.warns(UserWarning, match="Skipping hyperparameter 'model'"):
        save_hparams_to_yaml(path, {"lr": 0.1, "model": torch.nn.Linear(1, 1)})
    assert yaml.safe_load(path.read_text()) == {"lr": 0.1}
