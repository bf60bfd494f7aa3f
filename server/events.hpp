#pragma once
// In-process fan-out of resource changes to `subscribe` WebSockets (and
// anything else that watches). Thread-safe.

#include "server/database.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace paddock::server {

struct ChangeEvent {
  std::string type;                        // resource type id
  std::int64_t row_id = 0;
  std::optional<std::int64_t> project_id;  // for scoping
  db::Row row;                             // the row after the change
  std::int64_t time_ms = 0;
};

class EventBus {
 public:
  using Subscriber = std::function<void(const std::shared_ptr<const ChangeEvent>&)>;

  // The subscriber is called on the publishing thread; it must only post.
  std::uint64_t subscribe(Subscriber subscriber);
  void unsubscribe(std::uint64_t id);
  void publish(ChangeEvent event);
  std::size_t subscribers() const;

 private:
  mutable std::mutex mutex_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Subscriber>> subscribers_;
};

}  // namespace paddock::server
