"""asv: the experiment protocols' stochastic analyses -- ``experiments.ic50`` and
``experiments.woodhull`` with ``method="stochastic"`` (1000 channels x 8 trials, the default
grids), whose standard errors are a delete-one jackknife over trials of the whole Hill-fit
pipeline (one Hill fit per left-out trial beside the simulations)."""


class StochasticHill:
    def setup(self):
        import ketacore as kc
        self.kc = kc
        self.g = kc.models.get("erreger2005_2a")

    def time_ic50_stochastic(self):
        self.kc.experiments.ic50(self.g, "ketamine", method="stochastic", n_channels=1000,
                                 n_trials=8, rng=1)

    def time_woodhull_stochastic(self):
        self.kc.experiments.woodhull(self.g, "ketamine", [-0.1, -0.07, -0.04],
                                     method="stochastic", n_channels=1000, n_trials=8, rng=1)
