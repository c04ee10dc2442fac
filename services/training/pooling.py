"""A classifier over the mean of the encoder's token vectors, for sentence-encoder backbones.

``AutoModelForSequenceClassification`` puts its head on the first token (BERT's pooler
over ``[CLS]``). A sentence encoder such as all-MiniLM-L6-v2 was trained to mean its
token vectors instead, so its ``[CLS]`` vector carries little of what it learned: on
BANKING77 with 10 examples per intent, a logistic regression on frozen mean-pooled
vectors scores 0.86 and one on the pooler's output 0.81 (``bench/results`` and the
README's Benchmarks section). :class:`MeanPooledForSequenceClassification` keeps the
backbone whole and puts the head on the masked mean.

It is a ``transformers`` model like any other: ``save_pretrained`` writes safetensors and a
config whose ``encoder`` entry is the backbone's own config. :func:`register_auto_classes`
(called by the engine and :class:`TextClassifier` before they load anything) lets
``AutoModelForSequenceClassification`` and text-classification pipelines load such a
folder; no code is ever read from a model folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLING_CHOICES = ("auto", "model", "mean")


class MeanPooledConfig(PretrainedConfig):
    """Label maps and dropout of the head; ``encoder`` holds the backbone's config as a dict."""

    model_type = "suite_mean_pooled"

    def __init__(self, encoder: dict[str, Any] | None = None, classifier_dropout: float = 0.1, **kwargs: Any) -> None:
        self.encoder = dict(encoder or {})
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    def encoder_config(self) -> PretrainedConfig:
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)


class MeanPooledForSequenceClassification(PreTrainedModel):
    """Backbone, masked mean over its last hidden states, dropout, linear head."""

    config_class = MeanPooledConfig
    base_model_prefix = "encoder"

    def __init__(self, config: MeanPooledConfig, encoder: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        self.encoder = encoder if encoder is not None else _bare_encoder(config.encoder_config())
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.encoder.config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_backbone(cls, backbone: str, **kwargs: Any) -> MeanPooledForSequenceClassification:
        """A new classifier on ``backbone``'s pretrained weights; ``kwargs`` go to the config
        (``num_labels``, ``id2label``...) except the loading options ``use_safetensors``,
        ``local_files_only`` and ``token``."""
        loading = {key: kwargs.pop(key) for key in ("use_safetensors", "local_files_only", "token") if key in kwargs}
        kwargs.pop("ignore_mismatched_sizes", None)
        encoder = _bare_encoder(backbone, **loading)
        config = MeanPooledConfig(encoder=encoder.config.to_dict(), **kwargs)
        model = cls(config, encoder=encoder)
        model.classifier.reset_parameters()
        nn.init.zeros_(model.classifier.bias)
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:  # not every encoder takes them (DistilBERT)
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs)[0]
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)
        logits = self.classifier(self.dropout(pooled))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _bare_encoder(source: str | PretrainedConfig, **loading: Any) -> PreTrainedModel:
    """The backbone without a pooler (it would go unused) where the architecture allows that."""

    def build(**extra: Any) -> PreTrainedModel:
        if isinstance(source, PretrainedConfig):
            # The dtype being loaded (a pipeline's dtype=...), not the one the backbone's config names.
            return AutoModel.from_config(source, dtype=torch.get_default_dtype(), **extra)
        return AutoModel.from_pretrained(source, **loading, **extra)

    try:
        return build(add_pooling_layer=False)
    except TypeError:  # an architecture without that argument (DistilBERT)
        return build()


def register_auto_classes() -> None:
    """Make ``AutoConfig`` and ``AutoModelForSequenceClassification`` know the mean-pooled classifier."""
    AutoConfig.register(MeanPooledConfig.model_type, MeanPooledConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(MeanPooledConfig, MeanPooledForSequenceClassification, exist_ok=True)


def trained_with_mean_pooling(backbone: str | Path) -> bool:
    """Whether ``backbone`` is a local sentence-transformers folder whose pooling is the token mean."""
    folder = Path(backbone)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        pooling = next(m for m in modules if m.get("type", "").endswith("models.Pooling"))
        settings = json.loads((folder / pooling.get("path", "") / "config.json").read_text())
    except (OSError, ValueError, StopIteration, AttributeError, TypeError):
        return False
    return bool(settings.get("pooling_mode_mean_tokens"))


def resolve_pooling(pooling: str, backbone: str | Path) -> str:
    """``"auto"``: mean pooling for a backbone trained with it (a sentence encoder), else the model's own head."""
    if pooling == "auto":
        return "mean" if trained_with_mean_pooling(backbone) else "model"
    return pooling
