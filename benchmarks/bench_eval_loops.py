"""Validation and prediction: per-batch cost against a hand-written `torch.no_grad()` loop, and
whether `trainer.predict(..., return_predictions=False)` keeps memory flat.

Per batch: the tiny MLP of `bench_step_overhead.py` (32 -> 64 -> 10, batch 64, one CPU thread).
The hand loop runs under `torch.no_grad()` in eval mode: for validation it computes the
cross-entropy and sums it (the mean is taken at the end), for prediction it computes the outputs
and drops them. fulmen and Lightning run `trainer.validate` (the `validation_step` computes the
same loss and `self.log`s it) and `trainer.predict(return_predictions=False)` with their default
Trainer (logger and progress bar on). Only the epoch is timed: from `on_*_epoch_start` to
`on_*_epoch_end`. Runs are interleaved after a warm-up.

Memory: a fresh process per framework predicts `--rss-batches` batches of a model with 128
outputs (32 KB of predictions per batch), first with `return_predictions=False`, then `True`
(the hand loop drops its outputs, then keeps them in a list). It samples its resident set size
every 50 batches and once more after `predict` returns (the caller still holding what it
returned). Growth is the largest sample minus the size at the start of the epoch.

    python benchmarks/bench_eval_loops.py            # 2000 batches x 7 repetitions
    python benchmarks/bench_eval_loops.py --quick
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from common import (
    DIFFERENCE,
    Row,
    Samples,
    base_parser,
    checkout_environment,
    collect_garbage,
    format_table,
    framework_modules,
    machine_description,
    output_to_devnull,
    paired_row,
    report,
    rss_mb,
    silence_frameworks,
    use_lightning,
)
from workloads import Loader, Workload, clock, module_class

TINY = Workload(widths=(32, 64, 10), batch_size=64)
WIDE_OUTPUT = Workload(widths=(32, 64, 128), batch_size=64)
RSS_BUDGET_MB = 5.0
SAMPLE_EVERY = 50

Runner = Callable[[Loader], float]


def eval_module_class(base: type[Any], workload: Workload) -> type[Any]:
    """Subclass `base` (a LightningModule) into a module that validates and predicts."""

    class EvalModule(module_class(base, workload, log_loss=False)):  # type: ignore[misc]
        def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
            inputs, targets = batch
            self.log("val_loss", F.cross_entropy(self.network(inputs), targets))

        def predict_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
            return self.network(batch[0])  # type: ignore[no-any-return]

    return EvalModule


def hand_validate(loader: Loader) -> float:
    """Validate with plain PyTorch; return the epoch's seconds."""
    network = TINY.network()
    network.eval()
    start = clock()
    with torch.no_grad():
        total, count = torch.zeros(()), 0
        for inputs, targets in loader:
            total += F.cross_entropy(network(inputs), targets) * len(targets)
            count += len(targets)
        (total / count).item()
    return clock() - start


def hand_predict(loader: Loader) -> float:
    """Predict with plain PyTorch, dropping the outputs; return the epoch's seconds."""
    network = TINY.network()
    network.eval()
    start = clock()
    with torch.no_grad():
        for inputs, _ in loader:
            network(inputs)
    return clock() - start


def epoch_timer_class(base: type[Any], stage: str) -> type[Any]:
    """Subclass `base` (a Callback) into one that times the `stage` epoch."""

    class EpochTimer(base):  # type: ignore[misc]
        def __init__(self) -> None:
            self.start = self.end = 0.0

    def start(self: Any, trainer: Any, pl_module: Any) -> None:
        self.start = clock()

    def end(self: Any, trainer: Any, pl_module: Any) -> None:
        self.end = clock()

    setattr(EpochTimer, f"on_{stage}_epoch_start", start)
    setattr(EpochTimer, f"on_{stage}_epoch_end", end)
    return EpochTimer


def framework_runner(framework: Any, stage: str) -> Runner:
    """Build a `trainer.validate` or `trainer.predict(return_predictions=False)` run."""
    module_type = eval_module_class(framework.LightningModule, TINY)
    timer_type = epoch_timer_class(framework.Callback, stage)

    def run(loader: Loader) -> float:
        with tempfile.TemporaryDirectory() as root:
            timer = timer_type()
            with output_to_devnull():
                trainer = framework.Trainer(
                    default_root_dir=root, callbacks=[timer], accelerator="cpu", devices=1
                )
                if stage == "validation":
                    trainer.validate(module_type(), dataloaders=loader)
                else:
                    trainer.predict(module_type(), dataloaders=loader, return_predictions=False)
            return float(timer.end - timer.start)

    return run


def measure(runners: dict[str, Runner], loader: Loader, repeats: int) -> list[Samples]:
    """Warm each run up, then time them interleaved; µs per batch per repetition."""
    warmup = TINY.loader(20)
    for run in runners.values():
        run(warmup)
    samples = [Samples(name, "") for name in runners]
    for _ in range(repeats):
        for run, sample in zip(runners.values(), samples):
            collect_garbage()
            sample.values.append(run(loader) / len(loader) * 1e6)
    return samples


# --------------------------------------------------------------------------------- memory


