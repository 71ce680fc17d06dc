"""Ctrl-C latency of a long ssa call (the 400000-sample ramp of tests/test_long_waveforms.py).

    python benchmarks/ctrl_c_latency.py [--repeat 5]

Sends KeyboardInterrupt (``_thread.interrupt_main``) d = 20, 50, 100, 200 ms into a
``kc.simulate(..., method="ssa")`` call whose plan is cached, so the C++ call starts at once
with the per-condition exit tables (ssa.hpp SsaTables), and prints the median time from the
interrupt to the KeyboardInterrupt reaching the caller, and the median length of the whole call.
A latency, not a throughput: the project's rule is "Ctrl-C within ~0.1 s"."""
import _thread
import argparse
import signal
import statistics
import threading
import time

import numpy as np

import ketacore as kc
from ketacore.units import mM, mV


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    g = kc.block(kc.models.get("erreger2005_2a"), "ketamine", kc.blockers.get("mg").replace(mode="sequential"))
    n = 400_000
    t = np.arange(n) * 10e-6
    prot = kc.Protocol.from_waveform(t, n * 10e-6, V=-80 * mV + 120 * mV * t / t[-1], glutamate=1 * mM, mg=1 * mM)
    run = lambda seed: kc.simulate(g, prot, 1e-3, n_channels=1, method="ssa", rng=seed, n_threads=1)
    run(1)   # (builds and caches the plan)
    whole = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        run(2 + i)
        whole.append(time.perf_counter() - t0)
    print(f"ketacore {kc.__version__}: whole call median {statistics.median(whole) * 1e3:.0f} ms")
    for d in (0.02, 0.05, 0.1, 0.2):
        lat = []
        for i in range(args.repeat):
            fired = []

            def fire():
                fired.append(time.perf_counter())
                _thread.interrupt_main()
            timer = threading.Timer(d, fire)
            timer.start()
            try:
                run(100 + i)
            except KeyboardInterrupt:
                lat.append(time.perf_counter() - fired[0])
            timer.join()
        print(f"  Ctrl-C {d * 1e3:3.0f} ms in: latency median {statistics.median(lat) * 1e3:6.1f} ms "
              f"(max {max(lat) * 1e3:.1f} ms, {len(lat)} runs)")


if __name__ == "__main__":
    main()
