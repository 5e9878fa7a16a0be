"""One trainer for every neural family: AdamW, early stopping, per-epoch atomic checkpoints.

Early stopping cannot end a run that has not trained (docs/training.md): no stop before
``min_epochs``, and while the training loss is still on the class-prior plateau (the loss of
a constant predictor, passed to :meth:`Trainer.fit` as ``prior_loss``) the patience count
does not start. ``epochs`` is a budget. The learning rate warms up linearly over
``warmup_epochs`` and then stays (``lr_schedule: constant``) or follows a cosine to zero at
the end of the budget (``cosine``); it is a pure function of the global step, so a resumed
run follows the same schedule.

Resume is exact: batch order and dropout noise are re-seeded from (seed, epoch) at the
start of every epoch, so a job killed and restarted from its last checkpoint ends with
the same weights and metrics as one that never stopped (what makes SLURM requeue safe).
A checkpoint carries a fingerprint of the run's inputs and settings; one written for other
inputs (a changed config or dataset) is ignored rather than resumed.

Progress goes to stderr (the rule's log): a tqdm bar on a terminal, otherwise one tqdm
status line per epoch, so that log files hold no carriage-return refreshes.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from scgraphbench.errors import ScgbError
from scgraphbench.evaluate.collapse import at_prior
from scgraphbench.io import atomic_path

log = logging.getLogger(__name__)

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    epochs: int = 20  # the budget: early stopping ends most runs well before it
    patience: int = 5
    min_epochs: int = 5  # no early stop before this many epochs (or the budget)
    lr: float = 1e-4
    warmup_epochs: float = 0.0  # linear warm-up of the learning rate over this many epochs
    lr_schedule: str = "constant"  # after warm-up: constant | cosine (to 0 at the budget)
    weight_decay: float = 0.01
    batch_size: int = 32
    class_weight: str | None = "balanced"  # balanced | None, for every family alike
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast is used on CUDA only)
    max_steps_per_epoch: int = 0  # 0 = whole epoch
    grad_clip: float = 1.0
    train_fraction: float = 1.0  # few-shot: stratified share of training cells kept

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:  # the config schema rejects these; a hand-written --train may have typos
            log.warning("ignoring unknown train settings %s (known: %s)", unknown, sorted(known))
        cfg = cls(**{k: v for k, v in d.items() if k in known})
        if not 0.0 < float(cfg.train_fraction) <= 1.0:
            raise ScgbError(
                f"train_fraction = {cfg.train_fraction} is not in (0, 1]",
                field="train.train_fraction",
                fix="use e.g. 0.1 for 10% of cells",
            )
        if cfg.class_weight not in ("balanced", None):
            raise ScgbError(
                f"class_weight = {cfg.class_weight!r}",
                field="train.class_weight",
                fix="use balanced, or null for unweighted",
            )
        if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ScgbError(
                f"unknown precision '{cfg.precision}'",
                field="train.precision",
                fix="use auto, fp32, bf16 or fp16",
            )
        for key in ("epochs", "patience", "batch_size"):
            if int(getattr(cfg, key)) < 1:
                raise ScgbError(
                    f"{key} = {getattr(cfg, key)} is below 1",
                    field=f"train.{key}",
                    fix="use 1 or more",
                )
        if int(cfg.min_epochs) < 0:  # above the budget it is the budget that ends the run
            raise ScgbError(
                f"min_epochs = {cfg.min_epochs} is negative",
                field="train.min_epochs",
                fix="use 0 or more",
            )
        if not 0.0 <= float(cfg.warmup_epochs) < int(cfg.epochs):
            raise ScgbError(
                f"warmup_epochs = {cfg.warmup_epochs} is not in [0, epochs = {cfg.epochs})",
                field="train.warmup_epochs",
                fix="warm up over fewer epochs than the budget, or use 0",
            )
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ScgbError(
                f"unknown lr_schedule {cfg.lr_schedule!r}",
                field="train.lr_schedule",
                fix=f"use one of {', '.join(LR_SCHEDULES)}",
            )
        if not float(cfg.lr) >= 0.0:  # 0 is allowed: a deliberately untrained control
            raise ScgbError(
                f"lr = {cfg.lr} is negative",
                field="train.lr",
                fix="use a learning rate >= 0, e.g. 3e-3",
            )
        return cfg

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate of global step ``step`` (0-based) under warm-up and schedule."""
        warm = float(self.warmup_epochs) * steps_per_epoch
        if warm > 0 and step < warm:
            return float(self.lr) * (step + 1) / warm
        if self.lr_schedule == "cosine":
            total = max(int(self.epochs) * steps_per_epoch - warm, 1.0)
            done = min(max(step - warm, 0.0) / total, 1.0)
            return float(self.lr) * 0.5 * (1.0 + math.cos(math.pi * done))
        return float(self.lr)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ScgbError(
            "CUDA requested but no GPU is visible",
            field="train.device",
            fix="set train.device to 'auto' or 'cpu', or run on a GPU node",
        )
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision on GPU only; CPU runs stay fp32 so that results are exact and portable."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision in ("bf16", "auto"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    raise ValueError(f"unknown precision '{precision}'")


