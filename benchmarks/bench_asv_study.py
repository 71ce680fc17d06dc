"""asv: study-runner overhead per chunk (spec parsing, scheme composition, exact reduction)
against the bare ``kc.simulate`` call it wraps, and a whole in-memory study."""
import textwrap

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
