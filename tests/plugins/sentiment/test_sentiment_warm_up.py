"""The server's warm-up loads and traces the sentiment models; a one-shot command never traces."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_warm_up_prepares_the_models_a_command_loads_lazily(trained_context):
    from plugins.sentiment.model import SENTIMENT_TASK, TOPIC_TASK, _cache, load_classifier, score_texts
    from plugins.sentiment.plugin import suite_warm_up

    ctx = trained_context()
    _cache.clear()
    score_texts(ctx, ["Shares fell."])  # what `suite sentiment score` does once
    assert load_classifier(ctx)._trace_pending  # one call: no tracing paid for
    _cache.clear()
    suite_warm_up(ctx)
    for task in (SENTIMENT_TASK, TOPIC_TASK):
        classifier = load_classifier(ctx, task)
        assert not classifier._trace_pending and not classifier._bfloat16_pending
