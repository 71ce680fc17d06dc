"""A stand-in for a SCALCS ``Mechanism`` built from a given Q (open states first): the attributes
that SCALCS' HJC building blocks (``exact_GAMAxx``, ``HJClik``, ...) read.  Used by the asv
theory benchmarks and, loaded by path, by the tests that compare ketacore's HJC theory and
likelihood with SCALCS on the same matrix (tests/_scalcs_shim.py)."""
import numpy as np


class ScalcsMechanism:
    """The attributes of a scalcs Mechanism that HJClik and its building blocks read."""

    def __init__(self, Q, k_a):
        self.Q, self.k, self.kA = Q, Q.shape[0], k_a
        self.kI = self.kF = self.k - k_a
        self.QAA, self.QII = Q[:k_a, :k_a], Q[k_a:, k_a:]
        self.QAI, self.QIA = Q[:k_a, k_a:], Q[k_a:, :k_a]
        self.QFF, self.QAF, self.QFA = self.QII, self.QAI, self.QIA

    def theta_unsqueeze(self, theta):   # HJClik sets the rates from theta: Q is fixed here
        pass

    def set_eff(self, name, value):
        pass

    def theta(self):
        return np.ones(1)
