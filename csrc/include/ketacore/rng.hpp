// ketacore/rng.hpp -- reproducible random streams, bit-compatible with numpy.
//
// * SeedSequence: numpy.random.SeedSequence's entropy pool (pool of 4 uint32, hashmix,
//   spawn key appended after the run entropy padded to the pool size) and generate_state.
// * Pcg64: numpy.random.PCG64 (128-bit LCG, XSL-RR 64-bit output), seeded exactly as
//   numpy seeds it from a SeedSequence: generate_state(4, uint64) -> (state, inc).
//   So Pcg64(SeedSequence(entropy, {i})) reproduces
//   numpy.random.PCG64(numpy.random.SeedSequence(entropy, spawn_key=(i,))) bit for bit.
// * next_double: (x >> 11) * 2^-53, as numpy.
// * standard_exponential: 256-level ziggurat (Marsaglia & Tsang 2000) with the tables of
//   ziggurat_tables.hpp; same algorithm and draw order as numpy's
//   Generator.standard_exponential, so the variates coincide with numpy's.
// * standard_normal: 256-level normal ziggurat (Marsaglia & Tsang 2000) with numpy's tables
//   (kn/wn/fn of ziggurat_tables.hpp); numpy's random_standard_normal step for step, so the
//   variates coincide with numpy's Generator.standard_normal.
// * exponential_low55: the same ziggurat on the low 55 bits of one word (47-bit uniform inside
//   the layer), leaving the top 9 bits free; the ssa draws its next state from them.
// * binomial: BTPE (Kachitvichyanukul & Schmeiser 1988, Commun. ACM 31:216,
//   doi:10.1145/42372.42381) for n·min(p,1-p) > 30, inversion otherwise -- the same
//   algorithm, constants, branch points and draw order as numpy's Generator.binomial,
//   so results coincide with numpy's for the same stream (tests/test_rng.py).
//
// Python-free, header-only. Nothing here allocates except SeedSequence's small vectors.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>

#include "ziggurat_tables.hpp"

namespace ketacore {

// ---------------------------------------------------------------- SeedSequence
class SeedSequence {
 public:
  static constexpr int kPoolSize = 4;

  // entropy and spawn_key are given as little-endian uint32 words, exactly as numpy's
  // _coerce_to_uint32_array produces them (an int n>0 -> its base-2^32 digits, low first;
  // 0 -> [0]; a sequence of ints -> the concatenation).
  SeedSequence(const std::vector<std::uint32_t>& entropy_words,
               const std::vector<std::uint32_t>& spawn_words) {
    std::vector<std::uint32_t> assembled(entropy_words);
    if (!spawn_words.empty() && assembled.size() < static_cast<std::size_t>(kPoolSize))
      assembled.resize(kPoolSize, 0u);
    assembled.insert(assembled.end(), spawn_words.begin(), spawn_words.end());
    mix_entropy(assembled);
  }

  // Append the uint32 words of a non-negative integer (numpy's _int_to_uint32_array).
  static void append_int_words(std::uint64_t v, std::vector<std::uint32_t>& out) {
    if (v == 0) {
      out.push_back(0u);
      return;
    }
    while (v) {
      out.push_back(static_cast<std::uint32_t>(v & 0xffffffffu));
      v >>= 32;
    }
  }

  // generate_state(n_words, uint32)
  void generate_state32(std::uint32_t* out, int n_words) const {
    std::uint32_t hash_const = kInitB;
    for (int i = 0; i < n_words; ++i) {
      std::uint32_t v = pool_[i % kPoolSize];
      v ^= hash_const;
      hash_const *= kMultB;
      v *= hash_const;
      v ^= v >> kXShift;
      out[i] = v;
    }
  }

  // generate_state(n_words, uint64): pairs of uint32 viewed little-endian.
  void generate_state64(std::uint64_t* out, int n_words) const {
    std::vector<std::uint32_t> w(2 * static_cast<std::size_t>(n_words));
    generate_state32(w.data(), 2 * n_words);
    for (int i = 0; i < n_words; ++i)
      out[i] = static_cast<std::uint64_t>(w[2 * i]) | (static_cast<std::uint64_t>(w[2 * i + 1]) << 32);
  }

  const std::uint32_t* pool() const { return pool_; }

 private:
  static constexpr std::uint32_t kInitA = 0x43b0d7e5u;
  static constexpr std::uint32_t kMultA = 0x931e8875u;
  static constexpr std::uint32_t kInitB = 0x8b51f9ddu;
  static constexpr std::uint32_t kMultB = 0x58f38dedu;
  static constexpr std::uint32_t kMixMultL = 0xca01f9ddu;
  static constexpr std::uint32_t kMixMultR = 0x4973f715u;
  static constexpr int kXShift = 16;

  static std::uint32_t hashmix(std::uint32_t value, std::uint32_t& hash_const) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> kXShift;
    return value;
  }
  static std::uint32_t mix(std::uint32_t x, std::uint32_t y) {
    std::uint32_t r = kMixMultL * x - kMixMultR * y;
    r ^= r >> kXShift;
    return r;
  }
  void mix_entropy(const std::vector<std::uint32_t>& e) {
    std::uint32_t hc = kInitA;
    for (int i = 0; i < kPoolSize; ++i)
      pool_[i] = hashmix(i < static_cast<int>(e.size()) ? e[i] : 0u, hc);
    for (int s = 0; s < kPoolSize; ++s)
      for (int d = 0; d < kPoolSize; ++d)
        if (s != d) pool_[d] = mix(pool_[d], hashmix(pool_[s], hc));
    for (std::size_t s = kPoolSize; s < e.size(); ++s)
      for (int d = 0; d < kPoolSize; ++d) pool_[d] = mix(pool_[d], hashmix(e[s], hc));
  }

  std::uint32_t pool_[kPoolSize] = {0, 0, 0, 0};
};

// ---------------------------------------------------------------------- PCG64
class Pcg64 {
 public:
  using u128 = unsigned __int128;

  Pcg64() = default;
  explicit Pcg64(const SeedSequence& ss) {
    std::uint64_t v[4];
    ss.generate_state64(v, 4);
    seed((static_cast<u128>(v[0]) << 64) | v[1], (static_cast<u128>(v[2]) << 64) | v[3]);
  }
  // pcg_setseq_128_srandom_r
  void seed(u128 initstate, u128 initseq) {
    state_ = 0;
    inc_ = (initseq << 1) | 1u;
    state_ = state_ * kMult + inc_;
    state_ += initstate;
    state_ = state_ * kMult + inc_;
    inc2_ = inc_ * (kMult + 1);
  }

  inline std::uint64_t next_uint64() {
    state_ = state_ * kMult + inc_;
    return output(state_);
  }
  // The next two outputs, in order.  s1 = a s + c and s2 = a^2 s + c (a + 1) are computed
  // independently from s, halving the latency of the 128-bit multiply chain.
  inline void next_pair(std::uint64_t& first, std::uint64_t& second) {
    const u128 s1 = state_ * kMult + inc_;
    const u128 s2 = state_ * kMult2 + inc2_;
    state_ = s2;
    first = output(s1);
    second = output(s2);
  }
  inline double next_double() {
    return static_cast<double>(static_cast<std::int64_t>(next_uint64() >> 11)) * (1.0 / 9007199254740992.0);
  }

  // numpy's state: the LCG state after the last output delivered.
  u128 state() const { return state_; }
  u128 inc() const { return inc_; }
  void set_state(u128 st) { state_ = st; }
  // For hot loops that keep the state in registers (a member reached through a reference is
  // kept in memory by the compiler when the loop also has calls): st = advance(st, inc) then
  // output_of(st) is next_uint64(); write st back with set_state before any call that uses g.
  static inline u128 advance(u128 st, u128 inc) { return st * kMult + inc; }
  static inline std::uint64_t output_of(u128 st) { return output(st); }

 private:
  static inline std::uint64_t output(u128 st) {  // XSL-RR
    const std::uint64_t hi = static_cast<std::uint64_t>(st >> 64);
    const std::uint64_t x = hi ^ static_cast<std::uint64_t>(st);
    const unsigned rot = static_cast<unsigned>(hi >> 58);
    return (x >> rot) | (x << ((64u - rot) & 63u));
  }
  static constexpr u128 kMult = (static_cast<u128>(2549297995355413924ULL) << 64) | 4865540595714422341ULL;
  static constexpr u128 kMult2 = kMult * kMult;
  u128 state_ = 0, inc_ = 1, inc2_ = 0;
};
// Stream of trial `trial` (and channel block `block`, 0 = none) under root entropy words.
// block == 0: PCG64(SeedSequence(entropy, spawn_key=(trial,)))
// block >= 1: PCG64(SeedSequence(entropy, spawn_key=(trial, block)))
inline Pcg64 make_stream(const std::vector<std::uint32_t>& entropy_words, std::uint64_t trial,
                         std::uint64_t block = 0) {
  std::vector<std::uint32_t> sk;
  SeedSequence::append_int_words(trial, sk);
  if (block) SeedSequence::append_int_words(block, sk);
  return Pcg64(SeedSequence(entropy_words, sk));
}

