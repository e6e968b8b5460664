"""Import time, the modules `import fulmen` pulls in, and start-up to the first optimizer step.

Each sample is a fresh interpreter, so nothing is cached in memory between samples (the files
are in the OS cache after a warm-up run):

- import: the child times `import torch`, then `import fulmen` (or `import pytorch_lightning`),
  with `time.perf_counter()`; the interpreter's own start is left out. The table gives the whole
  time per module; the budget applies to fulmen's own part, `import fulmen` after `import torch`
  in the same process, which is steadier than a difference between processes.
- heavy modules: after `import fulmen` (or Lightning), which of tensorboard, yaml, rich,
  jsonargparse, torch._dynamo, matplotlib and pandas are in `sys.modules`.
- start-up: from just before the parent starts the child (`time.monotonic()`, one clock for
  every process) to the end of the first optimizer step of the tiny MLP of
  `bench_step_overhead.py` under the default Trainer with one `self.log` per step: the
  interpreter, imports, building the model and trainer, the model summary, creating the logger.
  The hand-written loop imports only torch.

Samples of all variants run interleaved.

    python benchmarks/bench_import.py            # 11 import and 5 start-up samples per variant
    python benchmarks/bench_import.py --quick
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import (
    DIFFERENCE,
    VALUE,
    Row,
    Samples,
    base_parser,
    checkout_environment,
    fmt,
    format_table,
    report,
    use_lightning,
)

IMPORT_BUDGET_S = 0.15
HEAVY_MODULES = (
    "tensorboard",
    "yaml",
    "rich",
    "jsonargparse",
    "torch._dynamo",
    "matplotlib",
    "pandas",
)
# Prints how long `import torch` took, how long `import {module}` took after it, and which heavy
# modules are loaded then.
IMPORT_CHILD = """
import json, sys, time
start = time.perf_counter()
import torch
torch_done = time.perf_counter()
import {module}
done = time.perf_counter()
heavy = [name for name in {heavy!r} if name in sys.modules]
print(json.dumps([torch_done - start, done - torch_done, heavy]))
"""


def python(code: str) -> str:
    """Run `code` in a fresh interpreter that sees this checkout's fulmen; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=checkout_environment(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`python -c {code!r}` failed:\n{done.stderr}")
    return done.stdout


def time_imports(
    modules: Sequence[str], repeats: int, warm_up: bool
) -> tuple[list[Samples], list[Samples], dict[str, list[str]]]:
    """Import each module in fresh interpreters, interleaved.

    Return the whole import time (torch included) per module, the time of the module's own
    import after torch's in the same process, and the heavy modules found after it.
    """
    codes = [IMPORT_CHILD.format(module=module, heavy=HEAVY_MODULES) for module in modules]
    if warm_up:
        for code in codes:
            python(code)  # the OS file cache
    whole = [Samples(module, f"import {module}") for module in modules]
    own = [Samples(module, f"import {module} after torch") for module in modules]
    heavy: dict[str, list[str]] = {}
    for _ in range(repeats):
        for module, code, total, extra in zip(modules, codes, whole, own):
            torch_seconds, module_seconds, heavy[module] = json.loads(python(code))
            total.values.append(torch_seconds + module_seconds)
            extra.values.append(module_seconds)
    return whole, own, heavy


# ------------------------------------------------------------------------------- start-up


