"""Continued pre-training of a plugin's backbone, registered as ``<plugin>/backbone@vN``.

The plugin's next fine-tune starts from the active backbone version (``ctx.backbone``);
``suite models activate <plugin>/backbone@vN`` rolls back to an earlier one. There is no
"v0" for the configured backbone: to go back to it, remove the registry task's ``ACTIVE`` file.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from suite.context import BACKBONE_TASK
from suite.errors import ModelError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from suite.context import SuiteContext

HELD_OUT_FRACTION = 0.05
MAX_HELD_OUT = 1000
MIN_TEXTS_FOR_HELD_OUT = 20


def split_held_out(texts: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    """A random 5% (at most 1,000) held out to measure perplexity on; none below 20 texts."""
    if len(texts) < MIN_TEXTS_FOR_HELD_OUT:
        return list(texts), []
    count = min(MAX_HELD_OUT, max(1, round(len(texts) * HELD_OUT_FRACTION)))
    held = set(random.Random(seed).sample(range(len(texts)), count))
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


def pretrain_backbone(
    ctx: SuiteContext,
    plugin: str,
    texts: Sequence[str],
    params: dict[str, Any] | None = None,
    *,
    source: str,
    progress: bool = True,
    restart: bool = False,
    activate: bool = True,
) -> ModelVersion:
    """Masked-LM training of ``plugin``'s current backbone on ``texts``; registers and (by default) activates it.

    An interrupted run resumes from its checkpoint when called again with the same texts and
    parameters; ``restart`` discards the checkpoint.
    """
    from services.registry import ModelCard, now_iso
    from services.training.checkpoint import CheckpointMismatchError

    backbone, name = ctx.backbone(plugin), ctx.backbone_name(plugin)
    train, held_out = split_held_out(list(texts), ctx.settings.training.seed)
    data_dir = ctx.settings.data_dir
    checkpoint_dir = data_dir / "checkpoints" / plugin / BACKBONE_TASK
    if restart:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    output_dir = data_dir / "tmp" / f"pretrain-{uuid.uuid4().hex[:12]}"
    try:
        result = ctx.trainer.train_masked_lm(
            backbone,
            train,
            held_out or None,
            params,
            output_dir=output_dir,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
        )
    except CheckpointMismatchError:
        raise ModelError(
            f"an interrupted pre-training of {plugin}'s backbone used other texts or parameters; "
            "add --restart to discard it"
        ) from None
    metrics = {
        **result.metrics,
        "corpus": source,
        "corpus_fingerprint": result.data_fingerprint,
        "held_out_documents": len(held_out),
    }
    card = ModelCard(
        plugin=plugin,
        task=BACKBONE_TASK,
        kind="masked-lm",
        backbone=name,
        data_fingerprint=result.data_fingerprint,
        hyperparameters=dict(result.params),
        metrics=metrics,
        created_at=now_iso(),
        train_examples=result.train_examples,
        wall_seconds=result.wall_seconds,
        labels=None,
        notes=describe(result.metrics, source, name, len(held_out)),
    )
    try:
        version = ctx.registry.register(result.model_dir, card, activate=activate, move=True)
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # done: nothing to resume
    return version


def describe(metrics: dict[str, Any], source: str, backbone: str, held_out: int) -> str:
    """The card's notes: what was read, what changed, and whether the masked-LM head was new."""
    parts = [
        f"Continued whole-word masked-LM pre-training of `{backbone}` on {metrics.get('documents', 0)} documents "
        f"({metrics.get('tokens', 0)} tokens) from {source}."
    ]
    if "perplexity_before" in metrics:
        parts.append(
            f"Held-out perplexity ({held_out} documents, the same masks before and after): "
            f"{metrics['perplexity_before']:.2f} before, {metrics['perplexity']:.2f} after."
        )
    else:
        parts.append("Too few texts to hold any out: the perplexity is measured on training texts.")
    if metrics.get("mlm_head") == "new":
        parts.append(
            "The backbone had no masked-LM head (a sentence-transformers folder keeps only the encoder): "
            "one was initialised from random weights and trained here."
        )
    return " ".join(parts)
