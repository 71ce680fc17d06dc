"""Random streams: known-answer tests against numpy, and distribution tests against scipy.

The C++ SeedSequence / PCG64 / exponential / normal / binomial (csrc/include/ketacore/rng.hpp)
must reproduce numpy bit for bit.  Statistical tests use fixed seeds; each states the
probability that a *correct* sampler would fail it (the threshold on the p-value).
"""
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from _binomial_stats import chisquare_binom
from ketacore import _core, _rng

R = _core.rng

ENTROPIES = [0, 1, 42, 2**32 + 5, 2**64 - 1, 2**127 + 12345678901234567890, 2**128 - 1, (1, 2, 3, 4, 5, 6)]
TRIALS = [0, 1, 12345]


def np_gen(entropy, key):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key)))


@pytest.mark.parametrize("entropy", ENTROPIES)
@pytest.mark.parametrize("trial", TRIALS)
def test_seed_sequence_and_pcg64_state_match_numpy(entropy, trial):
    w = _rng.entropy_words(entropy)
    ss = np.random.SeedSequence(entropy, spawn_key=(trial,))
    assert (R.seed_sequence_state(w, [trial], 8) == ss.generate_state(8)).all()
    st = np_gen(entropy, (trial,)).bit_generator.state["state"]
    assert R.pcg64_state(w, [trial]) == (st["state"], st["inc"])


@pytest.mark.parametrize("entropy", ENTROPIES)
@pytest.mark.parametrize("trial", TRIALS)
def test_first_1000_uint64_and_doubles_match_numpy(entropy, trial):
    w = _rng.entropy_words(entropy)
    assert (R.uint64(w, [trial], 1000) == np_gen(entropy, (trial,)).bit_generator.random_raw(1000)).all()
    assert (R.random(w, [trial], 1000) == np_gen(entropy, (trial,)).random(1000)).all()


@pytest.mark.parametrize("key", [(0, 1), (7, 3), (2**40, 2**33 + 1), (0,) * 6])
def test_multi_word_spawn_keys(key):
    w = _rng.entropy_words(2**100 + 3)
    ss = np.random.SeedSequence(2**100 + 3, spawn_key=key)
    assert (R.seed_sequence_state(w, list(key), 8) == ss.generate_state(8)).all()
    assert (R.uint64(w, list(key), 100) == np_gen(2**100 + 3, key).bit_generator.random_raw(100)).all()


def test_stream_known_answer_hash():
    """Frozen digest of the first 1000 outputs of trial 0 under entropy 12345 (numpy 2.x gives the
    same bytes); guards against silent changes of the stream definition."""
    u = R.uint64([12345], [0], 1000).astype("<u8")
    assert hashlib.sha256(u.tobytes()).hexdigest() == (
        "fffff8997e05853445e0a4934dbcb6e36a41d3f6d7eaa351be85d0d6fc6634f0")


@pytest.mark.parametrize("entropy", [0, 2**127 + 99, (5, 6)])
def test_standard_exponential_matches_numpy_ziggurat(entropy):
    # 2e5 draws exercise the slow paths (~1.1% of draws, incl. the tail) thousands of times
    w = _rng.entropy_words(entropy)
    ours = R.standard_exponential(w, [3], 200_000)
    ref = np_gen(entropy, (3,)).standard_exponential(200_000)
    assert (ours == ref).all()


def test_exponential_slow_paths_decide_exactly_as_numpy():
    """8e6 draws give ~88000 slow-path decisions (wedges of all 255 layers and the tail), each
    compared with numpy's ziggurat through the whole remaining stream: a single different
    decision would shift every later draw."""
    w = _rng.entropy_words(2024)
    ours = R.standard_exponential(w, [1], 8_000_000)
    ref = np_gen(2024, (1,)).standard_exponential(8_000_000)
    assert ours.tobytes() == ref.tobytes()


NOR_R = 3.6541528853610088  # numpy's ziggurat_nor_r: only the tail path returns |x| > r


@pytest.mark.parametrize("entropy,key", [(0, (3,)), (2**127 + 99, (3,)), ((5, 6), (1, 2))])
def test_standard_normal_matches_numpy_ziggurat(entropy, key):
    """standard_normal is numpy's ``Generator.standard_normal`` bit for bit (bytes compared, so
    the sign of zero too).

    Of 2e5 draws about 2900 take the wedge test (1.47 % of words, all of the top layer's) and
    about 51 the tail (2.6e-4); a single different decision there would shift every later draw.
    The tail is asserted to have been reached: the fast and wedge paths return |x| < r.
    """
    w = _rng.entropy_words(entropy)
    ours = R.standard_normal(w, list(key), 200_000)
    ref = np_gen(entropy, key).standard_normal(200_000)
    assert ours.tobytes() == ref.tobytes()
    assert np.count_nonzero(np.abs(ours) > NOR_R) > 0


