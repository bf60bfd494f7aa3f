#include "server/stream_broker.hpp"

#include "common/time_util.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace paddock::server {

bool StreamBroker::consume(const std::string& jti, std::int64_t exp) {
  std::lock_guard lock(mutex_);
  const auto now = time_util::now_s();
  if (now >= next_purge_) {
    std::erase_if(used_, [now](const auto& kv) { return kv.second < now; });
    next_purge_ = now + 10;
  }
  return used_.emplace(jti, exp).second;
}

std::shared_ptr<StreamBroker::Stream> StreamBroker::open(const std::string& jti, std::int64_t host_id,
                                                         const std::string& access_key,
                                                         std::shared_ptr<WebSocket> user) {
  auto s = std::make_shared<Stream>();
  s->jti = jti;
  s->host_id = host_id;
  s->access_key = access_key;
  s->waiting = std::make_shared<boost::asio::steady_timer>(user->get_executor());
  s->user = std::move(user);
  std::lock_guard lock(mutex_);
  streams_[jti] = s;
  return s;
}

std::shared_ptr<StreamBroker::Stream> StreamBroker::join(const std::string& jti, std::int64_t host_id,
                                                         std::shared_ptr<WebSocket> agent) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(jti);
  if (it == streams_.end() || it->second->agent || it->second->host_id != host_id) return nullptr;
  auto s = it->second;
  s->agent = std::move(agent);
  boost::asio::post(s->user->get_executor(), [timer = s->waiting] { timer->cancel(); });
  return s;
}

bool StreamBroker::joined_or_abandon(const std::string& jti) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(jti);
  if (it == streams_.end()) return false;
  if (it->second->agent) return true;
  streams_.erase(it);
  return false;
}

void StreamBroker::finish(const std::string& jti) {
  std::lock_guard lock(mutex_);
  streams_.erase(jti);
}

void StreamBroker::close_where(const std::function<bool(const Stream&)>& match, const std::string& reason) {
  // Both sides are copied under the lock: join() sets `agent` under it.
  std::vector<std::pair<std::shared_ptr<WebSocket>, std::shared_ptr<WebSocket>>> hit;
  {
    std::lock_guard lock(mutex_);
    for (auto& [jti, s] : streams_) {
      if (match(*s)) hit.emplace_back(s->user, s->agent);
    }
  }
  const std::string status = nlohmann::json({{"status", "Failure"}, {"message", reason}}).dump();
  for (auto& [user, agent] : hit) {
    send_status_and_close(user, status);
    if (agent) {
      boost::asio::post(agent->get_executor(), [agent, reason] {
        agent->close_soon({websocket::close_code::going_away, reason});
      });
    }
  }
}

void StreamBroker::close_host(std::int64_t host_id, const std::string& reason) {
  close_where([host_id](const Stream& s) { return s.host_id == host_id; }, reason);
}

void StreamBroker::close_key(const std::string& access_key, const std::string& reason) {
  close_where([&access_key](const Stream& s) { return s.access_key == access_key; }, reason);
}

void StreamBroker::close_key_on_hosts(const std::string& access_key, const std::vector<std::int64_t>& host_ids,
                                      const std::string& reason) {
  close_where(
      [&](const Stream& s) {
        return s.access_key == access_key && std::find(host_ids.begin(), host_ids.end(), s.host_id) != host_ids.end();
      },
      reason);
}

std::size_t StreamBroker::open_streams() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

void send_status_and_close(const std::shared_ptr<WebSocket>& ws, const std::string& status_json) {
  boost::asio::post(ws->get_executor(), [ws, status_json] {
    std::string frame(1, '\x03');
    frame += status_json;
    ws->send(std::move(frame), true);
    ws->close_soon({websocket::close_code::normal, ""});
  });
}

}  // namespace paddock::server
