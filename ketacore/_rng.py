"""SPEC 7 ``rng=`` handling and numpy-compatible stream helpers.

ketacore derives every random stream from one *root entropy* (a non-negative integer, usually
128 bits): trial ``i`` uses ``numpy.random.PCG64(numpy.random.SeedSequence(entropy,
spawn_key=(i,)))``, reproduced bit for bit in C++ (``csrc/include/ketacore/rng.hpp``).  The
root entropy is stored in every result, so any trial can be regenerated alone.

``rng`` may be (Scientific Python SPEC 7):

* ``None`` -- fresh OS entropy (``numpy.random.SeedSequence().entropy``);
* an ``int`` >= 0 -- used as the root entropy directly (``SeedSequence(int)``);
* a ``numpy.random.SeedSequence`` -- its ``entropy`` (it must have an empty ``spawn_key``
  and the default pool size, otherwise the derived streams could not be reproduced from the
  entropy alone; a ``TypeError``/``ValueError`` says so);
* a ``numpy.random.Generator`` -- used as a source of randomness (SPEC 7): a fresh 128-bit
  root entropy is drawn from it (four 32-bit words, ``rng.integers(0, 2**32, size=4)``,
  word ``i`` the bits ``32*i .. 32*i + 31``), which advances it.  Two calls with the same
  Generator therefore give different (independent) results, e.g. replicates in a loop, while
  a Generator re-created from the same seed reproduces the whole sequence of calls.  The
  drawn entropy is stored in the result like any other, and ``rng=result.entropy`` (or
  ``numpy.random.SeedSequence(result.entropy)``) reproduces that one run.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["root_entropy", "entropy_words", "stream"]


def entropy_words(entropy) -> list[int]:
    """The uint32 words numpy's SeedSequence assembles from ``entropy`` (int or sequence)."""
    if type(entropy) is int and 0 <= entropy < 2**32:
        return [entropy]
    if isinstance(entropy, (numbers.Integral, np.integer)):
        values = [int(entropy)]
    else:
        values = [int(v) for v in entropy]
    words: list[int] = []
    for v in values:
        if v < 0:
            raise ValueError("entropy must be non-negative")
        if v == 0:
            words.append(0)
        while v:
            words.append(v & 0xFFFFFFFF)
            v >>= 32
    return words


def _from_seed_sequence(ss: np.random.SeedSequence):
    if tuple(ss.spawn_key) or ss.pool_size != 4:
        return None
    return ss.entropy


def root_entropy(rng):
    """Resolve a SPEC 7 ``rng`` argument to a root entropy (int, or a tuple of ints)."""
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(rng, bool):
        raise TypeError("rng must be None, an int >= 0, a numpy SeedSequence or a numpy Generator; got bool")
    if isinstance(rng, (numbers.Integral, np.integer)):
        if int(rng) < 0:
            raise ValueError(f"rng must be a non-negative integer; got {int(rng)}")
        return int(rng)
    if isinstance(rng, np.random.SeedSequence):
        e = _from_seed_sequence(rng)
        if e is None:
            raise ValueError(
                "rng: a SeedSequence with a spawn_key or a non-default pool_size cannot be used as a root; "
                "pass SeedSequence(entropy) or an int"
            )
        return e if isinstance(e, (int, np.integer)) else tuple(int(x) for x in e)
    if isinstance(rng, np.random.Generator):
        words = rng.integers(0, 2**32, size=4, dtype=np.uint64)
        return sum(int(w) << (32 * i) for i, w in enumerate(words))
    raise TypeError(
        f"rng must be None, an int >= 0, a numpy SeedSequence or a numpy Generator; got {type(rng).__name__}"
    )


def stream(entropy, trial: int, block: int = 0) -> np.random.Generator:
    """numpy Generator with the same stream ketacore uses for ``trial`` (and channel ``block``)."""
    key = (int(trial),) if block == 0 else (int(trial), int(block))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key)))
