"""`fulmen new NAME`: write a small project that trains out of the box.

The project's files are the `templates/*.tmpl` files of this package, with `{{name}}` replaced by
the project's name. Nothing is written when the target folder already exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

__all__ = ["create_project", "main"]

# Template file (relative to templates/) -> path in the new project.
_FILES = {
    "README.md.tmpl": "README.md",
    "config.py.tmpl": "config.py",
    "data.py.tmpl": "data.py",
    "model.py.tmpl": "model.py",
    "callbacks.py.tmpl": "callbacks.py",
    "train.py.tmpl": "train.py",
    "tests/test_smoke.py.tmpl": "tests/test_smoke.py",
    "pyproject.toml.tmpl": "pyproject.toml",
    "gitignore.tmpl": ".gitignore",
}


def create_project(path: str | Path) -> Path:
    """Write a new project into the folder `path`, which must not exist yet; return its path.

    The folder's name is the project's name. The files appear all at once: they are written to
    a temporary folder next to `path`, which is then renamed.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as parent:
        ...     project = create_project(Path(parent) / "digits")
        ...     sorted(p.name for p in project.iterdir())
        ['.gitignore', 'README.md', 'callbacks.py', 'config.py', 'data.py', 'model.py', 'pyproject.toml', 'tests', 'train.py']
    """
    target = Path(path)
    name = target.name
    if not name or name in (".", ".."):
        raise ValueError(f"create_project(path={str(path)!r}): the path must end in a folder name.")
    if target.exists() or target.is_symlink():
        raise FileExistsError(
            f"create_project(path={str(path)!r}): {str(target)!r} already exists. fulmen new "
            "never writes into an existing folder; choose a new name or remove the folder."
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"create_project(path={str(path)!r}): the parent folder {str(target.parent)!r} does "
            "not exist."
        )
    templates = resources.files(__name__) / "templates"
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for template, destination in _FILES.items():
            text = (templates / template).read_text(encoding="utf-8")
            file = staging / destination
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text.replace("{{name}}", name), encoding="utf-8")
        # mkdtemp makes the folder private (0o700); give it the permissions of a normal mkdir.
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `fulmen` command (`fulmen new NAME`); return the exit status.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as parent:
        ...     main(["new", str(Path(parent) / "demo")])  # doctest: +ELLIPSIS
        Created ...demo: ...
        0
    """
    parser = argparse.ArgumentParser(prog="fulmen", description="fulmen's command line tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    new = commands.add_parser(
        "new",
        help="create a project that trains out of the box",
        description="Create a folder with a model, data, callbacks, a training script and tests.",
    )
    new.add_argument("name", help="the new project's folder (must not exist)")
    args = parser.parse_args(argv)
    try:
        project = create_project(args.name)
    except (OSError, ValueError) as error:
        print(f"fulmen new: error: {error}", file=sys.stderr)
        return 1
    print(
        f"Created {project}: model.py, data.py, config.py, train.py, callbacks.py, tests/.\n"
        f"Next: cd {project} && python train.py"
    )
    return 0
