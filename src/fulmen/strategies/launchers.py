"""Start the processes of a multi-process run on this machine.

`ScriptLauncher` (strategy "ddp") runs the user's command again once per extra local device, as
torchrun would: every process executes the whole script, so anything the script does after
`fit` happens on every rank. `SpawnLauncher` ("ddp_spawn", "ddp_fork", "ddp_notebook") starts
workers with `torch.multiprocessing` and returns rank 0's result to the calling process, which
is why it works in notebooks (fork) and needs no `__main__` guard there.

With torchrun, SLURM or any launcher that sets the rank variables, no launcher runs: the process
already is one rank.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from fulmen.strategies.ddp import DDPStrategy
    from fulmen.trainer.trainer import Trainer

__all__ = ["ScriptLauncher", "SpawnLauncher"]


class ScriptLauncher:
    """Run `sys.argv` again in one child process per extra local device."""

    is_interactive_compatible = False

    def __init__(self, strategy: DDPStrategy) -> None:
        self.strategy = strategy
        self.procs: list[subprocess.Popen[bytes]] = []
        self.launched = False

    def launch(self, function: Callable[..., Any], *args: Any, trainer: Trainer) -> Any:
        if not self.launched:
            self._start_children()
            self.launched = True
        return function(*args)

    def _start_children(self) -> None:
        strategy = self.strategy
        env = strategy.cluster_env
        # Fix the rendezvous address now so that the children inherit it.
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        command = _command_line()
        for local_rank in range(1, strategy.num_processes):
            child_env = os.environ.copy()
            child_env["LOCAL_RANK"] = str(local_rank)
            child_env["NODE_RANK"] = str(strategy.node_rank)
            child_env["WORLD_SIZE"] = str(strategy.world_size)
            child_env["FULMEN_LAUNCHED"] = "1"
            self.procs.append(subprocess.Popen(command, env=child_env))  # noqa: S603

    def check_children(self) -> str | None:
        """Name a child that died with an error (polled by rank 0's watchdog)."""
        for local_rank, proc in enumerate(self.procs, start=1):
            code = proc.poll()
            # 143: the rank stopped on an agreed SIGTERM (preemption), as this one will.
            if code not in (None, 0, 143):
                rank = self.strategy.node_rank * self.strategy.num_processes + local_rank
                how = (
                    f"was killed by signal {signal.Signals(-code).name}"
                    if code is not None and code < 0
                    else f"exited with code {code}"
                )
                self.kill_children()
                return f"fulmen: rank {rank} (process {proc.pid}) {how}; stopping the run."
        return None

    def kill_children(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()

    def wait_children(self, timeout: float = 60.0) -> None:
        """At exit: let the children finish the script, then make sure none is left."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        self.kill_children()


def _command_line() -> list[str]:
    """The command that started this process, in a form that starts it again."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", None):
        # Started as `python -m package.module`.
        name = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [sys.executable, "-m", name, *sys.argv[1:]]
    script = os.path.abspath(sys.argv[0])
    if not os.path.exists(script):
        raise RuntimeError(
            "Trainer(strategy='ddp') starts one process per device by running your script "
            f"again, but this process was not started from a script file ({sys.argv[0]!r}). "
            "Use strategy='ddp_spawn' (or 'ddp_notebook' in a notebook), or launch with torchrun."
        )
    return [sys.executable, script, *sys.argv[1:]]


class SpawnLauncher:
    """Run the entry point in `num_processes` new processes; return rank 0's result here."""

    def __init__(self, strategy: DDPStrategy, start_method: str) -> None:
        self.strategy = strategy
        self.start_method = start_method
        self.launched = False

    @property
    def is_interactive_compatible(self) -> bool:
        return self.start_method == "fork"

    def launch(self, function: Callable[..., Any], *args: Any, trainer: Trainer) -> Any:
        import torch.multiprocessing as mp

        env = self.strategy.cluster_env
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        context = mp.get_context(self.start_method)
        queue = context.SimpleQueue()
        payload: Any = (trainer, function, args)
        if self.start_method != "fork":
            # Plain pickling copies tensors. torch.multiprocessing's own pickling would put CPU
            # tensors in shared memory, and every worker would then update the same weights
            # and metric states.
            payload = pickle.dumps(payload)
        with tempfile.TemporaryDirectory(prefix="fulmen-spawn-") as tmp:
            mp.start_processes(  # type: ignore[attr-defined,no-untyped-call]
                _worker,
                args=(payload, queue, tmp),
                nprocs=self.strategy.num_processes,
                start_method=self.start_method,
            )
            # Tensors sent through the queue would be shared with a worker that has exited:
            # rank 0 writes its output to a file instead and only says where it is.
            path = queue.get()
            output = torch.load(path, weights_only=False)  # written by our own worker just now
            return _adopt_worker_output(trainer, output)


def _worker(process_idx: int, payload: Any, queue: Any, tmp: str) -> None:
    from fulmen.utilities.seed import reset_seed

    if isinstance(payload, bytes):
        payload = pickle.loads(payload)  # noqa: S301 - written by the parent process above
    trainer, function, args = payload
    strategy: DDPStrategy = trainer.strategy
    strategy.set_local_rank(process_idx)
    strategy.launcher.launched = True  # type: ignore[union-attr]
    reset_seed()
    result = function(*args)
    if strategy.global_rank == 0:
        path = os.path.join(tmp, "output.pt")
        torch.save(_worker_output(trainer, result, tmp), path)
        queue.put(path)


def _worker_output(trainer: Trainer, result: Any, tmp: str) -> dict[str, Any]:
    weights = os.path.join(tmp, "weights.pt")
    torch.save(trainer.lightning_module.state_dict(), weights)
    callback = trainer.checkpoint_callback
    return {
        "result": result,
        "weights": weights,
        "best_model_path": getattr(callback, "best_model_path", None),
        "best_model_score": getattr(callback, "best_model_score", None),
        "callback_metrics": {k: v.cpu() for k, v in trainer.callback_metrics.items()},
        "logged_metrics": {k: v.cpu() for k, v in trainer.logged_metrics.items()},
        "epoch": trainer.state.epoch,
        "global_step": trainer.state.global_step,
        "status": trainer.state.status,
    }


def _adopt_worker_output(trainer: Trainer, output: dict[str, Any]) -> Any:
    module = trainer.lightning_module
    module.load_state_dict(torch.load(output["weights"], weights_only=True))
    callback = trainer.checkpoint_callback
    if callback is not None and output["best_model_path"] is not None:
        callback.best_model_path = output["best_model_path"]
        callback.best_model_score = output["best_model_score"]
    trainer._results.callback.update(output["callback_metrics"])
    trainer._results.logged.update(output["logged_metrics"])
    trainer.state.epoch = output["epoch"]
    trainer.state.global_step = output["global_step"]
    trainer.state.status = output["status"]
    return output["result"]
