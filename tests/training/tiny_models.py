"""Tiny randomly initialised encoders saved as model folders, for tests of other architectures than BERT."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]


def build_mpnet(folder: Path, texts: Iterable[str], *, sentence_transformers: bool = True, layers: int = 2) -> Path:
    """An MPNet (2 layers, 32 wide) with a WordPiece vocabulary of the words of ``texts``.

    Like all-mpnet-base-v2 it has no masked-LM head, and with ``sentence_transformers``
    it carries mean-pooling module files.
    """
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())})
    vocab = [*SPECIAL, *words, *"abcdefghijklmnopqrstuvwxyz", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = MPNetTokenizerFast(vocab_file=str(vocab_file), unk_token="[UNK]", model_max_length=64)
    config = MPNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    MPNetModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if sentence_transformers:
        (folder / "modules.json").write_text(
            json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
        )
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder
