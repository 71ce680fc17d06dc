"""Generate the 256-level exponential and normal ziggurat tables used by ketacore's RNG.

Marsaglia & Tsang (2000), "The ziggurat method for generating random variables",
J. Stat. Softw. 5(8), doi:10.18637/jss.v005.i08, with 53-bit integer comparisons as in
numpy's ``Generator.standard_exponential``.  Both sets of tables must equal numpy's
(numpy/random/src/distributions/ziggurat_constants.h), entry for entry: with them ketacore's
exponential and normal variates coincide bit for bit with numpy's for the same PCG64 stream
(tests/test_rng.py compares draws, and pins the tables by hash).  An entry one unit off would
change a variate only when the uniform lands on it (~1e-16 of draws), which no draw test sees.

The exponential tables (ke/we/fe_double) come from the exact ziggurat: its layer boundaries x_i
are computed here in 60-digit arithmetic (mpmath) from the defining equations, and numpy's
we = x_i / 2^53 and fe = exp(-x_i) are those correctly rounded.  But numpy's ke are the 52-bit
tables of Julia's ziggurat (Random.ke) doubled, 2 floor(2^52 x_{i-1}/x_i), not the 53-bit floors
floor(2^53 x_{i-1}/x_i): one unit lower in 131 of the 256 (every layer whose exact quotient has
a 1 in its 53rd bit).  ``_exponential_tables`` builds them so.

The normal tables (52-bit magnitude + sign bit, as numpy's ``Generator.standard_normal``)
must equal numpy's ki/wi/fi_double, and those are *not* the correctly rounded exact tables:
numpy computed them in double precision, and the exact ones (computed as the exponential
tables are) differ from them in 127 of the 256 ki (by up to 14 units) and in the last bits of
203 wi and 241 fi -- which would change most variates.  So ``_normal_tables`` repeats numpy's
double-precision construction step by step; the 60-digit solution only checks it (see there).

Run: ``python tools/gen_ziggurat_tables.py > csrc/include/ketacore/ziggurat_tables.hpp``
(requires mpmath; only needed to regenerate the header).
"""
import math

import mpmath as mp

mp.mp.dps = 60
N = 256


def _x_chain(r, v):
    x = [None] * N
    x[N - 1] = r
    d = r
    for i in range(N - 2, 0, -1):
        d = -mp.log(v / d + mp.exp(-d))
        x[i] = d
    return x


def _mismatch(r):
    v = mp.exp(-r) * (r + 1)  # base strip area: r f(r) + tail integral
    x = _x_chain(r, v)
    return v / x[1] - (1 - mp.exp(-x[1]))  # top strip must have the same area


# ----------------------------------------------------------------------------- normal
# numpy's constants, as the literals of ziggurat_constants.h (r: the right edge of the base
# strip; v: the area of each layer; v is 4 ulp below the exact value, and numpy's tables are
# built from it).
NOR_R = 3.6541528853610087963519472518
NOR_INV_R = 0.27366123732975827203338247596
NOR_V = 0.0049286732339746519
# Layers whose f(x_i) = exp(-x_i^2/2) numpy's table holds rounded *up* where correct
# rounding goes down: exp(-x_38^2/2) lies 0.4983 ulp above a double, a near-tie that the
# libm numpy's tables were made with rounded the other way.  Every other exp and log of the
# construction is correctly rounded in numpy's table.  The wrong-way f(x_38) enters x_37, ...,
# x_1, so it shows in all of ki/wi/fi[1..38].
_NOR_EXP_UP = (38,)


def _exp_d(t):  # exp of a double, correctly rounded to double
    return float(mp.exp(mp.mpf(t)))


def _log_d(t):  # log of a double, correctly rounded to double
    return float(mp.log(mp.mpf(t)))


def _f_nor(x):  # the normal density without its normalisation, f(0) = 1
    return mp.exp(-x * x / 2)


def _v_nor(r):  # area of each layer: the base strip's rectangle r f(r) + the tail beyond r
    return r * _f_nor(r) + mp.sqrt(mp.pi / 2) * mp.erfc(r / mp.sqrt(2))


def _x_chain_nor(r, v):
    # x[i-1] from x[i]: layer i, of width x[i] and height f(x[i-1]) - f(x[i]), has area v
    x = [None] * N
    x[N - 1] = r
    d = r
    for i in range(N - 2, 0, -1):
        d = mp.sqrt(-2 * mp.log(v / d + _f_nor(d)))
        x[i] = d
    return x


def _mismatch_nor(r):
    v = _v_nor(r)
    x = _x_chain_nor(r, v)
    return v / x[1] - (1 - _f_nor(x[1]))  # the top layer (up to f(0) = 1) has area v too


