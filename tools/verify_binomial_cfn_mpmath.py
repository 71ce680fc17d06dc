"""Independent mpmath re-derivation of b(k) = -npq log(f(k)/h(k)) for binomial_cfn
(csrc/include/ketacore/population.hpp), where h is the *true* proposal pmf of the C++ map (with
the double parameters base, fo, sigma, c computed as the code computes them) and f the exact
Binomial(n, ps) pmf at 60 digits; also the difference between the C++ log f / log h (test
bindings) and these.  Written by helper-119's audit (2026-11-29); it found that the proposal was
centred on fl(n ps), which broke the constants from n p q ~ 1e10 (fixed: the exact mean from
mu = 2^28 on).  Complements tools/verify_binomial_cfn.py, whose double-precision evaluation of
b (~n p q * 1e-14) cannot resolve A above n p q ~ 1e10.

Run: ``python tools/verify_binomial_cfn_mpmath.py [small|big|all]`` (big: n p q > 1e9; one JSON
line per (n, p), flagged VIOL where -b > A or b exceeds the squeeze's allowance).  Last run of
"big" (2026-11-29, after the fix): every point up to n p q = 1e13 within the bounds (largest -b
0.078 at p = 1/2 -+ 1 ulp, squeeze ratio <= 0.45); at 1e14 -b reaches ~0.24, i.e. 2.4e-15
relative, the rounding of sigma and c in double precision, where the code's own evaluation of
b is good to only ~2-3 (bcode_err).
"""
import math, struct, sys, json
import numpy as np, mpmath as mp
import ketacore._core as C
R = C.rng
mp.mp.dps = 60
A, C0, C4, ZMAX = 0.125, 0.175, 0.035, 3.92

def setup(n, p):
    flip = p > 0.5
    ps = 1.0 - p if flip else p
    qs = 1.0 - ps
    psqs = ps * qs
    npq = float(n) * psqs
    sigma = math.sqrt(npq)
    mu = float(n) * ps
    c = (qs - ps) / 6.0
    e = ((struct.unpack('<Q', struct.pack('<d', npq))[0] >> 52) & 0x7ff) - 1023
    off = 1 << ((e >> 1) + 4)
    half = mu + 0.5
    whole = int(half)
    base = whole - off
    from fractions import Fraction
    mu_lo = float(Fraction(int(n)) * Fraction(ps) - Fraction(mu)) if mu >= 2.0**28 else 0.0
    fo = ((half - float(whole)) + mu_lo) + float(off)
    return dict(ps=ps, qs=qs, npq=npq, sigma=sigma, mu=mu, c=c, base=base, fo=fo, off=off)

def preimage(y, s, c):
    cy = c + y
    disc = s * s + 4 * c * cy
    if disc <= 0: return -s / (2 * c)
    return 2 * cy / (s + mp.sqrt(disc))

def log_h_true(k, S):
    s, c = mp.mpf(S['sigma']), mp.mpf(S['c'])
    ylo = mp.mpf(k - S['base']) - mp.mpf(S['fo'])
    zlo, zhi = preimage(ylo, s, c), preimage(ylo + 1, s, c)
    if zlo >= 0:
        h = (mp.erfc(zlo / mp.sqrt(2)) - mp.erfc(zhi / mp.sqrt(2))) / 2
    else:
        h = (mp.erfc(-zhi / mp.sqrt(2)) - mp.erfc(-zlo / mp.sqrt(2))) / 2
    return mp.log(h), float(zlo), float(zhi)

def log_f_exact(k, n, ps):
    P = mp.mpf(ps); Q = 1 - P
    return mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1) + k * mp.log(P) + (n - k) * mp.log(Q)

