#include "server/events.hpp"

#include "common/time_util.hpp"

#include <vector>

namespace paddock::server {

std::uint64_t EventBus::subscribe(Subscriber subscriber) {
  std::lock_guard lock(mutex_);
  auto id = next_++;
  subscribers_.emplace(id, std::make_shared<Subscriber>(std::move(subscriber)));
  return id;
}

void EventBus::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  subscribers_.erase(id);
}

void EventBus::publish(ChangeEvent event) {
  if (event.time_ms == 0) event.time_ms = time_util::now_ms();
  auto shared = std::make_shared<const ChangeEvent>(std::move(event));
  std::vector<std::shared_ptr<Subscriber>> targets;
  {
    std::lock_guard lock(mutex_);
    targets.reserve(subscribers_.size());
    for (auto& [id, s] : subscribers_) targets.push_back(s);
  }
  for (auto& s : targets) (*s)(shared);
}

std::size_t EventBus::subscribers() const {
  std::lock_guard lock(mutex_);
  return subscribers_.size();
}

}  // namespace paddock::server
