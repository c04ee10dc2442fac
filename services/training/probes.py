"""What a traced or exported model is checked with: texts it was not built on, and its logits
as a plain function of ``(input_ids, attention_mask)``."""

from __future__ import annotations

import torch


class LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


PROBE_TEXTS = ["a short one", "a somewhat longer probe sentence, padded against the short one"]
CHECK_TEXTS = [
    "another probe",
    "of other lengths",
    "and a third, the longest of the three, longer than any text the trace saw",
]
