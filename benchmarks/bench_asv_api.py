"""asv: per-call cost of the Python API's building blocks (input validation included).

These are the calls research code makes in its inner loops (a fresh ``Step`` or ``Protocol`` per
simulated sweep, a Q-matrix per voltage), so their validation must stay cheap.  Figures quoted
in issue notes (``Protocol([step])`` ~1.2 us with its fast path, ``q_matrix`` without a per-call
finiteness check) come from here.
"""
import ketacore as kc
from ketacore.units import mM, ms, mV

from ._models import bench6


class Construction:
    def setup(self):
        self.step = kc.Step(1 * ms, glutamate=1 * mM)
        self.steps = [kc.Step(1 * ms, V=v * mV, glutamate=1 * mM) for v in range(-100, 0)]
        self.g = bench6()
        self.g.q_matrix(glutamate=1 * mM)  # warm the compiled scheme
        self.train = kc.pulse_train(100, 10.0, 1 * ms, during={"glutamate": 1 * mM})

    def time_step(self):
        kc.Step(1 * ms, glutamate=1 * mM)

    def time_protocol_one_step(self):
        kc.Protocol([self.step])

    def time_protocol_100_steps(self):
        kc.Protocol(self.steps)

    def time_pulse_train_100(self):
        kc.pulse_train(100, 10.0, 1 * ms, during={"glutamate": 1 * mM})

    def time_protocol_compile_100_pulses(self):
        self.train.compile(self.g)

    def time_q_matrix(self):
        self.g.q_matrix(V=-60 * mV, glutamate=1 * mM)
