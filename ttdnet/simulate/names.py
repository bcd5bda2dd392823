"""Pseudo-word concept names, drawn deterministically from the seed.

Training concept *i* gets the same name at any scale (its draw depends only on ``seed`` and *i*), so the
first 40 concepts of a full-scale dataset are the 40 concepts of the default one. Test names come from a
separate stream and are redrawn on the rare collision with a training name, keeping the partitions disjoint.
"""

import hashlib

import numpy as np


ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "gr", "pl", "st", "tr")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
CODAS = ("", "", "", "n", "r", "s", "k", "l")
COMPOUND_PROBABILITY = 0.15
"""Share of names made of two pseudo-words joined by ``_``, like THINGS' ``aircraft_carrier``."""


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any printable parts, identical across runs and platforms (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def _pseudo_word(rng: np.random.Generator) -> str:
    n_syllables = int(rng.integers(2, 4))
    syllables = [
        ONSETS[rng.integers(len(ONSETS))] + VOWELS[rng.integers(len(VOWELS))] + CODAS[rng.integers(len(CODAS))]
        for _ in range(n_syllables)
    ]
    return "".join(syllables)


def draw_name(seed: int, partition: str, index: int, attempt: int, compound: bool | None = None) -> str:
    """One concept name: a pseudo-word, or two joined by ``_``.

    Parameters
    ----------
    seed : int
        Dataset seed.
    partition : {"train", "test"}
        Name stream.
    index : int
        Position of the concept in its stream.
    attempt : int
        Redraw counter, raised after a collision.
    compound : bool, optional
        Force (True) or forbid (False) an underscore; drawn with :data:`COMPOUND_PROBABILITY` when None.
    """
    rng = np.random.default_rng(stable_seed(seed, "concept-name", partition, index, attempt))
    if compound is None:
        compound = bool(rng.random() < COMPOUND_PROBABILITY)
    words = [_pseudo_word(rng) for _ in range(2 if compound else 1)]
    return "_".join(words)


def _draw_partition(seed: int, partition: str, count: int, taken: set[str]) -> list[str]:
    names = []
    for index in range(count):
        attempt = 0
        # The first concept of each partition is a compound, so both contain an underscore.
        name = draw_name(seed, partition, index, attempt, compound=True if index == 0 else None)
        while name in taken:
            attempt += 1
            name = draw_name(seed, partition, index, attempt, compound=True if index == 0 else None)
        taken.add(name)
        names.append(name)
    return names


def concept_names(seed: int, n_train: int, n_test: int) -> tuple[list[str], list[str]]:
    """Disjoint training and test concept names, each list sorted alphabetically.

    Parameters
    ----------
    seed : int
        Dataset seed.
    n_train, n_test : int
        Number of concepts per partition.

    Returns
    -------
    train_names : list of str, length n_train
    test_names : list of str, length n_test
        Lower-case ASCII letters and ``_`` only; the first of each partition's draws is a compound.
    """
    taken: set[str] = set()
    train_names = _draw_partition(seed, "train", n_train, taken)
    test_names = _draw_partition(seed, "test", n_test, taken)
    return sorted(train_names), sorted(test_names)
