#include "server/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace paddock::server {

RateLimiter::Decision RateLimiter::take(const std::string& credential, Clock::time_point now) {
  Decision d;
  d.limit = per_minute_;
  const double capacity = static_cast<double>(per_minute_);
  const double per_second = capacity / 60.0;
  std::lock_guard lock(mutex_);

  // Full buckets carry no information; drop them when the map grows so
  // many distinct credentials cannot grow memory without bound.
  if (buckets_.size() > 100000) {
    std::erase_if(buckets_, [&](const auto& kv) {
      double elapsed = std::chrono::duration<double>(now - kv.second.updated).count();
      return kv.second.tokens + elapsed * per_second >= capacity;
    });
  }
  auto [it, inserted] = buckets_.try_emplace(credential, Bucket{capacity, now});
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.tokens = std::min(capacity, b.tokens + std::max(0.0, elapsed) * per_second);
  b.updated = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    d.allowed = true;
  } else {
    d.allowed = false;
    d.retry_after_s = static_cast<std::int64_t>(std::ceil((1.0 - b.tokens) / per_second));
  }
  d.remaining = static_cast<std::int64_t>(std::floor(b.tokens));
  const auto wall_now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  d.reset_epoch_s = wall_now + static_cast<std::int64_t>(std::ceil((capacity - b.tokens) / per_second));
  return d;
}

}  // namespace paddock::server
