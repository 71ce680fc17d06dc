"""Type stubs for the private C++ extension ketacore._core (pybind11).

Sections are grouped by binding file (csrc/bindings/bind_<concept>.cpp).
"""
from typing import Any

import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int64]

# --- bind_scheme.cpp -------------------------------------------------------------------------
class CompiledScheme:
    n_states: int
    n_ligands: int
    n_transitions: int
    def __init__(self, n_states: int, n_ligands: int, src: _I, dst: _I, ligand: _I, k0: _F,
                 z_delta: _F, inv_vk: _F, v0: _F, log_q10: _F, t_ref: _F, conductance: _F,
                 e_rev: float) -> None: ...
    def q_matrix(self, cond: _F) -> _F: ...
    def exits_equilibria(self, conds: _F, equilibria: bool = True) -> tuple[_F, _F]: ...
    def rates(self, cond: _F) -> _F: ...
    def exit_rates(self, cond: _F) -> _F: ...

# --- bind_expm.cpp ---------------------------------------------------------------------------
def expm(A: _F, generator: bool = False) -> _F: ...
def gth(Q: _F) -> _F | None: ...

# --- bind_master.cpp -------------------------------------------------------------------------
def solve_master(scheme: CompiledScheme, durations: _F, cond_index: _I, conditions: _F,
                 dt: float, n_samples: int, p0: _F) -> _F: ...

# --- bind_rng.cpp ----------------------------------------------------------------------------
class rng:  # submodule ketacore._core.rng
    @staticmethod
    def seed_sequence_state(entropy_words: list[int], spawn_key: list[int], n_words: int) -> npt.NDArray[np.uint32]: ...
    @staticmethod
    def uint64(entropy_words: list[int], spawn_key: list[int], n: int) -> npt.NDArray[np.uint64]: ...
    @staticmethod
    def random(entropy_words: list[int], spawn_key: list[int], n: int) -> _F: ...
    @staticmethod
    def standard_exponential(entropy_words: list[int], spawn_key: list[int], n: int) -> _F: ...
    @staticmethod
    def binomial(entropy_words: list[int], spawn_key: list[int], n: int, trials: int, p: float) -> _I: ...
    @staticmethod
    def binomial_fast(entropy_words: list[int], spawn_key: list[int], n: int, trials: int, p: float) -> _I: ...
    @staticmethod
    def pcg64_state(entropy_words: list[int], spawn_key: list[int]) -> tuple[int, int]: ...

# --- bind_simulate.cpp -----------------------------------------------------------------------
def simulate(method: str, scheme: CompiledScheme, durations: _F, cond_index: _I, conditions: _F,
             dt: float, n_samples: int, p0: _F, n_channels: int, entropy_words: list[int],
             trials: npt.NDArray[np.uint64], n_threads: int, summary: bool, wide: bool,
             background: bool) -> Any: ...
def simulate_events(scheme: CompiledScheme, durations: _F, cond_index: _I, conditions: _F, p0: _F,
                    entropy_words: list[int], trials: npt.NDArray[np.uint64], n_threads: int,
                    reserve_hint: int, background: bool) -> list[tuple[_F, npt.NDArray[np.int32]]]: ...
