"""The training loop: one method, one dataset, exact resume, signal-safe step boundaries.

Per step: uint8 batch → device → ``make_batch_builder`` → ``Method.forward`` → loss (+ the
online linear probe's loss on detached ``StepOutput.features[0]``) → backward (AMP
GradScaler on CUDA) → optional grad clipping → optimizer and schedule step →
``Method.on_step_end``. Logging to ``metrics.jsonl``/wandb every ``log_every`` steps;
checkpoints every N steps, every M minutes, at the end and on request.

Signals. While ``fit`` runs, SIGUSR1, SIGUSR2 and SIGTERM are blocked in the training
thread (and in every thread it starts) with ``signal.pthread_sigmask``; they are unblocked
only between steps, where a handler someone else installed (submitit's) runs and may call
``current_trainer().save_checkpoint(reason)``. The trainer installs no handler of its own:
it only defers an installed one to the next step boundary (see ``_SignalGate``).

Checkpoints. Before each save the method's and the probe's parameters and buffers are
checked to be finite (one host sync): a diverged model is never saved, so the last good
checkpoint survives. Each save renames the current ``last.pt`` to ``prev.pt`` first. The
stored training config is the one the run started with (``stored_config``): a resume with
other run-invariant settings (a new ``dataset.root`` for the same data, more workers) never
rewrites it; the roots the data was read from are kept beside it (``state["data"]``).

Distributed. If ``torch.distributed`` is initialised, the data is sharded with a
resumable sampler, the per-rank batch is ``batch_size / world_size``, the model is wrapped
in DDP, and only rank 0 writes logs and checkpoints. Exact resume is bitwise on one
process; under DDP rank 0 restores its RNG states and other ranks reseed from
``(seed, rank, step)``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sslequi.augment.builder import make_batch_builder
from sslequi.augment.ops import AugmentConfigError
from sslequi.augment.worker_crops import full_image_crops_for
from sslequi.config import AmpDtype, ConfigError, ResolvedConfig
from sslequi.data.base import ImageDataset
from sslequi.methods.base import Method
from sslequi.train.checkpoint import (
    FORMAT_VERSION,
    LAST,
    PREV,
    DataPosition,
    capture_rng,
    nonfinite,
    restore_rng,
    save_atomic,
)
from sslequi.train.lock import RunLock
from sslequi.train.logging import MetricsLogger
from sslequi.train.optim import (
    LRSchedule,
    make_optimizer,
    make_scheduler,
    param_groups,
    scaled_lr,
    warmup_steps,
)
from sslequi.train.rundir import RunDir
from sslequi.train.sampler import ResumableSampler, SeededItems
from sslequi.types import Batch, RawBatch, StepOutput, collate_samples

# Devices on which ``train.amp`` turns autocast on (float16 adds a GradScaler). CPU runs
# stay in fp32; tests add "cpu" to exercise the float16 scaler's checkpointed state.
AMP_DEVICE_TYPES: tuple[str, ...] = ("cuda",)
HANDLED_SIGNALS = frozenset({signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM})
# Checkpoint reasons that mean "this job stops and will be requeued".
REQUEUE_REASONS = frozenset({"requeue", "preempt", "preemption", "timeout", "signal"})

_current: Trainer | None = None


def current_trainer() -> Trainer | None:
    """The trainer whose ``fit`` is running in this process, if any."""
    return _current


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def online_probe_loss(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy of the online probe over the labelled images (label ≥ 0; unlabelled
    sets such as STL-10's ``unlabeled`` split use -1), their correct count and their count.

    A batch without labels gives a zero loss that keeps the graph; no host sync.
    """
    labelled = labels >= 0
    per_image = F.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
    seen = labelled.sum()
    loss = (per_image * labelled).sum() / seen.clamp(min=1)
    correct = ((logits.argmax(1) == labels) & labelled).sum()
    return loss, correct, seen


