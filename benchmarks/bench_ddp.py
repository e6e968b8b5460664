"""DDP on 2 CPU processes (gloo): fulmen and Lightning against a hand-written
`DistributedDataParallel` loop.

This script starts two worker processes the way `torchrun` does (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RUN_ID in the environment). The workers join one gloo
process group and, in it, run every scenario interleaved after a warm-up:

- hand: `DistributedDataParallel(mlp)`, a `DistributedSampler` (no shuffling), SGD;
- fulmen / Lightning: `Trainer(strategy="ddp", accelerator="cpu", devices=2)` on the same
  loader (each framework puts in its own `DistributedSampler`), everything off, and defaults
  with one `self.log(prog_bar=True)` per step. Both find the process group already set up.

Each process trains the tiny MLP of `bench_step_overhead.py` on one thread over its half of the
batches; rank 0's epoch time is reported (the gradient all-reduce keeps the ranks in step).
While fulmen's DDP is not available, its rows say so and the rest still runs.

    python benchmarks/bench_ddp.py            # 1000 steps per process x 5 repetitions
    python benchmarks/bench_ddp.py --quick
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from common import (
    Samples,
    base_parser,
    checkout_environment,
    format_table,
    paired_row,
    report,
    use_lightning,
)

BUDGET = 1.05
WORLD_SIZE = 2
NOT_AVAILABLE = "fulmen DDP: not available yet"


def free_port() -> int:
    """Ask the OS for a free TCP port for the process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fulmen_ddp_problem(fulmen: Any) -> str | None:
    """Return why fulmen cannot build a 2-process DDP trainer, or None if it can."""
    try:
        fulmen.Trainer(
            strategy="ddp", accelerator="cpu", devices=WORLD_SIZE, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
    except Exception as err:  # any failure means: not usable yet
        return f"{type(err).__name__}: {err}"
    return None


def same_weights_check(framework: Any) -> Any:
    """Build a callback that fails the run unless every rank ends with the same weights.

    Equal weights after training on different shards prove the gradients were averaged: the
    run really was data-parallel, not two single-process runs side by side.
    """
    import torch
    import torch.distributed as dist

    class SameWeights(framework.Callback):  # type: ignore[misc]
        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            total = sum(p.detach().double().sum() for p in pl_module.parameters()).reshape(1)
            gathered = [torch.zeros(1, dtype=torch.double) for _ in range(WORLD_SIZE)]
            dist.all_gather(gathered, total)
            if any(not torch.equal(g, gathered[0]) for g in gathered):
                raise RuntimeError(f"ranks ended with different weights: {gathered}")

    return SameWeights()


def worker(steps: int, repeats: int, with_lightning: bool, out: str) -> None:
    """Run every scenario in this rank; rank 0 writes the times (µs per step) to `out`."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from common import silence_frameworks
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler
    from workloads import ALL_OFF, Workload, clock, framework_runner

    torch.set_num_threads(1)
    silence_frameworks("fulmen", *(["pytorch_lightning"] if with_lightning else []))
    dist.init_process_group("gloo", timeout=timedelta(minutes=2))
    tiny = Workload(widths=(32, 64, 10), batch_size=64)

    def hand(loader: Any) -> float:
        sampler: DistributedSampler[int] = DistributedSampler(loader.dataset, shuffle=False)
        shard = DataLoader(loader.dataset, batch_size=tiny.batch_size, sampler=sampler)
        network = DistributedDataParallel(tiny.network())
        optimizer = torch.optim.SGD(network.parameters(), lr=tiny.learning_rate)
        dist.barrier()
        start = clock()
        for inputs, targets in shard:
            optimizer.zero_grad()
            F.cross_entropy(network(inputs), targets).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        return clock() - start

    runners: dict[str, Any] = {"hand": hand}
    cpu = torch.device("cpu")
    ddp = {"strategy": "ddp", "accelerator": "cpu", "devices": WORLD_SIZE}
    import fulmen

    problem = fulmen_ddp_problem(fulmen)
    frameworks: list[tuple[str, Any]] = [] if problem else [("fulmen", fulmen)]
    if with_lightning:
        import pytorch_lightning

        frameworks.append(("lightning", pytorch_lightning))
    for key, framework in frameworks:
        check = [same_weights_check(framework)]
        runners[f"{key}-off"] = framework_runner(
            framework, tiny, {**ALL_OFF, **ddp}, False, cpu, callbacks=check
        )
        runners[f"{key}-full"] = framework_runner(framework, tiny, ddp, True, cpu, callbacks=check)

    warmup = tiny.loader(WORLD_SIZE * min(steps, 60))
    for run in runners.values():
        run(warmup)
    loader = tiny.loader(WORLD_SIZE * steps)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            dist.barrier()
            times[name].append(run(loader) / steps * 1e6)
    if dist.get_rank() == 0:
        with open(out, "w") as stream:
            json.dump({"times": times, "fulmen_problem": problem}, stream)
    dist.barrier()
    dist.destroy_process_group()


def launch(steps: int, repeats: int, with_lightning: bool, timeout: float) -> dict[str, Any]:
    """Start the two workers as torchrun would; return rank 0's results."""
    with tempfile.TemporaryDirectory() as root:
        out = os.path.join(root, "times.json")
        env = checkout_environment()
        env.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(free_port()),
            WORLD_SIZE=str(WORLD_SIZE),
            LOCAL_WORLD_SIZE=str(WORLD_SIZE),
            GROUP_RANK="0",
            NODE_RANK="0",
            TORCHELASTIC_RUN_ID="bench_ddp",
            OMP_NUM_THREADS="1",
        )
        command = [sys.executable, __file__, "--worker", str(steps), str(repeats), out]
        command += ["--lightning"] if with_lightning else []
        workers = []
        for rank in range(WORLD_SIZE):
            rank_env = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            workers.append(
                subprocess.Popen(
                    command,
                    cwd=root,
                    env=rank_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + timeout
        errors = []
        for rank, process in enumerate(workers):
            try:
                _, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                for other in workers:
                    other.kill()
                raise RuntimeError(
                    f"the DDP workers did not finish within {timeout:.0f} s"
                ) from None
            if process.returncode != 0:
                errors.append(f"rank {rank} exited with {process.returncode}:\n{stderr}")
        if errors:
            raise RuntimeError("\n".join(errors))
        with open(out) as stream:
            results: dict[str, Any] = json.load(stream)
        return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per process and run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before giving up")
    parser.add_argument("--worker", nargs=3, help=" (internal: one rank)")
    parser.add_argument("--lightning", action="store_true", help=" (internal)")
    args = parser.parse_args(argv)
    if args.worker:
        steps, repeats, out = args.worker
        worker(int(steps), int(repeats), args.lightning, out)
        return 0
    if args.quick:
        args.steps, args.repeats = 20, 1
    results = launch(args.steps, args.repeats, use_lightning(args), args.timeout)
    print(
        f"DDP, {WORLD_SIZE} CPU processes (gloo), {args.steps} steps per process and run, "
        f"{args.repeats} interleaved repetitions, tiny MLP, batch 64 per process; µs per step "
        "on rank 0\n"
    )
    samples = {name: Samples(name, "", values) for name, values in results["times"].items()}
    print(format_table(list(samples.values()), baseline=samples["hand"]))
    problem = results["fulmen_problem"]
    if problem:
        print(f"\n{NOT_AVAILABLE} ({problem})")
    report(
        [
            paired_row(
                f"DDP, 2 CPU processes (gloo), per step, {label}",
                samples["hand"],
                samples.get(f"fulmen-{setting}"),
                samples.get(f"lightning-{setting}"),
                BUDGET,
                note=NOT_AVAILABLE if problem else "",
            )
            for setting, label in (("off", "everything off"), ("full", "defaults + self.log"))
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