def test_normal_slow_paths_decide_exactly_as_numpy():
    """8e6 draws: ~117000 wedge decisions (all 255 wedges) and ~2000 tail draws, each compared
    with numpy's ziggurat through the whole remaining stream."""
    ours = R.standard_normal(_rng.entropy_words(2024), [1], 8_000_000)
    ref = np_gen(2024, (1,)).standard_normal(8_000_000)
    assert ours.tobytes() == ref.tobytes()
    assert np.count_nonzero(np.abs(ours) > NOR_R) > 1000


ROOT = Path(__file__).resolve().parents[1]
ZIG_HEADER = ROOT / "csrc" / "include" / "ketacore" / "ziggurat_tables.hpp"
ZIG_TOOL = ROOT / "tools" / "gen_ziggurat_tables.py"


def _header_table(name):
    pattern = rf"constexpr (?:double|std::uint64_t) {name}\[256\] = \{{(.*?)\}};"
    body = re.search(pattern, ZIG_HEADER.read_text(), re.DOTALL).group(1)
    if "ULL" in body:
        return np.array([int(h, 16) for h in re.findall(r"0x([0-9A-F]+)ULL", body)], dtype="<u8")
    return np.array([float(t) for t in body.split(",")], dtype="<f8")


def test_ziggurat_tables_header_is_current():
    """csrc/include/ketacore/ziggurat_tables.hpp (exponential and normal tables) is byte for byte
    what tools/gen_ziggurat_tables.py prints: an edit of one without the other fails here."""
    pytest.importorskip("mpmath")
    if not (ZIG_HEADER.is_file() and ZIG_TOOL.is_file()):
        pytest.skip("not run from a source checkout")
    out = subprocess.run([sys.executable, str(ZIG_TOOL)], capture_output=True, check=True).stdout
    assert out == ZIG_HEADER.read_bytes()


def test_normal_tables_are_numpys():
    """kn/wn/fn are numpy's ki/wi/fi_double (numpy/random/src/distributions/ziggurat_constants.h).

    The draw comparisons above cannot show this for kn and fn: an entry one unit off changes a
    variate only when the uniform lands exactly on it (~1e-16 of draws).  Frozen sha256 of
    numpy's three tables (little-endian uint64 ki, then float64 wi, fi), and, readable, some
    entries where numpy's double-precision construction departs from the exact ziggurat
    (exact: kn[0] ...EF65, kn[2] ...C6B6; fn[38] is a near-tie rounded up, see the tool).
    """
    if not ZIG_HEADER.is_file():
        pytest.skip("not run from a source checkout")
    kn, wn, fn = _header_table("kn"), _header_table("wn"), _header_table("fn")
    assert kn[0] == 0x000EF33D8025EF6A and kn[1] == 0 and kn[2] == 0x000C08BE98FBC6A8
    assert kn[38] == 0x000FD49A9990B478 and kn[255] == 0x000F1A5A4B331C4A
    assert wn[0] == 8.68362706080130616677e-16 and wn[255] * 2.0**52 == NOR_R
    assert fn[0] == 1.0 and fn[38] == 6.77388036218773526009e-01 and fn[255] == 1.26028593049859797236e-03
    digest = hashlib.sha256(kn.tobytes() + wn.tobytes() + fn.tobytes()).hexdigest()
    assert digest == "d46841a090f638a74c6bd112345fe681089be798d725b251129f062cad5521a3"


EXP_R = 7.6971174701310497140446280481  # numpy's ziggurat_exp_r