// ------------------------------------------------------- standard exponential
template <class G>
double standard_exponential(G& g);

template <class G>
static double standard_exponential_slow(G& g, int idx, double x) {
  if (idx == 0) return zig::exp_r - std::log1p(-g.next_double());  // tail (1-U avoids log 0)
  if ((zig::fe[idx - 1] - zig::fe[idx]) * g.next_double() + zig::fe[idx] < std::exp(-x)) return x;
  return standard_exponential(g);
}

// Exponential from an already drawn uint64 `u` (the fast path uses only u; the rare slow path
// draws more from g).  standard_exponential(g) == standard_exponential_from(g.next_uint64(), g).
template <class G>
inline double standard_exponential_from(std::uint64_t u, G& g) {
  std::uint64_t ri = u >> 3;
  const int idx = static_cast<int>(ri & 0xff);
  ri >>= 8;
  const double x = static_cast<double>(static_cast<std::int64_t>(ri)) * zig::we[idx];  // ri < 2^53
  if (__builtin_expect(ri < zig::ke[idx], 1)) return x;  // ~98.9% of draws
  return standard_exponential_slow(g, idx, x);
}

template <class G>
inline double standard_exponential(G& g) {
  return standard_exponential_from(g.next_uint64(), g);
}

// The ziggurat's layers with a 47-bit uniform: k = ceil(ke / 64), w = 64 we, so that for a 47-bit
// integer ri, ri < k  <=>  64 ri < ke  and  ri w == (64 ri) we exactly (a power-of-two scaling).
namespace zig {
struct Layer {
  std::uint64_t k;
  double w;
};
struct Layers47 {
  Layer l[256];
};
constexpr Layers47 make_layers47() {
  Layers47 z{};
  for (int i = 0; i < 256; ++i) z.l[i] = Layer{(ke[i] + 63) >> 6, we[i] * 64.0};
  return z;
}
inline constexpr Layers47 layers47 = make_layers47();
}  // namespace zig

// Standard exponential from the low 55 bits of an already drawn uint64 w, leaving its top 9 bits
// to the caller (the ssa chooses the next state with them, so one stream output serves a whole
// jump).  It is numpy's ziggurat evaluated at the 53-bit uniform 64 ri: layer = bits 47..54,
// ri = bits 0..46; the rare slow paths draw fresh outputs from g exactly as numpy does.  The only
// difference from standard_exponential is the resolution of the uniform inside a layer, 2^-47
// instead of 2^-53 of the layer's width (about 1e-14 of the mean; the double-precision spacing
// of an accumulated time t is 1.1e-16 t).
//
// exponential_low55_fast is its fast path alone, for loops that keep the slow path out of line:
// it sets x and returns true when x is the variate (~99% of words); otherwise the variate is
// exponential_low55_slow(w, x, g).
inline bool exponential_low55_fast(std::uint64_t w, double& x) {
  const std::uint64_t ri = w & ((std::uint64_t(1) << 47) - 1);
  const zig::Layer& L = zig::layers47.l[(w >> 47) & 0xff];
  x = static_cast<double>(static_cast<std::int64_t>(ri)) * L.w;
  return ri < L.k;
}
template <class G>
inline double exponential_low55_slow(std::uint64_t w, double x, G& g) {
  return standard_exponential_slow(g, static_cast<int>((w >> 47) & 0xff), x);
}
template <class G>
inline double exponential_low55(std::uint64_t w, G& g) {
  double x;
  if (__builtin_expect(exponential_low55_fast(w, x), 1)) return x;
  return exponential_low55_slow(w, x, g);
}

