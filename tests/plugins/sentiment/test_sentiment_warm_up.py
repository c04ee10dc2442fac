"""The server's warm-up loads (and, on torch, traces) the sentiment models; a one-shot command never traces."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_warm_up_prepares_the_torch_models_a_command_loads_lazily(trained_context):
    from plugins.sentiment.model import SENTIMENT_TASK, TOPIC_TASK, _cache, load_classifier, score_texts
    from plugins.sentiment.plugin import suite_warm_up

    ctx = trained_context(training={"inference_runtime": "torch"})
    _cache.clear()
    score_texts(ctx, ["Shares fell."])  # what `suite sentiment score` does once
    assert load_classifier(ctx)._trace_pending  # one call: no tracing paid for
    _cache.clear()
    suite_warm_up(ctx)
    for task in (SENTIMENT_TASK, TOPIC_TASK):
        classifier = load_classifier(ctx, task)
        assert not classifier._trace_pending and not classifier._bfloat16_pending


def test_warm_up_loads_both_saved_graphs_by_default_on_a_cpu(trained_context, monkeypatch):
    from plugins.sentiment.model import _cache
    from plugins.sentiment.plugin import suite_warm_up
    from services.training import loading

    # As on a CPU without native bfloat16, where a server too runs the graphs (services/training/loading.py).
    monkeypatch.setattr(loading, "prefers_bfloat16", lambda precision: False)

    ctx = trained_context(training={"device": "cpu"})
    _cache.clear()
    suite_warm_up(ctx)
    assert sorted(type(classifier).__name__ for classifier in _cache.values()) == ["OnnxClassifier"] * 2
