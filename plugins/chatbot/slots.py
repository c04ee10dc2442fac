"""Slot values from entities: the shared spaCy pipeline plus the chatbot's own patterns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

# Surface forms -> the value a template shows ("your Visa card"). Token patterns on LOWER
# make them case-insensitive; the pattern id carries the canonical value.
CARD_TYPES = {
    "debit card": "debit card",
    "credit card": "credit card",
    "visa": "Visa card",
    "visa card": "Visa card",
    "visa debit": "Visa debit card",
    "mastercard": "Mastercard",
    "master card": "Mastercard",
    "amex": "American Express card",
    "american express": "American Express card",
    "prepaid card": "prepaid card",
    "virtual card": "virtual card",
    "business card": "business card",
}
ACCOUNT_TYPES = {
    "current account": "current account",
    "checking account": "checking account",
    "savings account": "savings account",
    "savings pot": "savings pot",
    "joint account": "joint account",
    "business account": "business account",
    "isa": "ISA",
}
CURRENCY_SYMBOLS = "$£€¥₹"
# When the bot has just asked for a slot, these labels may answer it too ("50" for an amount).
FALLBACK_LABELS = {"amount": ("MONEY", "CARDINAL"), "date": ("DATE", "TIME")}


class HasLabel(Protocol):
    text: str
    label: str
    start: int
    id: str | None


def entity_patterns() -> list[dict[str, Any]]:
    """``EntityRuler`` patterns for card and account types (the ``suite_entity_patterns`` hook)."""
    patterns = []
    for label, table in (("CARD_TYPE", CARD_TYPES), ("ACCOUNT_TYPE", ACCOUNT_TYPES)):
        for surface, canonical in table.items():
            tokens = [{"LOWER": word} for word in surface.split()]
            patterns.append({"label": label, "pattern": tokens, "id": canonical})
    return patterns


def slots_from_entities(
    entities: Sequence[HasLabel], entity_slots: dict[str, str], awaiting: str | None = None, text: str = ""
) -> dict[str, str]:
    """Slot values found in one message; the first label in ``entity_slots`` order wins a slot.

    ``awaiting`` is the slot the bot just asked for: a bare number then counts as an amount.
    ``text`` is the message, to keep the currency symbol spaCy leaves out of MONEY ("$250").
    """
    found: dict[str, str] = {}
    for label, slot in entity_slots.items():
        for entity in entities:
            if entity.label == label and slot not in found:
                found[slot] = entity_value(entity, text)
    if awaiting and awaiting not in found:
        for entity in entities:
            if entity.label in FALLBACK_LABELS.get(awaiting, ()):
                found[awaiting] = entity_value(entity, text)
                break
    return found


def slot_labels(entity_slots: dict[str, str], slots: Sequence[str], awaiting: str | None = None) -> set[str]:
    """The entity labels that can fill ``slots`` (and, for the slot just asked for, its fallbacks)."""
    labels = {label for label, slot in entity_slots.items() if slot in slots}
    return labels | set(FALLBACK_LABELS.get(awaiting or "", ()))


def entity_value(entity: HasLabel, text: str = "") -> str:
    """The pattern's canonical value, else the entity's text (with a currency symbol just before it)."""
    if entity.id:
        return entity.id
    start = getattr(entity, "start", 0)
    symbol = text[start - 1] if 0 < start <= len(text) else ""
    if entity.label in ("MONEY", "CARDINAL") and symbol and symbol in CURRENCY_SYMBOLS:
        return symbol + entity.text
    return entity.text
