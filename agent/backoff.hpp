#pragma once
// Exponential backoff with full jitter (AWS's "Exponential Backoff And
// Jitter"): the n-th delay is uniform in [0, min(cap, base * 2^n)], so many
// agents that lost the same server do not come back in lockstep.

#include <chrono>
#include <cstdint>
#include <random>

namespace paddock::agent {

class Backoff {
 public:
  using Duration = std::chrono::milliseconds;

  Backoff(Duration base, Duration cap, std::uint64_t seed = std::random_device{}());

  // The next delay; each call doubles the ceiling until it reaches the cap.
  Duration next();
  // The ceiling the next delay is drawn under.
  Duration ceiling() const;
  // Back to the first step (after a connection that lasted).
  void reset() { attempt_ = 0; }
  unsigned attempt() const { return attempt_; }

 private:
  Duration base_;
  Duration cap_;
  unsigned attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace paddock::agent