def rss_child(kind: str, batches: int) -> None:
    """Predict `batches` batches twice in this fresh process, dropping the predictions, then
    keeping them; print the two RSS growths in MB as JSON.

    Dropping first keeps the two apart: the first run's transient memory is reused by the
    second, so what the second adds is what it keeps.
    """
    torch.set_num_threads(1)
    loader = WIDE_OUTPUT.loader(batches)
    growth = []
    samples: list[float] = []
    if kind == "hand":
        network = WIDE_OUTPUT.network()
        network.eval()
        with torch.no_grad():
            for inputs, _ in WIDE_OUTPUT.loader(20):  # warm-up
                network(inputs)
            for keep in (False, True):
                collect_garbage()
                base = rss_mb()
                samples.clear()
                kept = []
                for batch_idx, (inputs, _) in enumerate(loader):
                    output = network(inputs)
                    if keep:
                        kept.append(output)
                    if batch_idx % SAMPLE_EVERY == 0:
                        samples.append(rss_mb())
                samples.append(rss_mb())
                growth.append(max(samples) - base)
        print(json.dumps(growth))
        return
    module_name = "fulmen" if kind == "fulmen" else "pytorch_lightning"
    silence_frameworks(module_name)
    framework: Any = sys.modules[module_name]

    class Sampler(framework.Callback):  # type: ignore[misc]
        base = 0.0

        def on_predict_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            collect_garbage()
            Sampler.base = rss_mb()

        def on_predict_batch_end(self, trainer: Any, *args: Any) -> None:
            if args[-1] % SAMPLE_EVERY == 0:  # batch_idx
                samples.append(rss_mb())

    module = eval_module_class(framework.LightningModule, WIDE_OUTPUT)()
    with tempfile.TemporaryDirectory() as root, output_to_devnull():
        trainer = framework.Trainer(
            default_root_dir=root, callbacks=[Sampler()], accelerator="cpu", devices=1
        )
        trainer.predict(module, dataloaders=WIDE_OUTPUT.loader(20))  # warm-up
        for keep in (False, True):
            samples.clear()
            result = trainer.predict(module, dataloaders=loader, return_predictions=keep)
            samples.append(rss_mb())
            growth.append(max(samples) - Sampler.base)
    if len(result) != batches:
        raise RuntimeError(f"predict returned {len(result)} batches, expected {batches}")
    print(json.dumps(growth))


def rss_growth(kind: str, batches: int) -> tuple[float, float]:
    """Run `rss_child` in a fresh process; return its growths (dropped, kept), in MB."""
    command = [sys.executable, __file__, "--rss-child", kind, str(batches)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=checkout_environment(), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory run {kind} failed:\n{done.stderr}")
    dropped, kept = json.loads(done.stdout.splitlines()[-1])
    return float(dropped), float(kept)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000, help="batches per timed epoch")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions")
    parser.add_argument("--rss-batches", type=int, default=4000, help="batches per memory run")
    parser.add_argument("--rss-child", nargs=2, help=" (internal: one memory run)")
    args = parser.parse_args(argv)
    if args.rss_child:
        kind, batches = args.rss_child
        rss_child(kind, int(batches))
        return 0
    if args.quick:
        args.batches, args.repeats, args.rss_batches = 30, 1, 200
    torch.set_num_threads(1)
    silence_frameworks(*framework_modules(args))
    frameworks: list[tuple[str, Any]] = []
    import fulmen

    frameworks.append(("fulmen", fulmen))
    if use_lightning(args):
        import pytorch_lightning

        frameworks.append(("lightning", pytorch_lightning))
    print(f"Machine: {machine_description()}")
    print(
        f"{args.batches} batches per run, {args.repeats} interleaved repetitions, {TINY.describe()}"
    )
    loader = TINY.loader(args.batches)
    found: dict[str, list[Samples]] = {}
    for stage, hand in (("validation", hand_validate), ("predict", hand_predict)):
        runners: dict[str, Runner] = {"hand": hand}
        runners.update({key: framework_runner(fw, stage) for key, fw in frameworks})
        found[stage] = measure(runners, loader, args.repeats)
        print(f"\n{stage}, µs per batch:\n")
        print(format_table(found[stage], baseline=found[stage][0], unit="µs/batch"))

    print(
        f"\npredict memory: RSS growth over {args.rss_batches} batches of {WIDE_OUTPUT.describe()}"
        ", one fresh process per run; MB\n"
    )
    kinds = ["hand"] + [key for key, _ in frameworks]
    growth = {}
    for kind in kinds:
        growth[kind, False], growth[kind, True] = rss_growth(kind, args.rss_batches)
    print("| run | return_predictions=False | return_predictions=True |")
    print("|---|---:|---:|")
    for kind in kinds:
        print(f"| {kind} | {growth[kind, False]:+.1f} MB | {growth[kind, True]:+.1f} MB |")

    rows = []
    for stage, label in (("validation", "validation loop"), ("predict", "predict loop")):
        by_key = {sample.name: sample for sample in found[stage]}
        rows.append(
            paired_row(
                f"{label}, per batch, defaults"
                + (", return_predictions=False" if stage == "predict" else ""),
                by_key["hand"],
                by_key["fulmen"],
                by_key.get("lightning"),
                None,
                unit="µs/batch",
            )
        )
    with_lightning = "lightning" in kinds
    for keep, budget in ((False, RSS_BUDGET_MB), (True, None)):
        rows.append(
            Row(
                f"predict RSS growth over {args.rss_batches} batches, return_predictions={keep}",
                "MB",
                growth["hand", keep],
                growth["fulmen", keep],
                growth["lightning", keep] if with_lightning else None,
                DIFFERENCE,
                budget,
            )
        )
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
