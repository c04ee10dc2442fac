"""The training loop shared by every task: AdamW with a linear warm-up schedule, layer
strategies, periodic evaluation with early stopping, checkpoints and a progress bar.

It knows a task only through :class:`services.training.task.Task`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.errors import ConfigError
from services.training.batching import LengthGroupedBatches
from services.training.checkpoint import CheckpointStore, RunState
from services.training.inference import resolve_precision
from services.training.layers import LayerSchedule, parameter_groups
from services.training.params import ResolvedParams, improves
from services.training.task import Task

log = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0
MAX_EVALUATIONS = 10


@dataclass(frozen=True)
class StepInfo:
    """What a ``callback`` sees after every optimiser step (raise in it to stop the run)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float


StepCallback = Callable[[StepInfo], None]


@dataclass
class RunOutcome:
    metrics: dict[str, Any]
    steps: int
    history: list[dict[str, Any]]
    resumed_from_step: int | None


class TrainingRun:
    """One training run of a task: optimiser, schedule, evaluation, early stopping, checkpoints."""

    def __init__(
        self, task: Task, params: ResolvedParams, device, checkpoint_dir, fingerprint, progress, callback
    ) -> None:
        self.task = task
        self.model = task.model
        self.params = params
        self.device = device
        self.progress = progress
        self.callback = callback
        self.mixed_precision = uses_bfloat16(params.precision, device)
        self.plan = LengthGroupedBatches(task.lengths, params.batch_size, params.seed, grouped=params.group_by_length)
        self.steps_per_epoch = len(self.plan)
        # A small data set still gets min_steps steps: a handful cannot train a new head.
        total = max(1, math.ceil(params.epochs * self.steps_per_epoch), params.min_steps)
        self.total_steps = min(total, params.max_steps) if params.max_steps else total
        # Once per epoch, but no more than ~MAX_EVALUATIONS times when min_steps means many tiny epochs.
        period = max(self.steps_per_epoch, math.ceil(self.total_steps / MAX_EVALUATIONS))
        self.eval_every = params.eval_every or period
        self.checkpoint_every = params.checkpoint_every or self.eval_every
        self.layers = LayerSchedule(
            self.model,
            params.strategy,
            params.freeze_layers,
            params.unfreeze_every or period,
            has_head=task.has_head,
        )
        self.optimizer = _adamw(
            parameter_groups(self.model, params.learning_rate, params.weight_decay, params.head_lr_multiplier)
        )
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, round(params.warmup_ratio * self.total_steps), self.total_steps
        )
        self.store = CheckpointStore(Path(checkpoint_dir), fingerprint) if checkpoint_dir else None
        self.state = RunState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_changed = False

    def run(self) -> RunOutcome:
        resumed_from = self._resume()
        if resumed_from is None and self.task.baseline_first and self.task.has_validation:
            self._evaluate(train_loss=None)  # the backbone as it is: the score to beat
        bar = _progress_bar(self.total_steps, self.state.step, self.task.kind, self.progress)
        losses = self.state.pending_losses
        window_started, window_examples = time.perf_counter(), 0
        try:
            self.model.train()
            while self.state.step < self.total_steps and not self.state.stopped_early:
                epoch, position = divmod(self.state.step, self.steps_per_epoch)
                batch = self.plan.epoch(epoch)[position]
                loss = self._step(batch)
                losses.append(loss)
                window_examples += len(batch)
                elapsed = time.perf_counter() - window_started
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{window_examples / max(elapsed, 1e-9):.0f}", refresh=False)
                if self.state.step % self.eval_every == 0 or self.state.step == self.total_steps:
                    if self.task.has_validation:
                        self._evaluate(train_loss=float(np.mean(losses)))
                        self.model.train()
                    else:
                        self._log(train_loss=float(np.mean(losses)))
                    losses.clear()
                if self.store and (
                    self.state.step % self.checkpoint_every == 0
                    or self.state.step == self.total_steps
                    or self.state.stopped_early
                ):
                    self._checkpoint()
                if self.callback:
                    self.callback(self._step_info(loss))
        finally:
            bar.close()
        return self._finish(resumed_from)

    def _step(self, batch: np.ndarray) -> float:
        self.layers.apply(self.state.step)
        # Autocast keeps the weights, gradients and optimiser in float32: only the matmuls go bfloat16.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            loss = self.task.loss(batch)
        if not loss.requires_grad:
            raise ConfigError(f"nothing to train with strategy '{self.params.strategy}' at step {self.state.step}")
        loss.backward()
        trainable = [p for p in self.model.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        return float(loss.detach())

    def _step_info(self, loss: float) -> StepInfo:
        return StepInfo(
            step=self.state.step,
            total_steps=self.total_steps,
            epoch=self.state.step / self.steps_per_epoch,
            loss=loss,
            learning_rate=self.scheduler.get_last_lr()[0],
        )

    def _log(self, train_loss: float | None, metrics: dict[str, Any] | None = None) -> None:
        entry: dict[str, Any] = {"step": self.state.step, "epoch": round(self.state.step / self.steps_per_epoch, 4)}
        if train_loss is not None:
            entry["train_loss"] = train_loss
        entry.update({k: v for k, v in (metrics or {}).items() if isinstance(v, int | float)})
        self.state.history.append(entry)

    def _evaluate(self, train_loss: float | None) -> None:
        self.model.eval()
        metrics = self.task.evaluate()
        self._log(train_loss, metrics)
        log.info("step %d/%d: %s", self.state.step, self.total_steps, _summary(self.state.history[-1]))
        state = self.state
        value = metrics[self.params.early_stopping_metric]
        if improves(self.params.early_stopping_metric, value, state.best_metric):
            state.best_metric, state.best_step, state.best_metrics = value, state.step, metrics
            state.evaluations_without_gain = 0
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best_changed = True
            return
        state.evaluations_without_gain += 1
        patience = self.params.early_stopping_patience
        if patience is not None and state.evaluations_without_gain >= patience:
            state.stopped_early = True
            log.info(
                "early stopping at step %d: best %s %.4f at step %s",
                state.step,
                self.params.early_stopping_metric,
                state.best_metric,
                state.best_step,
            )

    def _checkpoint(self) -> None:
        self.store.save(self.state, self.model, self.optimizer, self.scheduler, self.best_weights, self.best_changed)
        self.best_changed = False

    def _resume(self) -> int | None:
        if self.store is None:
            return None
        restored = self.store.restore(self.model, self.optimizer, self.scheduler, self.device)
        if restored is None:
            return None
        self.state, self.best_weights = restored
        log.info("resuming from step %d of %d", self.state.step, self.total_steps)
        return self.state.step

    def _finish(self, resumed_from: int | None) -> RunOutcome:
        state = self.state
        if self.best_weights is not None and state.best_step != state.step:
            self.model.load_state_dict(self.best_weights)
        self.model.eval()
        if self.task.has_validation:
            metrics = dict(state.best_metrics or {})
            metrics["evaluated_on"] = "validation"
            baseline = state.history[0] if self.task.baseline_first and state.history else None
            if baseline and baseline["step"] == 0:
                metrics["baseline"] = {k: v for k, v in baseline.items() if k not in ("step", "epoch")}
        else:
            metrics = self.task.evaluate(on_train=True)
            metrics["evaluated_on"] = "train"
        metrics.update(
            best_step=state.best_step,
            steps=state.step,
            stopped_early=state.stopped_early,
            train_loss=_last_train_loss(state.history),
            train_precision="bfloat16" if self.mixed_precision else "float32",
        )
        return RunOutcome(metrics, state.step, list(state.history), resumed_from)


def uses_bfloat16(precision: str, device: torch.device) -> bool:
    """Whether training steps on ``device`` run under bfloat16 autocast for ``precision``: as
    inference decides on a CPU, and on any GPU that supports it."""
    if precision == "auto" and device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return resolve_precision(precision, device) == "bfloat16"


def _summary(entry: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items() if k != "step")


def _last_train_loss(history: list[dict[str, Any]]) -> float | None:
    losses = [entry["train_loss"] for entry in history if "train_loss" in entry]
    return losses[-1] if losses else None


def _adamw(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    try:  # one fused kernel for all parameters: noticeably faster on CPU than the per-tensor loop
        return torch.optim.AdamW(groups, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups)


def _progress_bar(total: int, initial: int, kind: str, enabled: bool):
    from services.progress import progress_bar

    return progress_bar(total, f"training {kind}", "step", enabled=enabled, initial=initial, leave=False)
