"""Tiny data sets shared by the training tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

INTENTS = {
    "greeting": [
        "hello there",
        "hi, how are you",
        "good morning",
        "hey friend",
        "good evening to you",
        "hello!",
        "hi there, nice to meet you",
        "greetings",
    ],
    "weather": [
        "will it rain today",
        "what's the forecast",
        "is it sunny outside",
        "how cold is it",
        "weather tomorrow please",
        "will it snow this weekend",
        "temperature in paris",
        "is it windy",
    ],
    "music": [
        "play some jazz",
        "put on my playlist",
        "next song please",
        "play taylor swift",
        "turn up the music",
        "stop the song",
        "shuffle my favourite tracks",
        "play rock music",
    ],
}
# Small and quick: every test that trains uses these unless it says otherwise.
QUICK = {"batch_size": 8, "max_steps": 12, "eval_every": 100, "seed": 7}


def read_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))
