"""The entity report chart: mean sentiment (line) over document volume (bars), per bucket, as PNG."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from plugins.sentiment.aggregation import WindowStats


def render_chart(series: Sequence[WindowStats], title: str) -> bytes:
    """PNG bytes of the chart; empty buckets show no score point and a zero bar."""
    # The object-oriented API on the Agg canvas: no pyplot global state, safe in server threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    volume_axis = figure.add_subplot(1, 1, 1)
    score_axis = volume_axis.twinx()
    middles = [b.start + (b.end - b.start) / 2 for b in series]
    widths = [(b.end - b.start) * 0.85 for b in series]
    volume_axis.bar(middles, [b.volume for b in series], width=widths, color="#c7d2e0", label="documents")
    volume_axis.set_ylabel("documents per bucket")
    volume_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    points = [(mid, b.mean_score) for mid, b in zip(middles, series, strict=True) if b.mean_score is not None]
    if points:
        score_axis.plot(*zip(*points, strict=True), color="#1f4e79", marker="o", markersize=3, label="mean score")
    score_axis.axhline(0, color="#999999", linewidth=0.8, linestyle="--")
    score_axis.set_ylim(-1.05, 1.05)
    score_axis.set_ylabel("mean sentiment (P(pos) - P(neg))")
    volume_axis.set_title(title)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_chart(series: Sequence[WindowStats], title: str, output: Path) -> Path:
    """Write the chart atomically (temp file + rename), so a failure never leaves half a PNG."""
    data = render_chart(series, title)
    output = output.expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".chart-", suffix=".png", dir=output.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return output
