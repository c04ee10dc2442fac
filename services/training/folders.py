"""Model folders: the device to load on, refusing pickles, loading a tokenizer, writing a folder atomically.

Shared by the engine, the tasks and the inference wrappers; it imports no other training module.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from services.backbone import pretrained_kwargs
from services.errors import ConfigError, ModelError, one_line

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
# What sentence-transformers reads beside the weights; plain transformers ignores it.
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown torch device '{name}'") from None


def check_weights_format(path: str | Path) -> None:
    """Refuse a local model folder whose weights are only in a pickle-based format."""
    folder = Path(path)
    if not folder.is_dir():
        return  # a hub id: from_pretrained(use_safetensors=True) refuses pickles itself
    if any(folder.glob("*.safetensors")):
        return
    pickles = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
    if pickles:
        raise ModelError(f"{folder}: has only {pickles[0]} weights; refusing to unpickle (convert to safetensors)")
    raise ModelError(f"{folder}: no model.safetensors weights")


def load_tokenizer(backbone: str, allow_downloads: bool = False):
    from transformers import AutoTokenizer

    check_weights_format(backbone)
    try:
        return AutoTokenizer.from_pretrained(backbone, use_fast=True, **pretrained_kwargs(allow_downloads))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of backbone '{backbone}': {one_line(exc)}") from None


def save_atomically(output_dir: Path, write: Callable[[Path], None]) -> None:
    """Write a model folder under a temporary name, then swap it in: never a half-written folder."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = output_dir.parent / f".{output_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    try:
        write(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if output_dir.exists():
        old = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
        os.replace(output_dir, old)
        os.replace(temp, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, output_dir)


def save_model(model, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def write_sentence_transformers_modules(folder: Path, hidden_size: int, max_length: int) -> None:
    """The module files that make ``folder`` a mean-pooled, normalised sentence-transformers model."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "2_Normalize").mkdir(exist_ok=True)


def copy_sentence_transformers_modules(source: str | Path, folder: Path) -> bool:
    """Copy a sentence-transformers backbone's module files (pooling...) to ``folder``; False if it has none."""
    source = Path(source)
    if not (source / "modules.json").is_file():
        return False
    for name in SENTENCE_TRANSFORMERS_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    try:
        modules = json.loads((source / "modules.json").read_text())
    except ValueError:
        return True
    for module in modules if isinstance(modules, list) else []:
        path = module.get("path") if isinstance(module, dict) else None
        if path and (source / path).is_dir():
            shutil.copytree(source / path, folder / path, dirs_exist_ok=True)
    return True