def startup_child(kind: str, root: str, out: str) -> None:
    """Train until the first optimizer step is done; write the clock to `out`; exit at once."""

    def done() -> None:
        Path(out).write_text(repr(time.monotonic()))
        # Exit without the framework's tear-down: the measurement ends at the first step.
        os._exit(0)

    import torch
    from bench_step_overhead import TINY

    torch.set_num_threads(1)
    loader = TINY.loader(64)
    if kind == "hand":
        import torch.nn.functional as F

        network = TINY.network()
        optimizer = torch.optim.SGD(network.parameters(), lr=TINY.learning_rate)
        for inputs, targets in loader:
            optimizer.zero_grad()
            F.cross_entropy(network(inputs), targets).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            done()
    if kind == "fulmen":
        import fulmen as framework
    else:
        import pytorch_lightning as framework  # type: ignore[no-redef]
    from workloads import module_class

    class FirstStep(framework.Callback):
        def on_train_batch_end(self, *args: object) -> None:
            done()

    trainer = framework.Trainer(
        max_epochs=1, default_root_dir=root, callbacks=[FirstStep()], accelerator="cpu", devices=1
    )
    trainer.fit(module_class(framework.LightningModule, TINY, log_loss=True)(), loader)
    raise RuntimeError("the run ended without an optimizer step")


def time_startup(kind: str) -> float:
    """Start a child that trains to its first optimizer step; return the seconds it took."""
    with tempfile.TemporaryDirectory() as root:
        out = os.path.join(root, "first_step")
        command = [sys.executable, __file__, "--startup-child", kind, root, out]
        start = time.monotonic()
        done = subprocess.run(
            command,
            cwd=root,
            env=checkout_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"start-up run {kind} failed:\n{done.stderr}")
        return float(Path(out).read_text()) - start


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="import samples per variant")
    parser.add_argument("--startup-repeats", type=int, default=5, help="start-up samples")
    parser.add_argument("--startup-child", nargs=3, help=" (internal: one start-up sample)")
    args = parser.parse_args(argv)
    if args.startup_child:
        startup_child(*args.startup_child)
        return 1
    if args.quick:
        args.repeats, args.startup_repeats = 1, 1
    with_lightning = use_lightning(args)
    modules = ["torch", "fulmen"] + (["pytorch_lightning"] if with_lightning else [])

    print(f"import time: {args.repeats} fresh interpreters per module, interleaved; seconds\n")
    imports, own, heavy = time_imports(modules, args.repeats, warm_up=not args.quick)
    print(format_table(imports, baseline=imports[0], unit="s"))
    print()
    for sample in own[1:]:
        print(f"`{sample.description}`, same process: {fmt(sample.median)} s ({sample.spread})")
    for module in modules[1:]:
        print(f"heavy modules after `import {module}`: {', '.join(heavy[module]) or 'none'}")

    variants = ["hand", "fulmen"] + (["lightning"] if with_lightning else [])
    print(
        f"\nstart-up to the end of the first optimizer step (defaults + self.log): "
        f"{args.startup_repeats} fresh processes per variant, interleaved; seconds\n"
    )
    startup = [Samples(f"{kind} start-up", "") for kind in variants]
    for _ in range(args.startup_repeats):
        for kind, sample in zip(variants, startup):
            sample.values.append(time_startup(kind))
    print(format_table(startup, baseline=startup[0], unit="s"))

    by_name = {sample.name: sample for sample in imports + startup}
    lightning = by_name.get("pytorch_lightning")
    rows = [
        Row(
            "import time (fresh process)",
            "s",
            by_name["torch"].median,
            by_name["fulmen"].median,
            lightning.median if lightning else None,
            DIFFERENCE,
            IMPORT_BUDGET_S,
            fulmen_vs_hand=own[1].median,
            lightning_vs_hand=own[2].median if lightning else None,
            note="vs hand: `import fulmen` after `import torch`, same process",
        ),
        Row(
            "heavy modules after import",
            "",
            None,
            len(heavy["fulmen"]),
            len(heavy["pytorch_lightning"]) if with_lightning else None,
            VALUE,
            0,
            note=f"fulmen: {', '.join(heavy['fulmen']) or 'none'}",
        ),
    ]
    lightning = by_name.get("lightning start-up")
    rows.append(
        Row(
            "start-up to first optimizer step, defaults + self.log",
            "s",
            by_name["hand start-up"].median,
            by_name["fulmen start-up"].median,
            lightning.median if lightning else None,
            DIFFERENCE,
        )
    )
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
