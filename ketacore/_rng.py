"""SPEC 7 ``rng=`` handling and numpy-compatible stream helpers.

ketacore derives every random stream from one *root entropy* (a non-negative integer, usually
128 bits): trial ``i`` uses ``numpy.random.PCG64(numpy.random.SeedSequence(entropy,
spawn_key=(i,)))``, reproduced bit for bit in C++ (``csrc/include/ketacore/rng.hpp``).  The
root entropy is stored in every result, so any trial can be regenerated alone.

``rng`` may be (Scientific Python SPEC 7):

* ``None`` -- fresh OS entropy (``numpy.random.SeedSequence().entropy``);
* an ``int`` >= 0 -- used as the root entropy directly (``SeedSequence(int)``);
* a ``numpy.random.SeedSequence`` -- a root sequence (empty ``spawn_key``, default pool
  size) gives its ``entropy``, so ``SeedSequence(42)`` is ``42``; a spawned one
  (``SeedSequence(...).spawn(n)[k]``, the numpy pattern for parallel jobs) or one with another
  pool size gives the 128-bit integer of its first four state words,
  ``ss.generate_state(4, numpy.uint32)`` (word ``i`` the bits ``32*i .. 32*i + 31``).  That
  is a pure function of the sequence: the same child always gives the same root entropy and
  results, different children give independent ones, and the root entropy stored in the
  result (``rng=result.entropy``) reproduces the run;
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
    """The root entropy of a SeedSequence: its entropy for a root sequence, else the 128-bit
    integer of its first four state words (a pure function of the sequence)."""
    if tuple(ss.spawn_key) or ss.pool_size != 4:
        words = ss.generate_state(4, np.uint32)
        return sum(int(w) << (32 * i) for i, w in enumerate(words))
    if ss.entropy is None:  # (numpy always fills it; guard a hand-made subclass)
        raise ValueError("rng: a SeedSequence without entropy cannot be used")
    return ss.entropy


def root_entropy(rng):
    """Resolve a SPEC 7 ``rng`` argument to a root entropy (int, or a tuple of ints)."""
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(rng, bool):
        raise TypeError("rng must be None, an int >= 0, a numpy SeedSequence, a numpy Generator or a result's "
                        "entropy (a tuple of ints >= 0); got bool")
    if isinstance(rng, (numbers.Integral, np.integer)):
        if int(rng) < 0:
            raise ValueError(f"rng must be a non-negative integer; got {int(rng)}")
        return int(rng)
    if isinstance(rng, np.random.SeedSequence):
        e = _from_seed_sequence(rng)
        return e if isinstance(e, (int, np.integer)) else tuple(int(x) for x in e)
    if isinstance(rng, np.random.Generator):
        words = rng.integers(0, 2**32, size=4, dtype=np.uint64)
        return sum(int(w) << (32 * i) for i, w in enumerate(words))
    if isinstance(rng, tuple):
        # a result's entropy (rng=result.entropy reproduces the run); a SeedSequence built from a
        # sequence of ints keeps that tuple as its entropy
        if not rng or not all(isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, bool)
                              and int(x) >= 0 for x in rng):
            raise ValueError(f"rng given as a tuple (a result's entropy) must hold integers >= 0; got {rng!r}")
        return tuple(int(x) for x in rng)
    raise TypeError(
        "rng must be None, an int >= 0, a numpy SeedSequence, a numpy Generator or a result's entropy "
        f"(a tuple of ints >= 0); got {type(rng).__name__}"
    )


def stream(entropy, trial: int, block: int = 0) -> np.random.Generator:
    """numpy Generator with the same stream ketacore uses for ``trial`` (and channel ``block``)."""
    key = (int(trial),) if block == 0 else (int(trial), int(block))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key)))


def generator(rng, name: str = "rng") -> np.random.Generator:
    """A numpy Generator for a SPEC 7 ``rng`` argument of a sampling method, exactly
    ``numpy.random.default_rng(rng)`` (so a seed gives numpy's stream), after a check that
    names ``rng``: None, an int >= 0, a SeedSequence, a BitGenerator or a Generator (used as is,
    and advanced)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not (rng is None or isinstance(rng, (numbers.Integral, np.integer))
                                     or isinstance(rng, (np.random.SeedSequence, np.random.BitGenerator))):
        raise TypeError(f"{name} must be None, an int >= 0, a numpy SeedSequence, BitGenerator or "
                        f"Generator; got {type(rng).__name__}")
    if isinstance(rng, (numbers.Integral, np.integer)) and int(rng) < 0:
        raise ValueError(f"{name} must be a non-negative integer seed; got {int(rng)}")
    return np.random.default_rng(rng)
