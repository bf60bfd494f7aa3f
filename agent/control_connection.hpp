#pragma once
// The agent's one persistent connection to the server: a WebSocket to
// <server>/v1/connect with the host's credential (docs/agent-protocol.md).
//
// Keeps it open: Beast pings every 5 s (idle timeout 10 s), and a lost
// connection is dialed again after an exponential backoff with full jitter
// (1 s doubling to a 60 s cap; back to 1 s after a minute connected). A
// refusal a person must fix (host removed 410/4410, deactivated 403/4403,
// identity conflict 409/4409) ends it for good through on_fatal.
//
// Runs on one executor (the agent's); every member is called there.

#include "common/async_event.hpp"
#include "agent/backoff.hpp"
#include "agent/exit_status.hpp"
#include "agent/state.hpp"
#include "common/web_socket.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ssl/context.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace paddock::agent {

// What a refusal of /v1/connect (HTTP status, or a close code during a
// session) means for the agent; std::nullopt when it should just retry.
std::optional<ExitStatus> refusal_exit(unsigned http_status_or_close_code);

class ControlConnection {
 public:
  struct Config {
    std::string server_url;  // https://server:8443
    Credential credential;
    std::shared_ptr<boost::asio::ssl::context> tls;  // for https servers
    std::chrono::seconds idle_timeout{10};            // pings at half of it
    std::chrono::milliseconds retry_base{1000};
    std::chrono::milliseconds retry_cap{60000};
    std::chrono::seconds stable_after{60};  // a connection this long resets the backoff
    std::chrono::seconds welcome_timeout{10};
    // How long a 409 (another connection holds this identity) is retried: longer
    // than the server's 15 s liveness window, so only another machine outlasts it.
    std::chrono::milliseconds conflict_patience{40000};
  };
  struct Callbacks {
    std::function<void()> on_session;                                  // welcomed: report everything now
    std::function<void(const nlohmann::json& jwks)> on_jwks;           // the welcome's keys
    std::function<void(ExitStatus)> on_fatal;                          // refused for good
    std::function<void(std::string token)> on_open;                    // "open": a stream tunnel (streams.md §4)
  };

  ControlConnection(boost::asio::any_io_executor executor, Config config, Callbacks callbacks);

  void start();
  // Closes the connection (1001) and ends the loop; an ongoing dial is cancelled.
  void stop();

  // Welcomed and open: messages sent now reach the server.
  bool in_session() const { return in_session_; }
  // Queues a message; dropped when not in a session (the next session starts
  // with a snapshot anyway).
  void send(const std::string& text);
  std::uint64_t sessions() const { return sessions_; }

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> session(std::shared_ptr<WebSocket> ws);

  boost::asio::any_io_executor executor_;
  Config config_;
  Callbacks callbacks_;
  AsyncEvent wake_;
  boost::asio::cancellation_signal dial_cancel_;
  std::shared_ptr<WebSocket> ws_;
  std::string instance_;  // this process, for X-Paddock-Agent-Instance
  std::optional<std::chrono::steady_clock::time_point> conflict_since_;
  bool started_ = false;
  bool stopping_ = false;
  bool in_session_ = false;
  std::uint64_t sessions_ = 0;
};

}  // namespace paddock::agent