def test_exponential_tables_are_numpys():
    """ke/we/fe are numpy's ke/we/fe_double (ziggurat_constants.h), exp_r its ziggurat_exp_r.

    As for the normal tables, the draw comparisons cannot show this for ke: an entry one unit off
    changes a variate only when the uniform lands exactly on it.  numpy's ke are Julia's 52-bit
    tables doubled, 2 floor(2^52 x_{i-1}/x_i), all even and one unit below the exact 53-bit floor
    in 131 layers (exact: ke[0] ...97C7, ke[2] ...317F, ke[254] ...0BB1); we and fe are the exact
    ziggurat's correctly rounded.  Frozen sha256 of numpy's three tables (little-endian uint64
    ke, then float64 we, fe), and some readable entries.
    """
    if not ZIG_HEADER.is_file():
        pytest.skip("not run from a source checkout")
    ke, we, fe = _header_table("ke"), _header_table("we"), _header_table("fe")
    exp_r = float(re.search(r"constexpr double exp_r = ([0-9.e+-]+);", ZIG_HEADER.read_text()).group(1))
    assert exp_r == EXP_R
    assert ke[0] == 0x001C5214272497C6 and ke[1] == 0 and ke[2] == 0x00137D5BD79C317E
    assert ke[254] == 0x001DDDF62BAC0BB0 and ke[255] == 0x001CDB4DD9E4E8C0 and not (ke & 1).any()
    assert we[0] == 9.655740063209182975e-16 and we[255] * 2.0**53 == EXP_R
    assert fe[0] == 1.0 and fe[1] == 9.381436808621747003e-01 and fe[255] == 4.541343538414967652e-04
    digest = hashlib.sha256(ke.tobytes() + we.tobytes() + fe.tobytes()).hexdigest()
    assert digest == "0d6e976213179f23220006494ca271c75af26c01872ff952ef983d10305e1a95"


_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier
_PCG_INC = 0x5851F42D4C957F2D14057B7EF767814F   # any odd increment


def _numpy_exponential_takes_fast_path(word):
    """numpy's standard_exponential on a PCG64 whose next output is `word`: True when it returned
    after that one output (the fast path ri < ke[layer]), False when it drew more (slow paths)."""
    hi = 0x0123456789ABCDEF  # state after the step: hi 64 bits, rotation hi >> 58
    rot, m64, m128 = hi >> 58, 2**64 - 1, 2**128 - 1
    lo = (((word << rot) | (word >> (64 - rot))) & m64) ^ hi  # XSL-RR output = word
    before = (((hi << 64 | lo) - _PCG_INC) * pow(_PCG_MULT, -1, 2**128)) & m128
    bg = np.random.PCG64(0)
    bg.state = {"bit_generator": "PCG64", "state": {"state": before, "inc": _PCG_INC},
                "has_uint32": 0, "uinteger": 0}
    np.random.Generator(bg).standard_exponential()
    return bg.state["state"]["state"] == hi << 64 | lo


def test_exponential_fast_path_boundaries_are_numpys():
    """At every layer numpy's ziggurat itself takes the fast path at ri = ke - 1 and not at ri = ke
    (numpy is fed the words through a PCG64 state set to output them): ke is numpy's, entry for
    entry, independently of the header's text.  And exponential_low55's 47-bit bounds
    k = ceil(ke / 64) (rng.hpp's Layers47) decide as numpy does at 64 ri: words at ri47 = k - 1 and
    k, each followed by a tail word, give the same variates as the 53-bit words of numpy's layout
    (a different decision would shift the stream the later tails draw from)."""
    if not ZIG_HEADER.is_file():
        pytest.skip("not run from a source checkout")
    ke = [int(k) for k in _header_table("ke")]
    for layer in range(256):
        for ri, fast in ((ke[layer] - 1, True), (ke[layer], False)):
            if ri >= 0:
                assert _numpy_exponential_takes_fast_path((ri << 11) | (layer << 3) | 5) == fast, (layer, ri)
    low55, layout53 = [], []
    tail = (ke[0] + 63) >> 6  # layer 0 at ri47 = ceil(ke[0] / 64): the tail, one further draw
    for layer in range(256):
        for ri47 in ((ke[layer] + 63) >> 6) - 1, (ke[layer] + 63) >> 6:
            for r, lay in ((ri47, layer), (tail, 0)):
                if r >= 0:
                    low55.append((0x1A5 << 55) | (lay << 47) | r)
                    layout53.append((r << 17) | (lay << 3))
    a = R.exponential_from_words([7], [0], np.array(low55, dtype=np.uint64), True)
    b = R.exponential_from_words([7], [0], np.array(layout53, dtype=np.uint64), False)
    assert a.tobytes() == b.tobytes()


BINOMIAL_CASES = [(5, 0.3), (5, 0.9), (40, 0.8), (1000, 0.01), (1000, 0.5), (1000, 0.97),
                  (10**6, 3e-5), (10**9, 1e-3), (10**9, 0.3), (10**9, 0.7), (2**40, 0.25)]


