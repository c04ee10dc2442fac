"""Financial sentiment monitoring plugin.

The public Python API, imported lazily so that loading the plugin stays cheap::

    from plugins.sentiment import Monitor, score_texts, train_sentiment_model
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "train_sentiment_model": "plugins.sentiment.model",
    "train_topic_model": "plugins.sentiment.model",
    "score_texts": "plugins.sentiment.model",
    "classify_topics": "plugins.sentiment.model",
    "SentimentScore": "plugins.sentiment.model",
    "Monitor": "plugins.sentiment.monitor",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'plugins.sentiment' has no attribute {name!r}")
