#include "agent/backoff.hpp"

#include <algorithm>

namespace paddock::agent {

Backoff::Backoff(Duration base, Duration cap, std::uint64_t seed)
    : base_(std::max(base, Duration{1})), cap_(std::max(cap, base_)), rng_(seed) {}

Backoff::Duration Backoff::ceiling() const {
  // Doubling stops once past the cap, so this never overflows.
  Duration c = base_;
  for (unsigned i = 0; i < attempt_ && c < cap_; ++i) c *= 2;
  return std::min(c, cap_);
}

Backoff::Duration Backoff::next() {
  const Duration c = ceiling();
  if (c < cap_) ++attempt_;
  std::uniform_int_distribution<Duration::rep> pick(0, c.count());
  return Duration{pick(rng_)};
}

}  // namespace paddock::agent
