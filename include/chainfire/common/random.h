// A small, fully specified pseudo-random generator (xoshiro256** seeded by splitmix64).
//
// The standard library's distributions differ between implementations, so anything that must
// replay from a seed (election timeouts, the simulation) draws from this class instead.
// Thread-safety: none; one instance per thread of use.
#pragma once

#include <cstdint>

namespace chainfire {

class Random {
 public:
  explicit Random(uint64_t seed);

  // Next 64 uniformly distributed bits.
  uint64_t Next();
  // Uniform in [0, n); n must be > 0.
  uint64_t Uniform(uint64_t n);
  // Uniform in [lo, hi]; lo <= hi.
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Uniform(hi - lo + 1); }
  // True with probability `p` (0 <= p <= 1).
  bool Chance(double p);

 private:
  uint64_t s_[4];
};

// Mixes `a` and `b` into a new seed (for deriving per-node or per-restart seeds).
uint64_t MixSeed(uint64_t a, uint64_t b);

}  // namespace chainfire
