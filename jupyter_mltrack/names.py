"""Readable generated run names (``bold-heron-417``), as MLflow users are used to."""

from __future__ import annotations

import random

_ADJECTIVES = ["able", "agile", "amber", "ample", "bold", "brave", "bright", "brisk", "calm", "clever", "crisp", "curious", "daring", "deft", "eager", "fair", "fancy", "fleet", "fond", "gentle", "glad", "grand", "happy", "hardy", "honest", "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry", "mighty", "neat", "nimble", "noble", "patient", "plucky", "polite", "proud", "quick", "quiet", "rapid", "ready", "robust", "rosy", "rustic", "serene", "sharp", "shy", "silent", "sleek", "smart", "snappy", "solid", "spry", "steady", "stellar", "sunny", "swift", "tidy", "tranquil", "upbeat", "valiant", "vivid", "warm", "wise", "witty", "zesty"]
_NOUNS = ["ant", "badger", "bat", "bear", "beaver", "bee", "bison", "boar", "crane", "crow", "deer", "dolphin", "dove", "eagle", "eel", "elk", "falcon", "ferret", "finch", "fox", "frog", "gecko", "goat", "goose", "hare", "hawk", "heron", "horse", "ibis", "jay", "koala", "lark", "lemur", "lion", "lynx", "mole", "moose", "moth", "newt", "otter", "owl", "panda", "parrot", "pelican", "pike", "puffin", "quail", "rabbit", "raven", "robin", "salmon", "seal", "shark", "sloth", "snail", "sparrow", "stork", "swan", "tiger", "toad", "trout", "turtle", "viper", "walrus", "whale", "wolf", "wren", "yak", "zebra"]

_rng = random.Random()


def generate_run_name() -> str:
    """A random ``adjective-noun-number`` name."""
    return f"{_rng.choice(_ADJECTIVES)}-{_rng.choice(_NOUNS)}-{_rng.randint(100, 999)}"
