"""Crash-safe training checkpoints that resume a run exactly.

A checkpoint is a folder ``step-00000040/`` written under a temporary name and renamed
into place, so a crash while writing leaves the previous checkpoint intact. It holds:

* ``model.safetensors``: the weights now; ``best.safetensors``: the best weights so far
  (hard-linked from the previous checkpoint when unchanged);
* ``optimizer.pt``: optimiser and scheduler state and torch RNG states, plain tensors and
  numbers read back with ``torch.load(weights_only=True)``, which never runs pickled code;
* ``state.json``: step, early-stopping state, history, Python/NumPy RNG states and the
  fingerprint of the data and parameters the run was started with.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from services.errors import ModelError

PREFIX = "step-"


class CheckpointMismatchError(ModelError):
    """The checkpoint folder holds a run on other data or with other parameters."""


@dataclass
class RunState:
    """Everything about a run's progress that is not a tensor."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evaluations_without_gain: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, Any] | None = None
    pending_losses: list[float] = field(default_factory=list)  # since the last evaluation


class CheckpointStore:
    """The checkpoints of one run in ``directory``; only the newest is kept."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def latest(self) -> Path | None:
        if not self.directory.is_dir():
            return None
        complete = [p for p in self.directory.glob(f"{PREFIX}*") if (p / "state.json").is_file()]
        return max(complete, key=lambda p: p.name, default=None)

    def save(
        self,
        state: RunState,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        best_weights: dict[str, torch.Tensor] | None,
        best_changed: bool,
    ) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = self.latest()
        final = self.directory / f"{PREFIX}{state.step:08d}"
        temp = self.directory / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir()
        save_model(model, str(temp / "model.safetensors"))
        if best_weights is not None:
            reused = previous / "best.safetensors" if previous else None
            if not best_changed and reused is not None and reused.is_file() and previous != final:
                _link_or_copy(reused, temp / "best.safetensors")
            else:
                save_file(best_weights, str(temp / "best.safetensors"))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            temp / "optimizer.pt",
        )
        numpy_state = np.random.get_state()
        meta = {
            "fingerprint": self.fingerprint,
            "run": asdict(state),
            "python_rng": _jsonable(random.getstate()),
            "numpy_rng": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        }
        (temp / "state.json").write_text(json.dumps(meta))
        if final.exists():
            shutil.rmtree(final)
        os.replace(temp, final)
        for old in self.directory.glob(f"{PREFIX}*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def check(self) -> Path | None:
        """The newest checkpoint, after making sure it belongs to this run."""
        path = self.latest()
        if path is None:
            return None
        try:
            meta = json.loads((path / "state.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable checkpoint ({exc}); delete it to start over") from None
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatchError(
                f"{self.directory}: checkpoint is from different data or parameters; "
                "delete it or use another checkpoint_dir"
            )
        return path

    def restore(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device
    ) -> tuple[RunState, dict[str, torch.Tensor] | None] | None:
        """Load the newest checkpoint into the objects given; ``None`` when there is none."""
        path = self.check()
        if path is None:
            return None
        try:
            meta = json.loads((path / "state.json").read_text())
            load_model(model, str(path / "model.safetensors"), device=str(device))
            best_file = path / "best.safetensors"
            best = load_file(str(best_file), device=str(device)) if best_file.is_file() else None
            saved = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            message = " ".join(str(exc).split())[:200]
            raise ModelError(f"{path}: corrupt checkpoint ({message}); delete it to start over") from None
        torch.set_rng_state(saved["torch_rng"].cpu())
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        random.setstate(_tuples(meta["python_rng"]))
        kind, keys, *rest = meta["numpy_rng"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        return RunState(**meta["run"]), best


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
