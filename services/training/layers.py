"""Which parameters train: full fine-tuning, frozen lower layers, gradual unfreezing, and the
optimiser groups (a higher learning rate for the new head, no weight decay on biases and norms)."""

from __future__ import annotations

from typing import Any

from torch import nn

from services.errors import ConfigError, ModelError

# Where BERT-like models keep their stack of layers, relative to ``model.base_model``.
LAYER_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "layer", "block")


def _attribute(module: nn.Module, dotted: str) -> Any:
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's layers, bottom first (BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA, MPNet...)."""
    base = getattr(model, "base_model", model)
    for path in LAYER_PATHS:
        layers = _attribute(base, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise ModelError(
        f"cannot find the encoder layers of {type(model).__name__} (looked for base_model."
        f"{', base_model.'.join(LAYER_PATHS)}); use strategy='full' with this backbone"
    )


def embedding_module(model: nn.Module) -> nn.Module:
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    if isinstance(embeddings, nn.Module):
        return embeddings
    return model.get_input_embeddings()


def shared_encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Body parameters outside the embeddings and the layers, that every layer uses: MPNet's
    relative attention bias (``encoder.relative_attention_bias``). BERT has none. A pooler is head."""
    base = getattr(model, "base_model", model)
    try:
        inside = {id(p) for p in encoder_layers(model).parameters()}
    except ModelError:
        return []
    inside |= {id(p) for p in embedding_module(model).parameters()}
    return [
        parameter
        for name, parameter in base.named_parameters()
        if id(parameter) not in inside and not name.startswith("pooler.")
    ]


class LayerSchedule:
    """Sets ``requires_grad`` for a strategy, step by step.

    * ``full``: everything trains.
    * ``freeze``: the embeddings and the lowest ``freeze_layers`` encoder layers never train.
    * ``gradual``: only the head (a bi-encoder: its top layer) trains at first; every ``unfreeze_every`` steps one more
      unit unfreezes from the top (top layer, the one below, ..., finally the embeddings).
      With ``freeze_layers`` > 0, the embeddings and that many lowest layers stay frozen.

    "Head" is every parameter outside the embeddings, the encoder layers and parameters the
    layers share (MPNet's relative attention bias): the classifier, and a pooler if the
    model has one.
    """

    def __init__(
        self, model: nn.Module, strategy: str, freeze_layers: int, unfreeze_every: int, *, has_head: bool = True
    ) -> None:
        self.model = model
        self.strategy = strategy
        self.unfreeze_every = max(1, unfreeze_every)
        # Without a head (a bi-encoder) gradual unfreezing starts with the top layer.
        self.first_stage = 0 if has_head else 1
        if strategy == "full":
            self.units = []
            self.floor = 0
            return
        layers = encoder_layers(model)
        if freeze_layers > len(layers):
            raise ConfigError(f"freeze_layers={freeze_layers} but the backbone has only {len(layers)} encoder layers")
        # Bottom first; MPNet's relative attention bias goes with the embeddings, below every layer.
        bottom = [*embedding_module(model).parameters(), *shared_encoder_parameters(model)]
        self.units: list[list[nn.Parameter]] = [bottom, *(list(layer.parameters()) for layer in layers)]
        if strategy == "freeze":
            self.floor = 1 + freeze_layers
        elif strategy == "gradual":
            self.floor = 1 + freeze_layers if freeze_layers else 0
        else:
            raise ConfigError(f"unknown training strategy '{strategy}' (choose full, freeze or gradual)")
        if not has_head and self.floor >= len(self.units):
            raise ConfigError(f"freeze_layers={freeze_layers} leaves nothing to train in a model without a head")
        self._applied: int | None = None

    def trainable_units(self, step: int) -> int:
        """How many units (counted from the top) train at ``step``."""
        movable = len(self.units) - self.floor
        if self.strategy == "freeze":
            return movable
        return min(movable, self.first_stage + step // self.unfreeze_every)

    def apply(self, step: int) -> bool:
        """Update ``requires_grad`` for ``step``; True when something changed."""
        if self.strategy == "full":
            return False
        count = self.trainable_units(step)
        if count == self._applied:
            return False
        for parameter in self.model.parameters():
            parameter.requires_grad_(True)
        frozen = self.units[: len(self.units) - count]
        for unit in frozen:
            for parameter in unit:
                parameter.requires_grad_(False)
        self._applied = count
        return True


def parameter_groups(
    model: nn.Module, learning_rate: float, weight_decay: float, head_multiplier: float
) -> list[dict[str, Any]]:
    """AdamW groups: body/head x decay/no-decay.

    The head starts from random weights, so it gets ``learning_rate * head_multiplier``;
    biases and normalisation weights (every 1-d parameter) get no weight decay.
    """
    body_ids = {id(p) for p in embedding_module(model).parameters()}
    body_ids |= {id(p) for p in shared_encoder_parameters(model)}
    try:
        body_ids |= {id(p) for p in encoder_layers(model).parameters()}
    except ModelError:  # unknown layout: treat everything but the input embeddings as head-free body
        body_ids = {id(p) for p in getattr(model, "base_model", model).parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        key = (id(parameter) in body_ids, parameter.ndim >= 2)
        groups.setdefault(key, []).append(parameter)
    result = []
    for (is_body, decays), params in sorted(groups.items(), reverse=True):
        result.append(
            {
                "params": params,
                "lr": learning_rate if is_body else learning_rate * head_multiplier,
                "weight_decay": weight_decay if decays else 0.0,
            }
        )
    return result