// ------------------------------------------------------------ standard normal
// Marsaglia & Tsang (2000), J. Stat. Softw. 5(8), doi:10.18637/jss.v005.i08, in numpy's form
// (random_standard_normal in numpy/random/src/distributions/distributions.c): one uint64 gives
// the layer (bits 0..7), the sign (bit 8) and a 52-bit uniform (bits 9..60; 61..63 unused).
// The tables, branches, libm calls and draw order are numpy's, so for the same stream the
// variates are numpy's bit for bit (tests/test_rng.py).
template <class G>
double standard_normal(G& g);

template <class G>
static double standard_normal_slow(G& g, int idx, std::uint64_t rabs, double x) {
  if (idx == 0) {
    // Tail |x| > r (Marsaglia 1964): xx ~ Exp(r), accepted with probability exp(-xx^2/2);
    // log1p(-U) = log(1-U) avoids log 0.  The sign is bit 8 of rabs (bit 17 of the word), not
    // the sign bit -- numpy's choice, kept for identical variates.
    for (;;) {
      const double xx = -zig::nor_inv_r * std::log1p(-g.next_double());
      const double yy = -std::log1p(-g.next_double());
      if (yy + yy > xx * xx) return ((rabs >> 8) & 0x1) ? -(zig::nor_r + xx) : zig::nor_r + xx;
    }
  }
  // wedge of layer idx: accept x under the density, otherwise start over with a new word
  if ((zig::fn[idx - 1] - zig::fn[idx]) * g.next_double() + zig::fn[idx] < std::exp(-0.5 * x * x)) return x;
  return standard_normal(g);
}

// The fast path alone, for a word w already drawn: sets x and returns true when x is the variate
// (~98.5% of words); otherwise the variate is normal_zig_slow(w, x, g).  The sign is applied by
// flipping the sign bit, not by a branch (a coin flip would mispredict half the time).
inline bool normal_zig_fast(std::uint64_t w, double& x) {
  const int idx = static_cast<int>(w & 0xff);
  const std::uint64_t rabs = (w >> 9) & 0x000fffffffffffffULL;
  const double m = static_cast<double>(static_cast<std::int64_t>(rabs)) * zig::wn[idx];  // rabs < 2^52
  std::uint64_t bits;
  std::memcpy(&bits, &m, sizeof bits);
  bits ^= ((w >> 8) & 0x1) << 63;
  std::memcpy(&x, &bits, sizeof x);
  return rabs < zig::kn[idx];
}
template <class G>
inline double normal_zig_slow(std::uint64_t w, double x, G& g) {
  return standard_normal_slow(g, static_cast<int>(w & 0xff), (w >> 9) & 0x000fffffffffffffULL, x);
}
template <class G>
inline double standard_normal(G& g) {
  const std::uint64_t w = g.next_uint64();
  double x;
  if (__builtin_expect(normal_zig_fast(w, x), 1)) return x;
  return normal_zig_slow(w, x, g);
}

