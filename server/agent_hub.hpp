#pragma once
// The live control connections of agents, by host: at most one per host (a
// second one is an identity conflict). Other parts reach an agent through
// here (stream "open" messages, deactivation). Thread-safe.

#include "common/web_socket.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace paddock::server {

class AgentHub {
 public:
  // Registers the host's connection. `instance` names the agent process: a
  // live connection of the same instance is replaced (it reconnected before
  // the server noticed the old one die); one of another instance is kept and
  // 0 is returned (a conflict). Otherwise returns an id for detach().
  std::uint64_t attach(std::int64_t host_id, const std::shared_ptr<WebSocket>& ws, const std::string& instance);
  // Whether a connection of another instance than `instance` is live.
  bool held_by_other(std::int64_t host_id, const std::string& instance) const;
  // Forgets the connection if it is still the registered one.
  void detach(std::int64_t host_id, std::uint64_t session);
  bool connected(std::int64_t host_id) const;
  // Queues a text message to the host's agent; false when not connected.
  bool send(std::int64_t host_id, std::string message);
  // Closes the host's connection with a code and reason, if any.
  void close(std::int64_t host_id, websocket::close_reason reason);
  std::size_t size() const;

 private:
  struct Link {
    std::uint64_t session;
    std::weak_ptr<WebSocket> ws;
    std::string instance;
  };
  std::shared_ptr<WebSocket> find(std::int64_t host_id) const;

  mutable std::mutex mutex_;
  std::uint64_t next_ = 1;
  std::unordered_map<std::int64_t, Link> links_;
};

}  // namespace paddock::server
