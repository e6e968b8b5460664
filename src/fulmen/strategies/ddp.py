"""Distributed data parallel: one process per device, gradients averaged by torch.distributed.

Each process holds a full copy of the model wrapped in `DistributedDataParallel`; the trainer
gives each one a different shard of the data (`DistributedSampler`). Collectives for logging and
callbacks (`reduce`, `all_gather`, `broadcast`, `barrier`) go through the same process group.
fulmen's own bookkeeping (agreeing to stop, checking that ranks log the same keys) uses a second,
CPU (gloo) group so it never interleaves with the model's collectives.
"""

from __future__ import annotations

import atexit
import os
import time
import traceback
import zlib
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from fulmen.plugins.environments import ClusterEnvironment, LightningEnvironment
from fulmen.plugins.io import CheckpointIO
from fulmen.plugins.precision import Precision
from fulmen.strategies.launchers import ScriptLauncher, SpawnLauncher
from fulmen.strategies.strategy import ParallelStrategy
from fulmen.strategies.watchdog import Watchdog
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_only

if TYPE_CHECKING:
    from fulmen.accelerators.accelerator import Accelerator
    from fulmen.core.module import LightningModule

__all__ = ["DDPStrategy"]

_DEFAULT_TIMEOUT = timedelta(minutes=30)
_STOP_POLL_S = 0.5  # how often ranks check, together, whether one of them got SIGTERM
_START_METHODS = ("popen", "spawn", "fork", "forkserver")
_REDUCE_OPS = {
    "mean": dist.ReduceOp.SUM,
    "avg": dist.ReduceOp.SUM,
    "sum": dist.ReduceOp.SUM,
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
}


