#pragma once
// Joins a user's /v1/stream WebSocket with the agent's /v1/tunnel WebSocket
// for the same token (by jti), remembers used jtis so a token opens at most
// one stream, and ends streams when their host or caller loses access.
// Thread-safe.

#include "common/web_socket.hpp"

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <functional>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace paddock::server {

class StreamBroker {
 public:
  struct Stream {
    std::string jti;
    std::int64_t host_id = 0;
    std::string access_key;
    std::shared_ptr<WebSocket> user;
    std::shared_ptr<WebSocket> agent;                   // set when the tunnel arrives
    std::shared_ptr<boost::asio::steady_timer> waiting;  // on the user's executor
  };

  // Records the jti as used; false when it was used before (a replay).
  // Entries are kept until `exp` (epoch seconds), then forgotten.
  bool consume(const std::string& jti, std::int64_t exp);

  // The user's side waits for the agent under the jti.
  std::shared_ptr<Stream> open(const std::string& jti, std::int64_t host_id, const std::string& access_key,
                               std::shared_ptr<WebSocket> user);
  // The agent's side arrives: joins it and wakes the user's side. Null when
  // no user waits under that jti (or an agent already joined).
  std::shared_ptr<Stream> join(const std::string& jti, std::int64_t host_id, std::shared_ptr<WebSocket> agent);
  // The user's side, once its wait is over: whether the agent has joined.
  // If not, the stream is given up under the same lock, so an agent coming
  // just now is refused rather than joined to a user who was told it failed.
  bool joined_or_abandon(const std::string& jti);
  void finish(const std::string& jti);

  // End every stream of a host / of an API key (deactivation, revocation).
  void close_host(std::int64_t host_id, const std::string& reason);
  void close_key(const std::string& access_key, const std::string& reason);
  // End the streams one key holds open to some hosts (it lost their project).
  void close_key_on_hosts(const std::string& access_key, const std::vector<std::int64_t>& host_ids,
                          const std::string& reason);
  std::size_t open_streams() const;

 private:
  void close_where(const std::function<bool(const Stream&)>& match, const std::string& reason);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> used_;  // jti → exp
  std::int64_t next_purge_ = 0;
  std::unordered_map<std::string, std::shared_ptr<Stream>> streams_;
};

// Sends the final status message (channel 3) of a stream and closes it.
void send_status_and_close(const std::shared_ptr<WebSocket>& ws, const std::string& status_json);

}  // namespace paddock::server
