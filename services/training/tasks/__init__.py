"""The training tasks, one per module, each implementing :class:`services.training.task.Task`.

Names load lazily so that importing one task does not import the others.
"""

from importlib import import_module

_LAZY = {
    "ClassificationTask": "services.training.tasks.classification",
    "BiencoderTask": "services.training.tasks.biencoder",
    "MaskedLMTask": "services.training.tasks.masked_lm",
    "DistillationTask": "services.training.tasks.distillation",
    "tokenize_texts": "services.training.task",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'services.training.tasks' has no attribute {name!r}")
