#include "server/socket_quota.hpp"

#include "server/auth.hpp"

namespace paddock::server {

std::shared_ptr<const void> SocketQuota::take(const Caller& caller) {
  // An account's keys share its quota: making more keys does not raise it.
  std::string owner = caller.account_id ? "a" + std::to_string(*caller.account_id) : "k" + caller.access_key;
  {
    std::lock_guard lock(mutex_);
    auto& n = open_[owner];
    if (per_owner_ > 0 && n >= per_owner_) {
      if (n == 0) open_.erase(owner);
      return nullptr;
    }
    ++n;
  }
  return {this, [this, owner = std::move(owner)](const void*) { give_back(owner); }};
}

ApiError SocketQuota::refusal() const {
  return {429, "RateLimited",
          "the caller holds " + std::to_string(per_owner_) +
              " streams and subscriptions open already, the most the server allows; close one first",
          {}};
}

void SocketQuota::give_back(const std::string& owner) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(owner);
  if (it != open_.end() && --it->second <= 0) open_.erase(it);
}

}  // namespace paddock::server
