"""Run the code of the user guide, so that the guide cannot go stale.

Convention for code blocks in ``docs/*.md``:

- ```` ```python ```` blocks run. The blocks of one page run in order, in one shared namespace,
  with the test's ``tmp_path`` as the working directory, exactly as a reader would paste them
  into one session. Warnings are errors here as in the whole suite.
- ```` ```python title="not executed" ```` marks Python that a test cannot run (it launches
  several processes, or needs a GPU or a cluster). It is only compiled, so that it at least stays
  valid Python. Keep such blocks few: every one of them can silently go stale.
- Any other fence (```` ```bash ````, ```` ```text ````, ```` ```yaml ````) is not Python and is not
  run. ```` ```text title="hook order: ..." ```` blocks are compared with the golden hook order
  that the behaviour tests pin against Lightning (``tests/behaviour/golden/hook_order.json``).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
GOLDEN = json.loads((REPO_ROOT / "tests/behaviour/golden/hook_order.json").read_text())
NOT_EXECUTED = 'title="not executed"'

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def code_blocks(page: Path) -> list[tuple[str, str, int]]:
    """Return (info string, code, line number) for every fenced block of `page`."""
    text = page.read_text()
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        body = textwrap.dedent(match.group("body"))
        blocks.append((match.group("info").strip(), body, line))
    return blocks


PAGES = sorted(DOCS.rglob("*.md"))
GUIDE_PAGES = [p for p in PAGES if any(i == "python" for i, _, _ in code_blocks(p))]


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=_page_id)
def test_every_python_block_of_the_page_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a fresh session: no command line arguments (pytest's own would reach LightningCLI).
    monkeypatch.setattr(sys, "argv", [page.name])
    namespace: dict[str, object] = {"__name__": f"guide_{page.stem}"}
    for info, code, line in code_blocks(page):
        if info != "python":
            continue
        compiled = compile(code, f"{page.relative_to(REPO_ROOT)}:{line}", "exec")
        exec(compiled, namespace)  # the tmp_path working directory comes from tests/conftest.py


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_python_block_is_run_or_marked_not_executed(page: Path) -> None:
    for info, code, line in code_blocks(page):
        if not info.startswith(("python", "py ")) and info != "py":
            continue
        assert info in ("python", f"python {NOT_EXECUTED}"), (
            f"{page.name}:{line}: a Python block is fenced ```{info}; use ```python (runs in the "
            f"tests) or ```python {NOT_EXECUTED} (compiled only)."
        )
        compile(code, f"{page.name}:{line}", "exec")


def test_the_guide_has_pages_with_code() -> None:
    assert len(GUIDE_PAGES) >= 10, [p.name for p in GUIDE_PAGES]


def expand_hook_listing(listing: str, batches: int) -> list[str]:
    """Turn the guide's compact hook listing into the flat list of calls it stands for.

    ``for each ... batch:`` opens a block (the indented lines below it) that runs `batches` times;
    a line whose comment says ``last batch only`` runs only in the last repetition. Text after
    ``#`` is a comment.
    """
    calls: list[str] = []
    block: list[tuple[str, bool]] | None = None

    def flush() -> None:
        if block is None:
            return
        for repetition in range(batches):
            last = repetition == batches - 1
            calls.extend(name for name, last_only in block if last or not last_only)

    for raw in listing.splitlines():
        if not raw.strip():
            continue
        name, _, comment = raw.partition("#")
        indented = raw.startswith((" ", "\t"))
        if name.strip().startswith("for each") and name.strip().endswith(":"):
            flush()
            block = []
            continue
        if indented and block is not None:
            block.append((name.strip(), "last batch only" in comment))
            continue
        flush()
        block = None
        calls.append(name.strip())
    flush()
    return calls


def test_hook_listings_in_the_guide_match_the_golden_order() -> None:
    listings = {
        info.split('"')[1].removeprefix("hook order: "): code
        for page in PAGES
        for info, code, _ in code_blocks(page)
        if info.startswith('text title="hook order: ')
    }
    assert {"fit", "validate"} <= set(listings), sorted(listings)
    for scenario, listing in listings.items():
        # The golden runs use two batches per loop (tests/helpers/recording.py).
        assert expand_hook_listing(listing, batches=2) == GOLDEN[scenario], scenario
