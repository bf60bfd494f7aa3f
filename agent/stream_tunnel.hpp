#pragma once
// The agent's side of streams (streams.md §4): for each "open" from the
// server, verify the token, dial wss://<server>/v1/tunnel with it, and run
// the operation against Docker's unix socket: logs, exec, stats, hoststats.
//
// Each stream runs on a strand of its own and reads from Docker only after
// its previous message went out on the tunnel, so a slow user pauses Docker
// (through the socket) instead of filling memory, and one stalled stream
// never holds up another or the control connection. Either side closing
// ends the stream at once: Docker's connections are closed, and an exec
// whose user vanished is made to end.
//
// Exec details: an empty stdin message (channel 0) is the end of input
// (the CLI sends one at EOF): the hijacked socket's sending side is shut,
// so the process reads EOF. A resize (channel 4) received before the exec
// started is applied right after the start, before any stdin; with a TTY
// the start waits up to 250 ms for the user's first message, which is
// normally that size. When the user vanishes, the hijacked connection is
// closed (stdin ends), and a process still running a second later gets
// SIGHUP, then SIGKILL, by the Pid from /exec/{id}/json: all within 5 s.
// Signals need the agent in dockerd's pid namespace (a host install, or a
// container with --pid=host); the pid is checked to belong to the
// container (cgroup, or the pid namespace of its init) before each
// signal. Without that view the process may outlive its user (logged).
//
// open() and stop() are called on the executor given at construction.

#include "agent/stream_token.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace paddock::agent {

class StreamHub;  // the shared state of every stream (stream_tunnel.cpp)

class StreamTunnels {
 public:
  struct Config {
    std::string server_url;  // https://server:8443 (the tunnel is <server_url>/v1/tunnel)
    std::string host_id;     // tokens must name it as their audience
    std::shared_ptr<boost::asio::ssl::context> tls;  // the control connection's (pinned CA)
    std::string docker_socket;                       // from DOCKER_HOST
    // The Docker client's negotiated API version, empty while it has none
    // (it forgets it when Docker goes away, which may come back another).
    std::function<std::string()> docker_api_version;
    std::function<nlohmann::json()> jwks;            // the server's current token keys
    std::size_t max_streams = 256;                   // beyond: an open is refused
    std::chrono::seconds idle_timeout{120};          // pings at half of it
  };

  StreamTunnels(boost::asio::any_io_executor executor, Config config);
  ~StreamTunnels();
  StreamTunnels(const StreamTunnels&) = delete;
  StreamTunnels& operator=(const StreamTunnels&) = delete;

  // Verifies `token` and, when it passes every check, starts its stream.
  // Returns at once; a refused token is logged as a warning and opens nothing.
  void open(const std::string& token);

  // Ends every stream (their tunnels close with 1001) and refuses new ones.
  // Streams finish in the background; the executor's run() waits for them
  // (an exec whose process must be ended takes up to about 5 s).
  void stop();

  std::size_t active() const;

 private:
  std::shared_ptr<StreamHub> hub_;
};

}  // namespace paddock::agent