@pytest.mark.parametrize("n,p", BINOMIAL_CASES)
def test_binomial_matches_numpy_bitwise(n, p):
    ours = R.binomial([7], [3], 5000, n, p)
    g = np_gen(7, (3,))
    ref = np.array([g.binomial(n, p) for _ in range(5000)])
    assert (ours == ref).all()


def test_binomial_edge_cases():
    assert (R.binomial([1], [0], 10, 0, 0.5) == 0).all()
    assert (R.binomial([1], [0], 10, 100, 0.0) == 0).all()
    assert (R.binomial([1], [0], 10, 100, 1.0) == 100).all()


@pytest.mark.parametrize("n,p", [(5, 0.3), (1000, 0.4), (1000, 0.02), (10**9, 0.3), (10**9, 2e-8)])
def test_binomial_distribution_vs_scipy(n, p):
    """Chi-square vs scipy.stats.binom.  A correct sampler fails with probability 1e-4 (p-value
    threshold); the fixed seed makes the outcome deterministic."""
    x = R.binomial(_rng.entropy_words(2024), [n % 97], 200_000, n, p)
    assert chisquare_binom(x, n, p) > 1e-4
    # mean within 5 standard errors (failure probability 6e-7)
    sd = np.sqrt(n * p * (1 - p) / x.size)
    assert abs(x.mean() - n * p) < 5 * sd


@pytest.mark.slow
@pytest.mark.parametrize("n,p", [(5, 0.5), (31, 0.5), (61, 0.5), (1000, 0.03), (10**5, 0.5), (10**9, 0.5),
                                 (10**12, 1e-3)])
def test_binomial_distribution_vs_scipy_large_sample(n, p):
    """As above with 2e6 draws per case (failure probability 1e-4 each)."""
    x = R.binomial(_rng.entropy_words(99), [n % 89], 2_000_000, n, p)
    assert chisquare_binom(x, n, p) > 1e-4


def test_exponential_distribution_ks():
    """KS vs Exp(1), 1e5 draws; a correct sampler fails with probability 1e-4."""
    x = R.standard_exponential([11], [0], 100_000)
    assert stats.kstest(x, "expon").pvalue > 1e-4


def test_normal_distribution_ks():
    """KS vs N(0, 1) on 1e5 draws, and -- the KS statistic hardly sees the tails -- of the 4e6
    draws' |x| beyond r vs the normal tail (~1030 of them), with their count within 5 standard
    errors of 4e6 P(|x| > r).  A correct sampler fails with probability 2e-4 (1e-4 per KS
    threshold, 6e-7 for the count)."""
    x = R.standard_normal([11], [0], 100_000)
    assert stats.kstest(x, "norm").pvalue > 1e-4
    y = np.abs(R.standard_normal([12], [0], 4_000_000))
    t = y[y > NOR_R]
    p = 2 * stats.norm.sf(NOR_R)
    assert abs(t.size - y.size * p) < 5 * np.sqrt(y.size * p * (1 - p))
    assert stats.kstest(t, stats.truncnorm(NOR_R, np.inf).cdf).pvalue > 1e-4


def test_ssa_exponential_is_numpy_ziggurat_at_47_bits():
    """The ssa's exponential_low55(w) (layer = bits 47..54, 47-bit uniform = bits 0..46; the top 9
    bits are the next-state bucket) equals numpy's ziggurat on the word whose 53-bit uniform is
    64 * (47-bit uniform) and whose layer is the same -- including every slow path (tail, wedge,
    rejection), which draw the same further outputs."""
    rng = np.random.default_rng(5)
    w = rng.integers(0, 2**64, size=300_000, dtype=np.uint64, endpoint=False)
    ri47 = w & np.uint64(2**47 - 1)
    layer = (w >> np.uint64(47)) & np.uint64(0xFF)
    u = (ri47 << np.uint64(17)) | (layer << np.uint64(3)) | (w >> np.uint64(61))  # numpy's layout
    low55 = R.exponential_from_words([7], [0], w, True)
    numpy_layout = R.exponential_from_words([7], [0], u, False)
    assert (low55 == numpy_layout).all()
    # the top 9 bits (the ssa's next-state bucket) do not enter: flipping them changes no variate
    flipped = R.exponential_from_words([7], [0], w ^ np.uint64(0x1FF << 55), True)
    assert (flipped == low55).all()


def test_ssa_exponential_distribution_ks():
    """KS of exponential_low55 on 1e5 uniform words vs Exp(1): fails for a correct sampler with
    probability 1e-4."""
    w = np.random.default_rng(8).integers(0, 2**64, size=100_000, dtype=np.uint64, endpoint=False)
    assert stats.kstest(R.exponential_from_words([9], [0], w, True), "expon").pvalue > 1e-4


