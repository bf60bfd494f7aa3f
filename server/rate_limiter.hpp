#pragma once
// A token bucket per credential: `limit` requests a minute, refilled
// continuously, bursting up to `limit`. Thread-safe.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace paddock::server {

class RateLimiter {
 public:
  struct Decision {
    bool allowed = true;
    std::int64_t limit = 0;
    std::int64_t remaining = 0;
    std::int64_t reset_epoch_s = 0;     // when the bucket is full again
    std::int64_t retry_after_s = 0;     // when refused: seconds until one request fits
  };
  using Clock = std::chrono::steady_clock;

  explicit RateLimiter(std::int64_t per_minute) : per_minute_(per_minute) {}

  bool enabled() const { return per_minute_ > 0; }
  Decision take(const std::string& credential) { return take(credential, Clock::now()); }
  Decision take(const std::string& credential, Clock::time_point now);

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  std::int64_t per_minute_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace paddock::server