def seed_everything(seed: int) -> None:
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainState:
    epoch: int = 0
    best_score: float = -np.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    epoch_times: list[float] = field(default_factory=list)
    done: bool = False


class Trainer:
    """Trains ``model`` with batches from ``batches(epoch)`` and validates with ``validate``.

    ``validate(model)`` returns a score where higher is better (macro-F1, or minus the
    validation loss) and a dict of numbers for the progress bar and history.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        seed: int,
        loss_fn: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor] | None,
        checkpoint: str | Path | None = None,
        fingerprint: str = "",
    ) -> None:
        self.cfg, self.seed, self.loss_fn = cfg, seed, loss_fn
        self.fingerprint = fingerprint
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.amp = autocast_dtype(cfg.precision, self.device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.state = TrainState()
        self.best_weights = copy.deepcopy(self.model.state_dict())
        self.resumed_from: int | None = None

    @property
    def finished(self) -> bool:
        """Training ended (early stop or the epoch budget), not a simulated kill."""
        return self.state.done or self.state.epoch >= self.cfg.epochs

    # -- checkpointing -------------------------------------------------------------
    def save(self) -> None:
        if self.checkpoint is None:
            return
        blob = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best": self.best_weights,
            "state": self.state.__dict__,
            "fingerprint": self.fingerprint,
        }
        # through a Python file: a full disk then raises OSError(ENOSPC), which atomic_path
        # reports by name; torch.save(blob, path) raises an opaque RuntimeError instead
        with atomic_path(self.checkpoint, suffix=".pt") as tmp, open(tmp, "wb") as fh:
            torch.save(blob, fh)

    def try_resume(self) -> bool:
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        try:
            blob = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        except Exception as e:  # unreadable (other torch version, disk error): start afresh
            log.warning("ignoring unreadable checkpoint %s (%s)", self.checkpoint, e)
            return False
        if not isinstance(blob, dict) or blob.get("fingerprint", "") != self.fingerprint:
            log.warning("ignoring %s: written for other inputs or settings", self.checkpoint)
            return False
        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        self.scaler.load_state_dict(blob["scaler"])
        self.best_weights = blob["best"]
        self.state = TrainState(**blob["state"])
        self.resumed_from = self.state.epoch
        return True

    # -- training ------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def to_device(self, batch: Batch) -> Batch:
        inputs, target = batch
        return (
            {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()},
            target.to(self.device, non_blocking=True),
        )

    def set_lr(self, steps_per_epoch: int) -> float:
        lr = self.cfg.lr_at(self.state.global_step, steps_per_epoch)
        for group in self.opt.param_groups:
            group["lr"] = lr
        return lr

    def step(self, batch: Batch) -> float:
        inputs, target = self.to_device(batch)
        self.model.train()
        t0 = time.perf_counter()
        with self.autocast():
            out = self.model(**inputs)
            loss = self.loss_fn(out, target)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.state.global_step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.state.step_times.append(time.perf_counter() - t0)
        value = float(loss.detach())
        if not np.isfinite(value):
            raise ScgbError(
                f"training loss became {value} at epoch {self.state.epoch}",
                field="train.lr",
                fix="lower train.lr, or set train.precision: fp32",
            )
        return value

    def infer(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward pass in eval mode under the training precision; outputs in float32."""
        self.model.eval()
        with torch.no_grad(), self.autocast():
            out = self.model(**{k: v.to(self.device, non_blocking=True) for k, v in inputs.items()})
        return {k: v.float() for k, v in out.items()}

    def fit(
        self,
        batches: Callable[[int], Iterator[Batch]],
        validate: Callable[[torch.nn.Module], tuple[float, dict[str, float]]],
        stop_after_epoch: int | None = None,
        prior_loss: float | None = None,
    ) -> TrainState:
        """Train until ``cfg.epochs`` or early stopping; resumes from the checkpoint if any.

        ``prior_loss``: the training loss of a constant predictor (annotation: the class
        prior, :func:`scgraphbench.evaluate.collapse.prior_loss`); while an epoch's loss is
        still on that plateau, patience does not count. ``stop_after_epoch`` ends the call
        early (after saving), as a kill would: tests use it.
        """
        self.try_resume()
        steps_per_epoch = self.steps_per_epoch(batches)
        tty = sys.stderr.isatty()
        first_epoch = self.state.epoch
        bar = tqdm(
            total=self.cfg.epochs,
            initial=first_epoch,
            file=sys.stderr,
            desc="epochs",
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not tty,
        )
        t_start = time.perf_counter()
        while not self.state.done and self.state.epoch < self.cfg.epochs:
            epoch = self.state.epoch
            # re-seed from (seed, epoch) so that a resumed run replays the same randomness
            torch.manual_seed(self.seed * 100_003 + epoch)
            t0 = time.perf_counter()
            losses, lr = [], float(self.cfg.lr)
            for i, batch in enumerate(batches(epoch)):
                if self.cfg.max_steps_per_epoch and i >= self.cfg.max_steps_per_epoch:
                    break
                lr = self.set_lr(steps_per_epoch)
                losses.append(self.step(batch))
            self.state.epoch_times.append(time.perf_counter() - t0)
            score, info = validate(self.model)
            record = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_score": score,
                "lr": lr,
                **info,
            }
            self.state.history.append(record)
            plateau = prior_loss is not None and at_prior(record["train_loss"], prior_loss)
            if score > self.state.best_score:
                self.state.best_score, self.state.best_epoch, self.state.bad_epochs = (
                    score,
                    epoch,
                    0,
                )
                self.best_weights = copy.deepcopy(self.model.state_dict())
            elif plateau:  # not trained yet: patience starts when the loss leaves the prior
                self.state.bad_epochs = 0
            else:
                self.state.bad_epochs += 1
            if self.state.bad_epochs >= self.cfg.patience and epoch + 1 >= self.cfg.min_epochs:
                self.state.done = True
            self.state.epoch = epoch + 1
            self.save()
            postfix = {
                "loss": f"{record['train_loss']:.4g}",
                **{k: f"{v:.4g}" for k, v in info.items()},
            }
            if tty:
                bar.update(1)
                bar.set_postfix(postfix)
            else:
                line = tqdm.format_meter(
                    self.state.epoch,
                    self.cfg.epochs,
                    time.perf_counter() - t_start,
                    prefix="epochs",
                    initial=first_epoch,
                    ncols=100,
                    postfix=", ".join(f"{k}={v}" for k, v in postfix.items()),
                )
                print(line, file=sys.stderr, flush=True)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                bar.close()
                return self.state
        bar.close()
        self.model.load_state_dict(self.best_weights)
        return self.state

    def steps_per_epoch(self, batches: Callable[[int], Iterator[Batch]]) -> int:
        """Optimizer steps in one epoch (the schedule's unit): epoch 0's batches counted,
        capped by ``max_steps_per_epoch``; batch order is a function of (seed, epoch) only,
        so counting does not disturb training."""
        if float(self.cfg.warmup_epochs) == 0 and self.cfg.lr_schedule == "constant":
            return 1  # the schedule is flat: no need to count
        n = sum(1 for _ in batches(0))
        cap = self.cfg.max_steps_per_epoch
        return max(min(n, cap) if cap else n, 1)

    def summary(self) -> dict[str, float]:
        st = self.state
        # the first steps include one-off allocation and kernel selection
        times = st.step_times[2:] if len(st.step_times) > 4 else st.step_times
        return {
            "time_per_step_s": statistics.median(times) if times else float("nan"),
            "epoch_time_s": statistics.median(st.epoch_times) if st.epoch_times else float("nan"),
            "train_time_s": float(sum(st.epoch_times)),
            "epochs_run": st.epoch,
            "best_epoch": st.best_epoch,
            "best_val_score": float(st.best_score),
            "steps": len(st.step_times),
        }


def minibatches(n: int, batch_size: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Shuffled index batches, the order a function of (seed, epoch) only. A last batch of
    one example joins the one before it (batch normalisation needs two)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n
        yield order[start:stop]