class _TrainingStepForward(nn.Module):
    """Make `training_step` the forward of the module DDP wraps, so DDP sees every step."""

    def __init__(self, module: LightningModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.training_step(*args, **kwargs)


class DDPStrategy(ParallelStrategy):
    """Train with `torch.nn.parallel.DistributedDataParallel`, one process per device.

    `start_method` picks how processes start on this machine: "popen" runs the script again
    per device (strategy "ddp"), "spawn"/"fork"/"forkserver" use torch.multiprocessing
    ("ddp_spawn", "ddp_fork"/"ddp_notebook"). Under torchrun or SLURM the processes exist
    already and none is started. Extra keyword arguments go to `DistributedDataParallel`.

    Example:
        >>> strategy = DDPStrategy(find_unused_parameters=True, start_method="spawn")
        >>> strategy.strategy_name, strategy.process_group_backend is None
        ('ddp', True)
    """

    strategy_name = "ddp"

    def __init__(
        self,
        accelerator: Accelerator | None = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: ClusterEnvironment | None = None,
        checkpoint_io: CheckpointIO | None = None,
        precision_plugin: Precision | None = None,
        ddp_comm_state: object | None = None,
        ddp_comm_hook: Any | None = None,
        ddp_comm_wrapper: Any | None = None,
        model_averaging_period: int | None = None,
        process_group_backend: str | None = None,
        timeout: timedelta | None = _DEFAULT_TIMEOUT,
        start_method: str = "popen",
        watchdog_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            accelerator, parallel_devices, cluster_environment, checkpoint_io, precision_plugin
        )
        if start_method not in _START_METHODS:
            raise ValueError(
                f"DDPStrategy(start_method={start_method!r}) is invalid: expected one of "
                f"{list(_START_METHODS)}."
            )
        if model_averaging_period is not None:
            raise MisconfigurationException(
                "DDPStrategy(model_averaging_period=...) (post-local SGD) is not supported by "
                "fulmen."
            )
        self.process_group_backend = process_group_backend
        self._timeout = timeout or _DEFAULT_TIMEOUT
        self._start_method = start_method
        self._ddp_kwargs = kwargs
        self._ddp_comm_state = ddp_comm_state
        self._ddp_comm_hook = ddp_comm_hook
        self._ddp_comm_wrapper = ddp_comm_wrapper
        env_timeout = os.environ.get("FULMEN_WATCHDOG_TIMEOUT")
        self.watchdog_timeout = (
            watchdog_timeout
            if watchdog_timeout is not None
            else float(env_timeout)
            if env_timeout
            else 120.0
        )
        self._num_nodes = 1
        self._local_rank_override: int | None = None
        self.sync_batchnorm = False
        self.launcher: ScriptLauncher | SpawnLauncher | None = None
        self.watchdog: Watchdog | None = None
        self._control_group: Any = None
        self._stop_work: Any = None
        self._stop_flag: Tensor | None = None
        self._stop_calls = 0
        self._stop_every = 0  # steps between stop checks, agreed after the first 10 steps
        self._stop_clock = 0.0

    # ------------------------------------------------------------------ topology

    @property
    def cluster_env(self) -> ClusterEnvironment:
        if self.cluster_environment is None:
            self.cluster_environment = LightningEnvironment()
        env: ClusterEnvironment = self.cluster_environment
        return env

    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @num_nodes.setter
    def num_nodes(self, value: int) -> None:
        self._num_nodes = value

    @property
    def num_processes(self) -> int:
        return len(self.parallel_devices) if self.parallel_devices else 1

    @property
    def local_rank(self) -> int:
        if self._local_rank_override is not None:
            return self._local_rank_override
        return self.cluster_env.local_rank()

    @property
    def node_rank(self) -> int:
        return self.cluster_env.node_rank()

    @property
    def global_rank(self) -> int:
        env = self.cluster_env
        if env.creates_processes_externally and not isinstance(env, LightningEnvironment):
            return env.global_rank()
        return self.node_rank * self.num_processes + self.local_rank

    @property
    def world_size(self) -> int:
        env = self.cluster_env
        if env.creates_processes_externally and not isinstance(env, LightningEnvironment):
            return env.world_size()
        return self.num_nodes * self.num_processes

    @property
    def root_device(self) -> torch.device:
        if not self.parallel_devices:
            return torch.device("cpu")
        return self.parallel_devices[self.local_rank]

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any]:
        return {"num_replicas": self.world_size, "rank": self.global_rank}

    def set_local_rank(self, rank: int) -> None:
        """Used by the spawn launcher: each worker learns its rank from its index."""
        self._local_rank_override = rank

    def configure_launcher(self) -> None:
        """Choose how processes start (none when a cluster launcher started them)."""
        env = self.cluster_env
        if env.creates_processes_externally or self.world_size == 1 and self.num_nodes == 1:
            self.launcher = None
        elif self._start_method == "popen":
            self.launcher = ScriptLauncher(self)
        else:
            self.launcher = SpawnLauncher(self, self._start_method)

    # ------------------------------------------------------------------ set up and tear down

    def setup_environment(self) -> None:
        self._init_process_group()
        super().setup_environment()

    def _init_process_group(self) -> None:
        env = self.cluster_env
        rank, world_size = self.global_rank, self.world_size
        env.set_global_rank(rank)
        env.set_world_size(world_size)
        rank_zero_only.rank = rank  # type: ignore[attr-defined]
        if not dist.is_available():
            raise MisconfigurationException(
                "Trainer(strategy='ddp') needs torch.distributed, which this PyTorch build lacks."
            )
        if not dist.is_initialized():
            os.environ["MASTER_ADDR"] = env.main_address
            os.environ["MASTER_PORT"] = str(env.main_port)
            backend = self.process_group_backend or (
                "nccl" if self.root_device.type == "cuda" else "gloo"
            )
            self.process_group_backend = backend
            kwargs: dict[str, Any] = {}
            if backend == "nccl":
                kwargs["device_id"] = self.root_device
            dist.init_process_group(
                backend, rank=rank, world_size=world_size, timeout=self._timeout, **kwargs
            )
        if self._control_group is None:
            # A group of its own, so that a rank in fulmen's bookkeeping collective never pairs
            # with another rank's gradient all-reduce. Every rank creates it at the same point.
            self._control_group = dist.new_group(backend="gloo", timeout=self._timeout)
        if self.watchdog is None:
            launcher = self.launcher
            extra = launcher.check_children if isinstance(launcher, ScriptLauncher) else None
            if extra is None and os.environ.get("FULMEN_LAUNCHED") == "1":
                extra = _parent_gone_check()
            self.watchdog = Watchdog(
                dist.distributed_c10d._get_default_store(),
                rank,
                world_size,
                self.watchdog_timeout,
                extra_check=extra,
            )
            self.watchdog.start()
            atexit.register(self._shutdown)

    def _shutdown(self) -> None:
        """At interpreter exit: let the children finish, then close the process group.

        Rank 0 hosts the store the others talk through, so it waits for its children first.
        Destroying the group before exit also keeps gloo's threads from aborting the process.
        """
        if isinstance(self.launcher, ScriptLauncher):
            self.launcher.wait_children()
        if self.watchdog is not None:
            self.watchdog.stop()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def setup(self, model: LightningModule) -> None:
        self.connect(model)
        converted = self.precision_plugin.convert_module(model)
        converted.to(self.root_device)
        trainer = model._trainer
        fitting = trainer is not None and str(trainer.state.fn) == "fit"
        self._model = model
        if not fitting:
            return
        if self.sync_batchnorm:
            from fulmen.plugins.layer_sync import TorchSyncBatchNorm

            if self.root_device.type == "cpu":
                raise MisconfigurationException(
                    "Trainer(sync_batchnorm=True) needs GPUs: torch.nn.SyncBatchNorm does not run "
                    "on the CPU. Drop sync_batchnorm=True for CPU training."
                )

            # Converting replaces BatchNorm children in place (the top module itself is kept).
            TorchSyncBatchNorm().apply(model)
        if not any(p.requires_grad for p in model.parameters()):
            return  # nothing to synchronize; DDP refuses modules without trainable parameters
        device_ids = [self.root_device.index] if self.root_device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(
            _TrainingStepForward(model), device_ids=device_ids, **self._ddp_kwargs
        )
        if self._ddp_comm_hook is not None:
            hook = self._ddp_comm_hook
            if self._ddp_comm_wrapper is not None:
                hook = self._ddp_comm_wrapper(hook)
            ddp.register_comm_hook(state=self._ddp_comm_state, hook=hook)
        self._model = ddp

    def teardown(self) -> None:
        self._finish_stop_poll()
        if isinstance(self._model, nn.parallel.DistributedDataParallel):
            self._model = self._lightning_module
        super().teardown()

    def on_exception(self, exception: BaseException) -> None:
        """Tell the other ranks, so they stop in seconds instead of waiting in a collective."""
        from fulmen.utilities.exceptions import SIGTERMException

        # Ctrl-C and an agreed SIGTERM stop every rank anyway: not a failure to spread.
        if self.watchdog is None or isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        text = "".join(traceback.format_exception(exception))
        self.watchdog.report_failure(
            f"Traceback of rank {self.global_rank} ({type(exception).__name__}):\n{text}"
        )

    # ------------------------------------------------------------------ steps

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.forward_context():
            return self._model(*args, **kwargs)  # type: ignore[misc]

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        watchdog = self.watchdog
        if watchdog is None:
            return super().backward(loss, *args, **kwargs)
        with watchdog.waiting("backward (gradient all-reduce)"):
            super().backward(loss, *args, **kwargs)

    def block_backward_sync(self) -> AbstractContextManager[Any]:
        """While accumulating, skip the gradient all-reduce until the stepping batch."""
        if isinstance(self._model, nn.parallel.DistributedDataParallel):
            return self._model.no_sync()
        return nullcontext()

    def mark(self, stage: str, epoch: int, batch_idx: int) -> None:
        watchdog = self.watchdog
        if watchdog is not None:
            watchdog.where = (stage, epoch, batch_idx)
            watchdog.ticks += 1

    # ------------------------------------------------------------------ collectives

    def _waiting(self, name: str) -> AbstractContextManager[Any]:
        return self.watchdog.waiting(name) if self.watchdog is not None else nullcontext()

    def barrier(self, name: str | None = None) -> None:
        if not _distributed():
            return
        with self._waiting(f"barrier({name or ''})"):
            if self.process_group_backend == "nccl":
                dist.barrier(device_ids=[self.root_device.index])
            else:
                dist.barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if not _distributed():
            return obj
        box = [obj]
        with self._waiting("broadcast"):
            dist.broadcast_object_list(box, src, group=self._control_group)
        return box[0]

    def reduce(self, tensor: Any, group: Any | None = None, reduce_op: str | None = "mean") -> Any:
        if not _distributed() or not isinstance(tensor, Tensor):
            return tensor
        name = (reduce_op or "mean").lower() if isinstance(reduce_op, str) else reduce_op
        op = _REDUCE_OPS.get(name) if isinstance(name, str) else name
        if op is None:
            raise ValueError(
                f"strategy.reduce(reduce_op={reduce_op!r}) is invalid: expected one of "
                f"{sorted(_REDUCE_OPS)} or a torch.distributed.ReduceOp."
            )
        result = tensor.detach().clone() if tensor.requires_grad else tensor.clone()
        if not result.is_floating_point() and name in ("mean", "avg"):
            result = result.float()
        with self._waiting(f"reduce({name})"):
            dist.all_reduce(result, op=op, group=group)
        if name in ("mean", "avg"):
            result = result / dist.get_world_size(group)
        return result

    def all_gather(self, tensor: Any, group: Any | None = None, sync_grads: bool = False) -> Any:
        if not _distributed():
            return tensor
        from fulmen.utilities.apply_func import apply_to_collection

        return apply_to_collection(tensor, Tensor, lambda t: self._gather_one(t, group, sync_grads))

    def _gather_one(self, tensor: Tensor, group: Any, sync_grads: bool) -> Tensor:
        world = dist.get_world_size(group)
        tensor = tensor.contiguous()
        if tensor.dim() == 0:
            tensor = tensor.reshape(1)
            scalar = True
        else:
            scalar = False
        self.check_same_shape(tuple(tensor.shape), "all_gather")
        with self._waiting("all_gather"):
            if sync_grads:
                import torch.distributed.nn.functional as dist_fn

                gathered = list(dist_fn.all_gather(tensor, group=group or dist.group.WORLD))  # type: ignore[no-untyped-call]
            else:
                gathered = [torch.empty_like(tensor) for _ in range(world)]
                dist.all_gather(gathered, tensor, group=group)
        stacked = torch.stack(gathered)
        return stacked.squeeze(1) if scalar else stacked

    def check_same_shape(self, shape: tuple[int, ...], what: str) -> None:
        """Raise a clear error when ranks pass tensors of different shapes to a collective."""
        if not _distributed():
            return
        shapes: list[Any] = [None] * dist.get_world_size()
        with self._waiting(f"{what} shape check"):
            dist.all_gather_object(shapes, shape, group=self._control_group)
        if len(set(shapes)) > 1:
            listing = ", ".join(f"rank {r}: {s}" for r, s in enumerate(shapes))
            raise RuntimeError(
                f"{what}: the ranks passed tensors of different shapes ({listing}). Every rank "
                "must pass the same shape; pad them first (e.g. to the largest batch)."
            )

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        if not _distributed():
            return decision
        flag = torch.tensor(int(bool(decision)), dtype=torch.int32)
        with self._waiting("reduce_boolean_decision"):
            dist.all_reduce(flag, op=dist.ReduceOp.SUM, group=self._control_group)
        total = int(flag.item())
        return total == self.world_size if all else total > 0

    def check_same_keys(self, keys: tuple[str, ...], where: str) -> None:
        """Before a logging sync: make sure every rank syncs the same names, else say which."""
        signature = zlib.crc32("\x00".join(keys).encode())
        gathered: list[Any] = [None] * dist.get_world_size()
        with self._waiting(f"self.log sync of {list(keys)} in {where}"):
            dist.all_gather_object(gathered, (signature, keys, where), group=self._control_group)
        if len({g[0] for g in gathered}) > 1:
            listing = "\n".join(f"  rank {r}: {g[1]} in {g[2]}" for r, g in enumerate(gathered))
            raise MisconfigurationException(
                "self.log(..., sync_dist=True) was called with different names on different "
                "ranks; a synchronized value must be logged by every rank in the same order:\n"
                + listing
            )

    def agree_to_stop(self, requested: bool) -> bool:
        """Whether any rank asked to stop (SIGTERM): every rank gets the same answer, same step.

        A collective every step would cost as much as a small model's step, so ranks check about
        once per `_STOP_POLL_S` seconds: after 10 steps they agree on how many steps that is
        (the slowest rank's pace). Each check starts an all-reduce of the flags and reads the
        previous check's result, so no step waits for it.
        """
        if not _distributed():
            return requested
        self._stop_calls += 1
        calls = self._stop_calls
        if self._stop_every == 0:
            if calls == 1:
                self._stop_clock = time.monotonic()
            if calls < 10:
                return False
            pace = torch.tensor((time.monotonic() - self._stop_clock) / 9, dtype=torch.float64)
            dist.all_reduce(pace, op=dist.ReduceOp.MAX, group=self._control_group)
            self._stop_every = max(1, int(_STOP_POLL_S / max(float(pace), 1e-6)))
            self._stop_calls = calls = 0
        if calls % self._stop_every:
            return False
        decided = False
        if self._stop_work is not None and self._stop_flag is not None:
            self._stop_work.wait()
            decided = bool(self._stop_flag.item() > 0)
        self._stop_flag = torch.tensor(int(requested), dtype=torch.int32)
        self._stop_work = dist.all_reduce(
            self._stop_flag, op=dist.ReduceOp.SUM, group=self._control_group, async_op=True
        )
        return decided

    def _finish_stop_poll(self) -> None:
        if self._stop_work is not None:
            self._stop_work.wait()
        self._stop_work = None
        self._stop_flag = None

    # ------------------------------------------------------------------ checkpoints

    def lightning_module_state_dict(self) -> dict[str, Any]:
        return self._lightning_module.state_dict()  # type: ignore[union-attr]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _parent_gone_check() -> Any:
    parent = os.getppid()

    def check() -> str | None:
        if os.getppid() != parent:
            return (
                f"fulmen: the rank-0 process ({parent}) that launched this one is gone; "
                f"stopping rank {os.environ.get('LOCAL_RANK', '?')}."
            )
        return None

    return check