@dataclass
class DistInfo:
    """This process's place in the process group (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> DistInfo:
        if dist.is_available() and dist.is_initialized():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)
        return cls()


@dataclass
class TrainResult:
    """How ``fit`` ended."""

    step: int
    total_steps: int
    stopped_early: bool  # stop_after reached: the run continues in a later process
    last_record: dict[str, float] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.step >= self.total_steps


class OnlineProbe(nn.Module):
    """A linear classifier on detached backbone features (its own param group)."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features.detach().flatten(1).float())


class _StepModule(nn.Module):
    """Method + probe in one module, so DDP sees every trainable parameter in forward."""

    def __init__(self, method: Method, probe: OnlineProbe | None) -> None:
        super().__init__()
        self.method = method
        self.probe = probe

    def forward(self, batch: Batch) -> tuple[StepOutput, Tensor | None]:
        output = self.method(batch)
        logits = None
        if self.probe is not None and output.features:
            logits = self.probe(output.features[0])
        return output, logits


class _SignalGate:
    """Runs SIGUSR1/SIGUSR2/SIGTERM handlers only at step boundaries (module docstring).

    The signals are blocked in this thread with ``pthread_sigmask``. A signal can still land
    in a thread that existed before (torch's OpenMP pool), and CPython would then run the
    Python handler in this thread mid-step; so for the duration of ``fit`` an installed
    Python handler is wrapped: a signal arriving mid-step is recorded, and the original
    handler is called with it at the next boundary. Handlers are restored on exit.
    """

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "pthread_sigmask"
        )
        self._previous_mask: set[signal.Signals] = set()
        self._originals: dict[int, Any] = {}
        self._pending: list[int] = []

    def _record(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    def __enter__(self) -> _SignalGate:
        if self.active:
            for number in HANDLED_SIGNALS:
                handler = signal.getsignal(number)
                if callable(handler):
                    self._originals[number] = handler
                    signal.signal(number, self._record)
            self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        return self

    def deliver(self) -> None:
        """Call the handlers of signals that arrived (CPython runs pending ones on unblock)."""
        if not self.active:
            return
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS - self._previous_mask)
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        while self._pending:
            number = self._pending.pop(0)
            self._originals[number](number, None)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if not self.active:
            return
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)
        for number, handler in self._originals.items():
            signal.signal(number, handler)
        if exc_type is None:
            while self._pending:
                number = self._pending.pop(0)
                self._originals[number](number, None)


