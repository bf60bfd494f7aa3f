#pragma once
// How many WebSockets (streams and subscriptions together) one account, or
// one project key, holds open at once. The rate limit bounds how fast they
// are opened, not how many pile up, and every one takes a connection slot
// the agents need. Thread-safe.

#include "server/api_error.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace paddock::server {

struct Caller;

class SocketQuota {
 public:
  explicit SocketQuota(std::int64_t per_owner) : per_owner_(per_owner) {}

  // A slot for the caller, released when the last copy of the result is
  // destroyed; null when the caller's owner holds the limit already.
  std::shared_ptr<const void> take(const Caller& caller);
  // The 429 for a caller who got no slot.
  ApiError refusal() const;

 private:
  void give_back(const std::string& owner);

  std::int64_t per_owner_;  // 0: no limit
  std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> open_;
};

}  // namespace paddock::server
