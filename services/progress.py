"""Progress bars for long work: rate and ETA on a terminal, nothing when output is piped or quiet."""

from __future__ import annotations

from typing import Any

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Switch every progress bar off (``suite -q``) or back to "on a terminal only"."""
    global _quiet
    _quiet = quiet


def progress_bar(total: int | None, desc: str, unit: str = "it", *, enabled: bool = True, **options: Any) -> Any:
    """A tqdm bar on stderr; ``disable=None`` is tqdm's "only when stderr is a terminal"."""
    from tqdm.std import tqdm

    disable = True if (_quiet or not enabled) else None
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, **options)