# ------------------------------------------------------------------ SPEC 7 rng= handling
def test_root_entropy_spec7():
    assert _rng.root_entropy(42) == 42
    assert _rng.root_entropy(np.int64(7)) == 7
    e = _rng.root_entropy(None)
    assert isinstance(e, int) and e >= 0
    assert _rng.root_entropy(np.random.SeedSequence(123)) == 123
    assert _rng.root_entropy(np.random.SeedSequence([1, 2])) == (1, 2)
    # a Generator is a source of randomness (SPEC 7): 128 bits are drawn from it, advancing it
    g = np.random.default_rng(99)
    e1, e2 = _rng.root_entropy(g), _rng.root_entropy(g)
    assert isinstance(e1, int) and 0 <= e1 < 2**128 and e1 != e2 and e1 != 99
    w = np.random.default_rng(99).integers(0, 2**32, size=4, dtype=np.uint64)
    assert e1 == sum(int(x) << (32 * i) for i, x in enumerate(w))      # documented draw
    g2 = np.random.default_rng(99)
    assert (_rng.root_entropy(g2), _rng.root_entropy(g2)) == (e1, e2)  # same seed reproduces
    child = np.random.SeedSequence(5).spawn(1)[0]
    gc = np.random.Generator(np.random.PCG64(child))
    e1 = _rng.root_entropy(gc)
    assert isinstance(e1, int) and e1 != _rng.root_entropy(gc)  # drawn from (advances) the generator
    with pytest.raises(ValueError, match="rng"):
        _rng.root_entropy(-1)
    with pytest.raises(TypeError, match="rng"):
        _rng.root_entropy("42")
    with pytest.raises(TypeError, match="rng"):
        _rng.root_entropy(True)
    # a spawned SeedSequence (the numpy pattern for parallel jobs) is accepted: its root
    # entropy is the 128-bit integer of its first four state words, a pure function of it
    w = child.generate_state(4, np.uint32)
    assert _rng.root_entropy(child) == sum(int(x) << (32 * i) for i, x in enumerate(w))
    assert _rng.root_entropy(child) == _rng.root_entropy(np.random.SeedSequence(5).spawn(1)[0])
    assert _rng.root_entropy(child) != _rng.root_entropy(np.random.SeedSequence(5).spawn(2)[1])
    big_pool = np.random.SeedSequence(5, pool_size=8)
    assert _rng.root_entropy(big_pool) == sum(
        int(x) << (32 * i) for i, x in enumerate(big_pool.generate_state(4, np.uint32)))


def test_spawned_seed_sequences_reproduce_and_differ():
    """SPEC 7: rng= takes any SeedSequence.  Children of one spawn give independent runs; the
    same child, or the root entropy stored in the result, reproduces a run bit for bit (they
    were refused before, as 'cannot be used as a root')."""
    import ketacore as kc
    from _stochastic_models import bench_scheme
    sch, prot = bench_scheme(), kc.Step(0.05, glutamate=1e-3)
    kids = np.random.SeedSequence(2026).spawn(2)

    def run(rng, fn=kc.simulate):
        if fn is kc.simulate:
            return kc.simulate(sch, prot, dt=1e-3, n_channels=40, n_trials=2, rng=rng)
        return kc.simulate_events(sch, prot, n_trials=2, rng=rng)

    a, b, c = run(kids[0]), run(np.random.SeedSequence(2026).spawn(2)[0]), run(kids[1])
    assert (a.counts == b.counts).all() and not (a.counts == c.counts).all()
    assert a.entropy != c.entropy
    assert (run(a.entropy).counts == a.counts).all()
    ea, eb = run(kids[0], kc.simulate_events), run(a.entropy, kc.simulate_events)
    for i in range(2):
        assert (ea[i][0] == eb[i][0]).all() and (ea[i][1] == eb[i][1]).all()


def test_python_stream_helper_matches_core():
    g = _rng.stream(2**70 + 1, 5)
    assert (g.bit_generator.random_raw(50) == R.uint64(_rng.entropy_words(2**70 + 1), [5], 50)).all()
    g = _rng.stream(3, 5, block=2)
    assert (g.bit_generator.random_raw(50) == R.uint64([3], [5, 2], 50)).all()


