"""SI unit constants.

ketacore works in SI throughout (seconds, volts, molar, siemens, amperes, kelvin).  Multiply by
these constants to write other units readably, and divide to read results back::

    import ketacore as kc
    from ketacore.units import s, ms, mV, mM, uM, pS, pA

    gating = kc.models.get("erreger2005_2a")
    gating.conductance.max() / pS            # single-channel conductance: 50.0 (pS)
    step = kc.Step(30 * s, V=-70 * mV, glutamate=1 * mM, ketamine=10 * uM)
    result = kc.simulate(kc.block(gating, "ketamine"), step, dt=10 * ms, n_channels=100, rng=1)
    result.current / pA                      # current (pA), shape (n_trials, n_samples)

Physical constants (CODATA 2018 exact values) are provided for Woodhull voltage dependence.
"""
# time (s)
s = 1.0
ms = 1e-3
us = 1e-6
minute = 60.0
# voltage (V)
V = 1.0
mV = 1e-3
# concentration (mol/L)
M = 1.0
mM = 1e-3
uM = 1e-6
nM = 1e-9
# conductance (S)
S = 1.0
nS = 1e-9
pS = 1e-12
# current (A)
A = 1.0
nA = 1e-9
pA = 1e-12
# rates
per_s = 1.0
per_M_per_s = 1.0
# temperature (K)
K = 1.0
ZERO_CELSIUS = 273.15

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)
ELEMENTARY_CHARGE = 1.602176634e-19  # C
BOLTZMANN = 1.380649e-23  # J/K


def celsius(t: float) -> float:
    """Convert a temperature in degrees Celsius to kelvin.

    Parameters
    ----------
    t : float
        Temperature (°C), a finite real number above -273.15.

    Returns
    -------
    float
        The temperature in kelvin (K), ``t + 273.15``.

    Raises
    ------
    TypeError
        ``t`` is not a real number (a string such as ``"22"`` or a bool was converted silently
        before).
    ValueError
        ``t`` is not finite (or beyond the float range) or is not above absolute zero.
    """
    import numbers
    if isinstance(t, bool) or type(t).__name__ == "bool_" or not isinstance(t, numbers.Real):
        raise TypeError(f"celsius: t must be a real number of degrees Celsius, got "
                        f"{type(t).__name__} ({t!r:.40})")
    try:
        x = float(t)
    except OverflowError:  # an int beyond the float range
        x = float("inf")
    if not (x > -ZERO_CELSIUS and x < float("inf")):
        raise ValueError(f"celsius: t must be finite and above absolute zero (-273.15 °C), "
                         f"got {x!r}")
    return x + ZERO_CELSIUS


__all__ = [
    "s", "ms", "us", "minute", "V", "mV", "M", "mM", "uM", "nM", "S", "nS", "pS", "A", "nA",
    "pA", "K", "ZERO_CELSIUS", "FARADAY", "GAS_CONSTANT", "ELEMENTARY_CHARGE", "BOLTZMANN",
    "celsius", "per_s", "per_M_per_s",
]