def resolve_device(name: str, dist_info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist_info.world_size > 1:
        name = f"cuda:{dist_info.local_rank}"
    return torch.device(name)


class Trainer:
    """Trains ``method`` on ``dataset`` as ``cfg`` says, writing into ``run``."""

    def __init__(
        self,
        cfg: ResolvedConfig,
        run: RunDir,
        method: Method,
        dataset: ImageDataset,
        logger: MetricsLogger | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.cfg = cfg
        self.run = run
        self.dist = dist_info or DistInfo.current()
        self.device = resolve_device(cfg.train.device, self.dist)
        self.method = method
        self.dataset = dataset
        self.logger = logger
        train = cfg.train

        if train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.per_rank_batch = train.batch_size // self.dist.world_size
        self.sampler = ResumableSampler(
            len(dataset), cfg.seed, self.dist.rank, self.dist.world_size, shuffle=True
        )
        self.steps_per_epoch = self.sampler.per_rank // self.per_rank_batch
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"dataset {cfg.dataset.name!r} has {len(dataset)} items, fewer than one "
                f"global batch of train.batch_size={train.batch_size}"
            )
        self.total_steps = train.steps or train.epochs * self.steps_per_epoch
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            SeededItems(dataset),
            batch_size=self.per_rank_batch,
            sampler=self.sampler,
            drop_last=True,
            num_workers=train.num_workers,
            persistent_workers=train.num_workers > 0,
            collate_fn=collate_samples,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_generator,
        )

        info = dataset.info
        self.spec = method.spec()
        self.build_batch = make_batch_builder(self.spec, info, cfg.augment, cfg.actions)
        if getattr(cfg.dataset, "full_image_crops", False):
            # ImageFolder: each view's crop is cut from the full image in the workers
            self._set_full_image_crops(dataset, info.image_size)
        method.on_train_start(self.steps_per_epoch, self.total_steps)
        probe = None
        if train.online_probe_every > 0 and info.num_classes >= 2:
            # The probe reads ``features[0]``: the backbone output, or a method's own choice
            # (seq-JEPA: z_AGG) whose width it names in ``online_probe_dim``.
            probe_dim = int(getattr(method, "online_probe_dim", method.feature_dim))
            probe = OnlineProbe(probe_dim, info.num_classes)
        self.probe = probe
        self.module = _StepModule(method, probe).to(self.device)
        if train.channels_last:
            self.module.to(memory_format=torch.channels_last)

        self.peak_lr = scaled_lr(cfg.optim, train.batch_size)
        self.optimizer = make_optimizer(
            param_groups(method, cfg.optim, self.peak_lr, probe), cfg.optim
        )
        self.schedule = LRSchedule(
            total_steps=self.total_steps,
            warmup_steps=warmup_steps(cfg.optim, self.steps_per_epoch),
            schedule=cfg.optim.schedule,
            final_ratio=cfg.optim.final_lr_ratio,
            warmup_from_zero=cfg.optim.warmup_from_zero,
            granularity=cfg.optim.schedule_granularity,
            steps_per_epoch=self.steps_per_epoch,
            milestones=tuple(cfg.optim.lr_milestones),
            gamma=cfg.optim.lr_gamma,
        )
        self.scheduler = make_scheduler(self.optimizer, self.schedule)
        self.use_amp = train.amp and self.device.type in AMP_DEVICE_TYPES
        self.amp_dtype = torch.float16 if train.amp_dtype is AmpDtype.float16 else torch.bfloat16
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.use_amp and self.amp_dtype == torch.float16
        )
        self.wrapped: nn.Module = self.module
        if self.dist.world_size > 1:
            if getattr(cfg.launcher, "sync_batchnorm", False):
                nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
            self.wrapped = nn.parallel.DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=train.ddp_find_unused_parameters,
            )

        self.step = 0
        self.position = DataPosition()
        self.last_checkpoint_reason: str | None = None
        # The config the run started with (saved in every checkpoint, never rewritten) and
        # the data it trains on: {"fingerprint": …, "roots": [every root it was read from]}.
        self.stored_config: dict[str, Any] = cfg.container
        self.data_record: dict[str, Any] | None = None
        self.lock: RunLock | None = None  # the run directory's lock (rank 0), checked at saves
        self._last_save_time = time.monotonic()
        # Per-step numbers stay on the device; they are read (one sync) when a window is logged.
        self._probe_correct: Tensor | float = 0.0
        self._probe_seen: Tensor | int = 0
        self._term_sums: dict[str, Tensor] = {}
        self._term_count = 0

    def _set_full_image_crops(self, dataset: ImageDataset, default_size: int) -> None:
        setter = getattr(dataset, "set_full_image_crops", None)
        if setter is None:
            raise ConfigError(
                f"dataset.full_image_crops: {type(dataset).__name__} cannot crop full images"
            )
        try:
            setter(full_image_crops_for(self.build_batch.pipeline, default_size))
        except AugmentConfigError as error:
            raise ConfigError(str(error)) from None

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "step": self.step,
            "total_steps": self.total_steps,
            "data_position": {"epoch": self.position.epoch, "batch": self.position.batch},
            "method": self.method.state_dict(),
            "probe": self.probe.state_dict() if self.probe is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng(),
            "loader_generator": self.loader_generator.get_state(),
            "world_size": self.dist.world_size,
            "config": self.stored_config,
            "data": self.data_record,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore everything ``state_dict`` saved (strict: a mismatch fails clearly)."""
        try:
            self.method.load_state_dict(state["method"])
            if self.probe is not None and state.get("probe") is not None:
                self.probe.load_state_dict(state["probe"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:  # empty when saved without a (CUDA float16) scaler
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise ConfigError(f"checkpoint does not match this run: {error}") from None
        self.step = int(state["step"])
        self.stored_config = state["config"]
        self.position = DataPosition(**state["data_position"])
        self.loader_generator.set_state(state["loader_generator"])
        if self.dist.rank == 0 and state.get("world_size", 1) == self.dist.world_size:
            restore_rng(state["rng"])
        else:
            seed_everything(self.cfg.seed + 7919 * self.dist.rank + self.step)

    def save_checkpoint(self, reason: str) -> Path | None:
        """Save the state as of the last completed step to ``checkpoints/last.pt`` (rank 0).

        The previous ``last.pt`` becomes ``prev.pt``. Refuses (``FloatingPointError``) when a
        parameter or buffer is not finite, leaving the checkpoints on disk as they are, and
        (``LockLostError``) when another process has taken the run directory's lock. A
        reason in ``REQUEUE_REASONS`` also marks the run ``requeued`` in ``run.json``.
        """
        self._last_save_time = time.monotonic()
        self._check_finite_weights(reason)
        if not self.run.writer:
            self.last_checkpoint_reason = reason
            return None
        if self.lock is not None:
            self.lock.check(verify=True)
        path = self.run.checkpoints / f"{LAST}.pt"
        state = self.state_dict()
        state["reason"] = reason
        save_atomic(state, path, previous=self.run.checkpoints / f"{PREV}.pt")
        if self.cfg.train.keep_checkpoints and reason == "periodic":
            save_atomic(state, self.run.checkpoints / f"step_{self.step}.pt")
        self.last_checkpoint_reason = reason
        info = self.run.read_info()
        if info is not None:
            info.step = self.step
            if reason in REQUEUE_REASONS:
                info.status, info.reason = "requeued", f"checkpointed for {reason}"
            self.run.write_info(info)
        return path

    def _check_finite_weights(self, reason: str) -> None:
        """Fail before a save when any parameter or buffer holds a NaN or an infinity."""
        named = [*self.module.named_parameters(), *self.module.named_buffers()]
        bad = nonfinite(named)
        if bad:
            listed = ", ".join(name.removeprefix("method.") for name in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise FloatingPointError(
                f"non-finite weights at step {self.step} ({listed}{more}): the {reason} "
                "checkpoint was not written; the checkpoints on disk are the last good ones"
            )

    # ------------------------------------------------------------------ loop

    def _batches(self) -> Iterator[RawBatch]:
        """The remaining batches of the current epoch."""
        self.sampler.set_position(self.position.epoch, self.position.batch * self.per_rank_batch)
        self.loader_generator.manual_seed(self.cfg.seed * 1_000_003 + self.position.epoch)
        yield from self.loader

    def _train_step(self, raw: RawBatch) -> dict[str, Tensor]:
        raw = raw.to(self.device)
        batch = self.build_batch(raw)
        if self.cfg.train.channels_last:
            batch.views = [
                v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v
                for v in batch.views
            ]
        self.module.train()
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
            if self.use_amp
            else contextlib.nullcontext()
        )
        with autocast:
            output, logits = self.wrapped(batch)
        loss = output.loss.float()
        total = loss
        if logits is not None:
            probe_loss, correct, seen = online_probe_loss(logits, batch.labels)
            total = total + probe_loss
            self._probe_correct = self._probe_correct + correct
            self._probe_seen = self._probe_seen + seen
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        grad_norm = None
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = nn.utils.clip_grad_norm_(self.method.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.method.on_step_end(self.step + 1, self.total_steps)
        record = {"loss": loss.detach()}
        for name, value in output.terms.items():
            record[f"terms/{name}"] = torch.as_tensor(value).detach().float().reshape(())
        if logits is not None:
            record["probe/loss"] = probe_loss.detach()
        if grad_norm is not None:
            record["grad_norm"] = grad_norm.detach().float()
        return record

    def _accumulate(self, record: dict[str, Tensor]) -> None:
        for key, value in record.items():
            previous = self._term_sums.get(key)
            self._term_sums[key] = value if previous is None else previous + value
        self._term_count += 1

    def _check_finite(self) -> None:
        """Fail on a non-finite loss in the current window (before it is logged or saved)."""
        loss = self._term_sums.get("loss")
        if loss is not None and not torch.isfinite(loss):
            first = self.step - self._term_count + 1
            raise FloatingPointError(f"loss is {loss.item()} in steps {first}..{self.step}")

    def _flush_log(self, seconds: float) -> dict[str, float]:
        self._check_finite()
        count = max(1, self._term_count)
        record: dict[str, float] = {}
        if self._term_sums:
            keys = sorted(self._term_sums)
            values = torch.stack([self._term_sums[k] for k in keys]) / count
            if self.dist.world_size > 1:
                dist.all_reduce(values)
                values = values / self.dist.world_size
            record = dict(zip(keys, values.tolist(), strict=True))
        record["epoch"] = self.position.epoch + self.position.batch / self.steps_per_epoch
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record["time/step_s"] = seconds / count
        record["samples_per_s"] = self.cfg.train.batch_size * count / max(seconds, 1e-9)
        self._term_sums, self._term_count = {}, 0
        return record

    def _flush_probe(self) -> dict[str, float]:
        if self._probe_seen == 0:
            return {}
        seen = int(self._probe_seen)
        if seen == 0:  # a window of unlabelled images only
            self._probe_correct, self._probe_seen = 0.0, 0
            return {}
        accuracy = float(self._probe_correct) / seen
        self._probe_correct, self._probe_seen = 0.0, 0
        return {"probe/acc": accuracy}

    def fit(self) -> TrainResult:
        """Train from ``self.step`` to the total (or ``stop_after`` steps in this process)."""
        global _current
        train = self.cfg.train
        stop_at = self.total_steps
        if train.stop_after > 0:
            stop_at = min(self.total_steps, self.step + train.stop_after)
        last_record: dict[str, float] = {}
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"{self.cfg.method.name}",
            disable=not (train.progress and self.dist.is_main),
            dynamic_ncols=True,
        )
        _current = self
        window_start = time.monotonic()
        try:
            with _SignalGate() as gate:
                while self.step < stop_at:
                    for raw in self._batches():
                        record = self._train_step(raw)
                        self.step += 1
                        batch = self.position.batch + 1
                        epoch = self.position.epoch
                        if batch == self.steps_per_epoch:
                            epoch, batch = epoch + 1, 0
                        self.position = DataPosition(epoch, batch)
                        self._accumulate(record)
                        bar.update(1)
                        if self.step % train.log_every == 0 or self.step == stop_at:
                            now = time.monotonic()
                            last_record = self._flush_log(now - window_start)
                            window_start = now
                            if (
                                train.online_probe_every > 0
                                and self.step % train.online_probe_every == 0
                            ) or self.step == stop_at:
                                last_record.update(self._flush_probe())
                            if self.logger is not None:
                                self.logger.log(self.step, last_record)
                            bar.set_postfix(loss=f"{last_record.get('loss', math.nan):.4f}")
                        elif (
                            train.online_probe_every > 0
                            and self.step % train.online_probe_every == 0
                            and self.logger is not None
                            and self._probe_seen > 0
                        ):
                            self.logger.log(self.step, self._flush_probe())
                        if self._checkpoint_due():
                            self._check_finite()
                            self.save_checkpoint("periodic")
                        if self.lock is not None:
                            self.lock.check()
                        gate.deliver()
                        if self.step >= stop_at:
                            break
                reason = "final" if self.step >= self.total_steps else "stop_after"
                self.save_checkpoint(reason)
        finally:
            _current = None
            bar.close()
        return TrainResult(
            step=self.step,
            total_steps=self.total_steps,
            stopped_early=self.step < self.total_steps,
            last_record=last_record,
        )

    def _checkpoint_due(self) -> bool:
        """A periodic save is due (never at the last step: the final save follows)."""
        train = self.cfg.train
        if self.step >= self.total_steps:
            return False
        if train.checkpoint_every_steps > 0 and self.step % train.checkpoint_every_steps == 0:
            return True
        if train.checkpoint_every_min > 0:
            return time.monotonic() - self._last_save_time >= 60 * train.checkpoint_every_min
        return False