def _normal_tables():
    """numpy's ki/wi/fi_double, by numpy's own double-precision construction.

    Layer 0 is the base strip with the tail; layer i >= 1 has width x[i] (x[1] the top
    layer, x[255] = r, x[0] = 0).  In doubles, from numpy's r and v:
    x[i-1] = sqrt(-2 log(f(x[i]) + v / x[i])), f(x) = exp(-0.5 x x) (fi[i] is that f(x[i]));
    ki[i] = round-half-even(2^52 x[i-1] / x[i]) (ki[1] = 0), ki[0] = round(2^52 r f(r) / v);
    wi[i] = x[i] / 2^52, wi[0] = v / f(r) / 2^52; fi[0] = 1.  exp and log are rounded
    correctly except at _NOR_EXP_UP.
    """
    r_exact = mp.findroot(_mismatch_nor, mp.mpf("3.654152885361"))
    x_exact = _x_chain_nor(r_exact, _v_nor(r_exact))
    assert float(r_exact) == NOR_R and float(1 / r_exact) == NOR_INV_R == 1 / NOR_R
    r, v = NOR_R, NOR_V
    x = [0.0] * N
    f = [1.0] * N
    x[N - 1] = r
    for i in range(N - 1, 0, -1):
        f[i] = _exp_d(-0.5 * x[i] * x[i])
        if i in _NOR_EXP_UP:
            tie = (mp.exp(mp.mpf(-0.5 * x[i] * x[i])) - mp.mpf(f[i])) / math.ulp(f[i])
            assert 0.49 < tie < 0.5, tie  # rounded down correctly, but only just
            f[i] = math.nextafter(f[i], 2.0)
        if i > 1:
            x[i - 1] = math.sqrt(-2 * _log_d(f[i] + v / x[i]))
    # check: numpy's x_i are within 1e-14 (relative) of the exact ziggurat's
    assert all(abs(x[i] - x_exact[i]) < 1e-14 * x_exact[i] for i in range(1, N))
    two52 = 2.0 ** 52
    kn = [0] + [round(x[i - 1] / x[i] * two52) for i in range(1, N)]
    kn[0] = round(r * f[N - 1] / v * two52)
    wn = [t / two52 for t in x]
    wn[0] = v / f[N - 1] / two52
    return r_exact, kn, wn, f


def _table(out, ctype, name, tab, fmt):
    out.append(f"constexpr {ctype} {name}[256] = {{")
    out.append(",\n".join(", ".join(fmt(t) for t in tab[i:i + 4]) for i in range(0, N, 4)))
    out.append("};")


def _hex(k):
    return f"0x{k:016X}ULL"


# ------------------------------------------------------------------------ exponential
EXP_R = 7.6971174701310497140446280481  # numpy's ziggurat_exp_r (ziggurat_constants.h)


def _exponential_tables():
    """numpy's ke/we/fe_double.

    Layer 0 is the base strip with the tail (width q = v / f(r) as a rectangle, v = (r + 1) e^-r
    the area of every layer); layer i >= 1 has width x[i] (x[1] the top layer, x[255] = r), with
    x[i-1] = -log(v / x[i] + exp(-x[i])) and r fixed by the top layer's area -- solved in 60
    digits.  numpy's ke_double are Julia's 52-bit Random.ke doubled (ke_double[0] =
    0x001C5214272497C6 = 2 * 0x000E290A13924BE3): ke[i] = 2 floor(2^52 x[i-1] / x[i]) (ke[1] = 0),
    ke[0] = 2 floor(2^52 r / q) -- the exact quotients, floored at 52 bits.  we[i] = x[i] / 2^53,
    we[0] = q / 2^53 and fe[i] = exp(-x[i]) (fe[0] = 1) are correctly rounded; so is r.

    Checks: numpy's ke are the exact 53-bit floors or one unit below them, and no 52-bit quotient
    is within 1e-40 of an integer (60 digits decide every floor).
    """
    r = mp.findroot(_mismatch, mp.mpf("7.697117470131"))
    assert float(r) == EXP_R
    v = mp.exp(-r) * (r + 1)
    x = _x_chain(r, v)
    q = v / mp.exp(-r)  # width of the base strip as a rectangle
    quot = [r / q, mp.mpf(0)] + [x[i - 1] / x[i] for i in range(2, N)]
    ke = [2 * int(mp.floor(t * 2 ** 52)) for t in quot]
    for t, k in zip(quot, ke):
        frac = t * 2 ** 52 - mp.floor(t * 2 ** 52)
        assert t == 0 or min(frac, 1 - frac) > mp.mpf(10) ** -40
        assert 0 <= int(mp.floor(t * 2 ** 53)) - k <= 1
    we = [float(q / 2 ** 53)] + [float(x[i] / 2 ** 53) for i in range(1, N)]
    fe = [1.0] + [float(mp.exp(-x[i])) for i in range(1, N)]
    return r, ke, we, fe


# ------------------------------------------------------------------------------- main
def main():
    r, ke, we, fe = _exponential_tables()
    out = []
    out.append("// Generated by tools/gen_ziggurat_tables.py -- do not edit.")
    out.append("// Exponential ziggurat (Marsaglia & Tsang 2000), 256 levels, 53-bit: numpy's tables.")
    out.append("// Normal ziggurat (Marsaglia & Tsang 2000), 256 levels, 52-bit + sign: numpy's tables.")
    out.append("#pragma once")
    out.append("#include <cstdint>")
    out.append("namespace ketacore { namespace zig {")
    out.append(f"constexpr double exp_r = {mp.nstr(r, 20)};")
    _table(out, "std::uint64_t", "ke", ke, _hex)
    for name, tab in (("we", we), ("fe", fe)):
        _table(out, "double", name, tab, repr)
    nr, kn, wn, fn = _normal_tables()
    out.append(f"constexpr double nor_r = {mp.nstr(nr, 20)};")
    out.append(f"constexpr double nor_inv_r = {mp.nstr(1 / nr, 20)};")
    _table(out, "std::uint64_t", "kn", kn, _hex)
    for name, tab in (("wn", wn), ("fn", fn)):
        _table(out, "double", name, tab, repr)
    out.append("}}  // namespace ketacore::zig")
    print("\n".join(out))


if __name__ == "__main__":
    main()