def ks_for(n, S, nz=160):
    """counts covering z in [-9, 9] plus every count within |z|<4.3 if few."""
    ks = set()
    sig = S['sigma']
    if sig < 40:
        lo = int(S['mu'] - 12 * sig) - 2; hi = int(S['mu'] + 12 * sig) + 3
        ks.update(range(max(0, lo), min(n, hi) + 1))
    else:
        for z in list(np.linspace(-9, 9, nz)) + list(np.linspace(-0.05, 0.05, 9)) + [3.9199, -3.9199, 3.92, -3.92, 3.0, -3.0, 2.0, -2.0]:
            t = S['fo'] + S['c'] * (z * z - 1) + S['sigma'] * z
            k0 = S['base'] + math.floor(t)
            for d in (-1, 0, 1):
                if 0 <= k0 + d <= n: ks.add(k0 + d)
    return sorted(ks)

def check(n, p):
    S = setup(n, p)
    ps = S['ps']
    ks = ks_for(n, S)
    npq = S['npq']
    kflip = [n - k for k in ks] if p > 0.5 else ks
    lf_code = R.binomial_cfn_log_pmf(n, p, np.array(kflip, np.int64))
    lh_code = R.binomial_cfn_log_proposal(n, ps, np.array(ks, np.int64))
    worst = dict(negb=-1e300, sq=-1e300, errf=0.0, errh=0.0, bcode_err=0.0)
    for i, k in enumerate(ks):
        lf = log_f_exact(k, n, ps)
        if lf < -700: continue
        lh, zlo, zhi = log_h_true(k, S)
        b = float(-npq * (lf - lh))
        zmin = 0.0 if (zlo < 0 < zhi) else min(abs(zlo), abs(zhi))
        if -b > worst['negb']: worst.update(negb=-b, negb_k=k, negb_z=zlo)
        if zmin < ZMAX and C0 + C4 * zmin ** 4 < npq:
            r = b / (C0 - A + C4 * zmin ** 4)
            if r > worst['sq']: worst.update(sq=r, sq_k=k, sq_z=zlo)
        ef = abs(float(lf) - lf_code[i]); eh = abs(float(lh) - lh_code[i])
        worst['errf'] = max(worst['errf'], ef); worst['errh'] = max(worst['errh'], eh)
        bc = -npq * (lf_code[i] - lh_code[i])
        worst['bcode_err'] = max(worst['bcode_err'], abs(bc - b))
    return worst

def points():
    P = [0.5, 0.5 - 2**-53, 0.5 + 2**-53, 0.49999, 0.45, 0.3, 0.2, 0.1, 0.0123, 1e-3, 1e-5, 1e-7, 1e-9, 1e-12, 0.7, 0.97]
    NPQ = [32.0, 32.0001, 33, 40, 64, 200, 1e3, 1e5, 1e7, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15]
    fr = [0.0, 1e-6, 0.25, 0.5, 0.75, 0.999999]
    for npq in NPQ:
        for p in P:
            ps = min(p, 1 - p); q = 1 - ps
            n0 = math.ceil(npq / (ps * q))
            if n0 >= 2**53: continue
            for f in fr:
                # move the mean's fraction (mu mod 1) to ~f
                mu0 = n0 * ps
                d = (f - (mu0 % 1.0)) % 1.0
                n = n0 + (int(round(d / ps)) if ps * 1e6 > 1e-9 else 0)
                if n >= 2**53 or n * ps * q < 32: n = n0
                if n * ps * (1 - ps) < 32 or n >= 2**53: continue
                yield n, p
    yield 2**53 - 1, 0.5
    yield 2**53 - 1, 0.3
    yield 2**53 - 1, 1e-12
    yield 2**53 - 1, 3.6e-15
    yield 2**52 + 12345, 0.1

if __name__ == '__main__':
    sel = sys.argv[1] if len(sys.argv) > 1 else 'all'
    for n, p in points():
        S = setup(n, p)
        if sel == 'small' and S['npq'] > 1e9: continue
        if sel == 'big' and S['npq'] <= 1e9: continue
        w = check(n, p)
        w.update(n=n, p=p, npq=S['npq'], mufrac=(n * mp.mpf(S['ps'])) % 1)
        w['mufrac'] = float(w['mufrac'])
        flag = ' VIOL' if (w['negb'] > A or w['sq'] > 1) else ''
        print(json.dumps(w) + flag, flush=True)