# (BTRS's exact test has three regimes: |k - m| <= 20 by the product recursion -- most of
# 10 <= n p q <~ 400 --, BTPE's squeeze on log f(k)/f(m), and the full Stirling-tail test)
FAST_CASES = [(5, 0.3), (20, 0.9), (50, 0.19), (50, 0.21), (300, 0.1), (400, 0.25), (2000, 0.5),
              (1000, 4.6e-3), (10**4, 0.5),
              (10**6, 9.9e-6), (10**6, 1.01e-5), (2 * 10**8, 1e-6), (10**9, 4.6e-3), (10**9, 0.7),
              (10**9, 1e-12), (3 * 10**12, 0.25),
              # p below ~1e-15, where 1 - p rounds: log(1 - p) was 0 or off (always 0 drawn
              # for p < 2^-54; P(0) = 0.036 instead of 0.0082 at n p = 4.8)
              (10**17, 3e-17), (3 * 10**16, 1.6e-16), (2**62, 2e-18),
              # the column-order variant's unrolled inversion (words=2): n p in [0.2, 2) with
              # M = 8 (n >= 8; n = 10, n p = 1.9 reaches its tail X >= 8), [2, 6) with M = 16,
              # and n below M (the sequential search)
              (8, 0.1), (10, 0.19), (7, 0.25), (16, 0.3), (15, 0.3), (10**9, 1.5e-9), (10**6, 5e-6),
              (3 * 10**12, 1e-12)]


@pytest.mark.parametrize("words", [1, 2])
@pytest.mark.parametrize("n,p", FAST_CASES)
def test_population_binomial_vs_scipy(n, p, words):
    """The population method's sampler (inversion below n·p = 10, BTRS above; not numpy's BTPE),
    in its row-order (words=1) and column-order (words=2) variants: chi-square vs
    scipy.stats.binom with 200k draws (failure probability 1e-4 per case), and the mean within 5
    standard errors (6e-7)."""
    x = R.binomial_fast(_rng.entropy_words(31337), [n % 101], 200_000, n, p, words)
    assert x.min() >= 0 and x.max() <= n
    if n * min(p, 1 - p) > 1e-3:
        assert chisquare_binom(x, n, p) > 1e-4
    sd = np.sqrt(n * p * (1 - p) / x.size)
    assert abs(x.mean() - n * p) < 5 * sd + 1e-12


@pytest.mark.parametrize("n,p", [(8, 0.025), (12, 0.16), (40, 0.125), (16, 0.3), (64, 0.09), (10**9, 1.9e-9),
                                 (10**9, 5.5e-9), (10**7, 3e-8)])
def test_unrolled_inversion_draws_the_counts_of_the_search(n, p):
    """binomial_inversion_unrolled counts the k < M with U > F(k) from the same uniform and the
    same recursion as BINV's sequential search, so the column-order variant draws the very
    counts of the row-order one for n p < 10 (not only the same distribution): 1e6 draws each,
    including the tail beyond M (expected draws of X >= M: ~115 at n = 12, n p = 1.92; ~790 at
    n = 1e9, n p = 1.9; ~130 at n = 64, n p = 5.76 with M = 16).  The two sum the cdf in
    different orders, so a count could differ only when U lies within a few ulp of a cdf step
    (probability ~1e-8 over these draws)."""
    e = _rng.entropy_words(2718)
    a = R.binomial_fast(e, [n % 97], 1_000_000, n, p, 1)
    b = R.binomial_fast(e, [n % 97], 1_000_000, n, p, 2)
    assert (a == b).all()
    M = 8 if n * p < 2 else 16
    if n >= M and stats.binom.sf(M - 1, n, p) * a.size > 20:
        assert (a >= M).sum() > 0  # the tail path ran (P(none) < e^-20)


def test_population_binomial_edges():
    assert (R.binomial_fast([1], [0], 10, 0, 0.3) == 0).all()
    assert (R.binomial_fast([1], [0], 10, 7, 0.0) == 0).all()
    assert (R.binomial_fast([1], [0], 10, 7, 1.0) == 7).all()


@pytest.mark.slow
@pytest.mark.parametrize("n,p", [(11, 0.95), (100, 0.1), (101, 0.099), (10**5, 1e-4), (10**7, 0.5), (10**9, 2e-6)])
def test_population_binomial_vs_scipy_large_sample(n, p):
    """2e6 draws per case; failure probability 1e-4 each."""
    x = R.binomial_fast(_rng.entropy_words(4242), [n % 89], 2_000_000, n, p)
    assert chisquare_binom(x, n, p) > 1e-4