// ------------------------------------------------------------------- binomial
namespace detail {

template <class G>
std::int64_t binomial_inversion(G& g, std::int64_t n, double p) {
  const double q = 1.0 - p;
  const double qn = std::exp(static_cast<double>(n) * std::log(q));
  const double np = static_cast<double>(n) * p;
  const double bound_d = np + 10.0 * std::sqrt(np * q + 1);
  const std::int64_t bound = static_cast<std::int64_t>(static_cast<double>(n) < bound_d ? static_cast<double>(n) : bound_d);
  std::int64_t X = 0;
  double px = qn;
  double U = g.next_double();
  while (U > px) {
    ++X;
    if (X > bound) {  // numerical underflow guard: restart
      X = 0;
      px = qn;
      U = g.next_double();
    } else {
      U -= px;
      px = (static_cast<double>(n - X + 1) * p * px) / (static_cast<double>(X) * q);
    }
  }
  return X;
}

inline double stirling_tail(double a) {  // Stirling-series correction used by BTPE step 5.3
  const double a2 = a * a;
  return (13680. - (462. - (132. - (99. - 140. / a2) / a2) / a2) / a2) / a / 166320.;
}

// BTPE for p <= 0.5 (the caller flips); returns the draw for success probability p.
template <class G>
std::int64_t binomial_btpe(G& g, std::int64_t n, double p) {
  const double dn = static_cast<double>(n);
  const double r = p < 1.0 - p ? p : 1.0 - p;
  const double q = 1.0 - r;
  const double fm = dn * r + r;
  const std::int64_t m = static_cast<std::int64_t>(std::floor(fm));
  const double dm = static_cast<double>(m);
  const double p1 = std::floor(2.195 * std::sqrt(dn * r * q) - 4.6 * q) + 0.5;
  const double xm = dm + 0.5;
  const double xl = xm - p1;
  const double xr = xm + p1;
  const double c = 0.134 + 20.5 / (15.3 + dm);
  double a = (fm - xl) / (fm - xl * r);
  const double laml = a * (1.0 + a / 2.0);
  a = (xr - fm) / (xr * q);
  const double lamr = a * (1.0 + a / 2.0);
  const double p2 = p1 * (1.0 + 2.0 * c);
  const double p3 = p2 + c / laml;
  const double p4 = p3 + c / lamr;
  const double nrq = dn * r * q;

  std::int64_t y;
  for (;;) {
    const double u = g.next_double() * p4;
    double v = g.next_double();
    if (u <= p1) {  // triangular centre: immediate acceptance
      y = static_cast<std::int64_t>(std::floor(xm - p1 * v + u));
      break;
    }
    if (u <= p2) {  // parallelograms
      const double x = xl + (u - p1) / c;
      v = v * c + 1.0 - std::fabs(dm - x + 0.5) / p1;
      if (v > 1.0) continue;
      y = static_cast<std::int64_t>(std::floor(x));
    } else if (u <= p3) {  // left exponential tail
      if (v == 0.0) continue;  // (checked before the cast, which would be undefined for log 0)
      const double yl = std::floor(xl + std::log(v) / laml);
      if (yl < 0.0) continue;
      y = static_cast<std::int64_t>(yl);
      v = v * (u - p2) * laml;
    } else {  // right exponential tail
      if (v == 0.0) continue;
      const double yr = std::floor(xr - std::log(v) / lamr);
      if (yr > dn) continue;
      y = static_cast<std::int64_t>(yr);
      v = v * (u - p3) * lamr;
    }
    const std::int64_t k = std::llabs(y - m);
    if (!(k > 20 && static_cast<double>(k) < nrq / 2.0 - 1)) {
      // explicit evaluation of f(y)/f(m) by recursion
      const double s = r / q;
      const double aa = s * (dn + 1);
      double F = 1.0;
      if (m < y) {
        for (std::int64_t i = m + 1; i <= y; ++i) F *= (aa / static_cast<double>(i) - s);
      } else if (m > y) {
        for (std::int64_t i = y + 1; i <= m; ++i) F /= (aa / static_cast<double>(i) - s);
      }
      if (v > F) continue;
      break;
    }
    // squeeze on log f(y)/f(m)
    const double dk = static_cast<double>(k);
    const double rho = (dk / nrq) * ((dk * (dk / 3.0 + 0.625) + 0.16666666666666666) / nrq + 0.5);
    const double t = -dk * dk / (2 * nrq);
    const double A = std::log(v);
    if (A < t - rho) break;
    if (A > t + rho) continue;
    const double x1 = static_cast<double>(y + 1);
    const double f1 = dm + 1;
    const double z = dn + 1 - dm;
    const double w = dn - static_cast<double>(y) + 1;
    const double bound = xm * std::log(f1 / x1) + (dn - dm + 0.5) * std::log(z / w) +
                         static_cast<double>(y - m) * std::log(w * r / (x1 * q)) + stirling_tail(f1) +
                         stirling_tail(z) + stirling_tail(x1) + stirling_tail(w);
    if (A > bound) continue;
    break;
  }
  if (p > 0.5) y = n - y;
  return y;
}

}  // namespace detail

// Binomial(n, p) for n >= 0, 0 <= p <= 1; same results as numpy's Generator.binomial.
template <class G>
inline std::int64_t binomial(G& g, std::int64_t n, double p) {
  if (n == 0 || p == 0.0) return 0;
  if (p <= 0.5) {
    if (p * static_cast<double>(n) <= 30.0) return detail::binomial_inversion(g, n, p);
    return detail::binomial_btpe(g, n, p);
  }
  const double q = 1.0 - p;
  if (q * static_cast<double>(n) <= 30.0) return n - detail::binomial_inversion(g, n, q);
  return n - detail::binomial_btpe(g, n, q);
}

}  // namespace ketacore
