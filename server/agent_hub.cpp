#include "server/agent_hub.hpp"

#include <boost/asio/post.hpp>

namespace paddock::server {

std::uint64_t AgentHub::attach(std::int64_t host_id, const std::shared_ptr<WebSocket>& ws,
                               const std::string& instance) {
  std::lock_guard lock(mutex_);
  auto it = links_.find(host_id);
  if (it != links_.end()) {
    auto live = it->second.ws.lock();
    if (live && live->is_open()) {
      if (instance.empty() || it->second.instance != instance) return 0;
      boost::asio::post(live->get_executor(), [live] {
        live->close_soon({websocket::close_code::going_away, "replaced by a new connection"});
      });
    }
  }
  const auto session = next_++;
  links_[host_id] = Link{session, ws, instance};
  return session;
}

bool AgentHub::held_by_other(std::int64_t host_id, const std::string& instance) const {
  std::lock_guard lock(mutex_);
  auto it = links_.find(host_id);
  if (it == links_.end()) return false;
  auto live = it->second.ws.lock();
  return live && live->is_open() && (instance.empty() || it->second.instance != instance);
}

void AgentHub::detach(std::int64_t host_id, std::uint64_t session) {
  std::lock_guard lock(mutex_);
  auto it = links_.find(host_id);
  if (it != links_.end() && it->second.session == session) links_.erase(it);
}

std::shared_ptr<WebSocket> AgentHub::find(std::int64_t host_id) const {
  std::lock_guard lock(mutex_);
  auto it = links_.find(host_id);
  return it == links_.end() ? nullptr : it->second.ws.lock();
}

bool AgentHub::connected(std::int64_t host_id) const {
  auto ws = find(host_id);
  return ws && ws->is_open();
}

bool AgentHub::send(std::int64_t host_id, std::string message) {
  auto ws = find(host_id);
  if (!ws) return false;
  boost::asio::post(ws->get_executor(), [ws, m = std::move(message)]() mutable { ws->send(std::move(m), false); });
  return true;
}

void AgentHub::close(std::int64_t host_id, websocket::close_reason reason) {
  auto ws = find(host_id);
  if (!ws) return;
  boost::asio::post(ws->get_executor(), [ws, reason] { ws->close_soon(reason); });
}

std::size_t AgentHub::size() const {
  std::lock_guard lock(mutex_);
  return links_.size();
}

}  // namespace paddock::server
