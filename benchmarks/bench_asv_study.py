"""asv: study-runner overhead per chunk (spec parsing, scheme composition, exact reduction)
against the bare ``kc.simulate`` call it wraps, and a whole in-memory study."""
import textwrap

import numpy as np

SPEC = textwrap.dedent("""
    name = "bench"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    n_channels = 100
    n_trials = 8
    dt = "10 ms"
    rng = 7
    keep_trials = 2

    [parameters]
    glutamate = "1 mM"
    ketamine = "10 uM"

    [protocols.trap]
    initial = "R"
    analysis = { kind = "trapping", window = "0.2 s", early = "0.1 s" }

    [[protocols.trap.segments]]
    label = "control"
    duration = "1 s"
    glutamate = "$glutamate"

    [[protocols.trap.segments]]
    label = "block"
    duration = "2 s"
    glutamate = "$glutamate"
    ketamine = "$ketamine"

    [[protocols.trap.segments]]
    label = "wash"
    duration = "2 s"

    [[protocols.trap.segments]]
    label = "recovery"
    duration = "1 s"
    glutamate = "$glutamate"

    [outputs]
    figures = false
""")


class StudyChunk:
    def setup(self):
        import ketacore as kc
        from ketacore import study as S
        self.S = S
        self.kc = kc
        self.study = kc.Study.from_toml(SPEC)
        self.text = self.study.to_toml()
        ctx = S._context(self.text, ".", "bench")
        pt, _ = ctx.point("trap", 0)
        self.pt, self.entropy = pt, ctx.entropy
        S._run_chunk(self.text, ".", "bench", "trap", 0, 0, 8)  # warm caches

    def time_run_chunk_8_trials(self):
        self.S._run_chunk(self.text, ".", "bench", "trap", 0, 0, 8)

    def time_bare_simulate_8_trials(self):
        pt = self.pt
        self.kc.simulate(pt.scheme, pt.protocol, pt.dt, pt.n_channels, method=pt.method,
                         rng=self.entropy, n_threads=1, record="counts", initial=pt.initial,
                         trials=range(0, 8))

    def time_whole_study_in_memory(self):
        self.kc.run_study(self.study, progress=False, workers=1)


VSPEC = textwrap.dedent("""
    name = "benchv"
    model = "erreger2005_2a"
    blockers = ["ketamine"]
    method = "population"
    n_channels = 100
    n_trials = 64
    dt = "10 ms"
    rng = 7
    record = "summary"

    [parameters]
    V = "-70 mV"
    ketamine = "1 uM"

    [protocol]
    analysis = { kind = "dose_response", concentration = "ketamine" }

    [[protocol.segments]]
    duration = "0.2 s"
    V = "$V"
    glutamate = "1 mM"
    ketamine = "$ketamine"

    [sweep]
    ketamine = ["0.1 uM", "0.3 uM", "1 uM", "3 uM", "10 uM", "30 uM", "100 uM"]
    V = ["-100 mV", "-70 mV", "-40 mV", "-10 mV", "20 mV"]

    [outputs]
    figures = false
""")


class DoseResponseFits:
    """The fits after a dose_response over concentration x voltage (110 Hill fits: 5 master
    equation, 5 Monte Carlo and their 20-group trial jackknife, 100; and the Woodhull fits),
    against the whole in-memory study they end."""

    def setup(self):
        import ketacore as kc
        from ketacore import study as S
        self.S = S
        self.kc = kc
        self.study = kc.Study.from_toml(VSPEC)
        ds = kc.run_study(self.study, progress=False, workers=1)["main"].ds
        keep = [v for v in ds.data_vars if not v.startswith(("ic50", "hill", "z_delta", "kd0", "woodhull"))]
        self.ds = ds[keep]
        self.ds.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith("woodhull")}
        self.conds = np.stack(np.broadcast_arrays(ds["sweep_V"].values[None, :], 295.15), axis=-1) \
            * np.ones((ds.sizes["ketamine"], 1, 1))

    def time_hill_and_woodhull_fits(self):
        self.S._fit_dose_response(self.ds.copy(), self.study, "main", self.conds)

    def time_whole_study_in_memory(self):
        self.kc.run_study(self.study, progress=False, workers=1)
