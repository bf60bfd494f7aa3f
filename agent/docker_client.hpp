#pragma once
// A Docker Engine API client over the local unix socket (libcurl).
//
// No call blocks the caller: requests run on a small pool of worker threads
// and their completion handlers are posted to the caller's executor. The
// event stream has a thread of its own. Everything Docker sends is untrusted
// and bounded (body size, event line size, time).

#include "common/result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::agent {

// The Engine API versions this client speaks; it uses
// min(server's ApiVersion, kMaxDockerApiVersion).
inline constexpr std::string_view kMinDockerApiVersion = "1.24";
inline constexpr std::string_view kMaxDockerApiVersion = "1.43";

// Where Docker listens. Only unix sockets are supported.
struct DockerEndpoint {
  std::string socket_path;  // e.g. /var/run/docker.sock
};

// Parses a DOCKER_HOST value ("unix:///path"; an empty string means the
// default unix:///var/run/docker.sock). Anything else is Errc::invalid_input.
Result<DockerEndpoint> parse_docker_host(std::string_view docker_host);

// True for a container id (64 hex), an id prefix (hex) or a container name
// ([a-zA-Z0-9][a-zA-Z0-9_.-]*), at most 128 characters.
bool is_valid_container_ref(std::string_view ref);

// Percent-encodes everything but RFC 3986 unreserved characters, for a path
// segment or a query value.
std::string url_encode(std::string_view s);

// Compares dotted API versions numerically ("1.9" < "1.41"); malformed
// parts compare as 0.
int compare_api_versions(std::string_view a, std::string_view b);

// Splits a byte stream into newline-delimited lines (the event stream's
// framing), buffering partial lines between feeds. Empty lines and a
// trailing '\r' are dropped. Not thread-safe.
class EventLineSplitter {
 public:
  explicit EventLineSplitter(std::size_t max_line_bytes = std::size_t{1} << 20)
      : max_line_bytes_(max_line_bytes) {}

  // Calls on_line for each complete line in bytes. Fails (and must not be fed
  // again) once a line grows past max_line_bytes.
  Status feed(std::string_view bytes, const std::function<void(std::string_view)>& on_line);

  // Bytes of an unfinished line held since the last newline.
  std::size_t buffered() const noexcept { return partial_.size(); }

 private:
  std::size_t max_line_bytes_;
  std::string partial_;
};

struct DockerClientOptions {
  std::size_t worker_threads = 2;
  std::size_t max_queued_calls = 1024;  // beyond: the call fails at once
  std::size_t max_body_bytes = std::size_t{64} << 20;
  std::size_t max_event_line_bytes = std::size_t{1} << 20;
  std::size_t max_pending_events = 4096;  // posted, not yet handled: beyond, the stream ends
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};  // whole transfer, not the event stream
};

struct DockerEventsOptions {
  nlohmann::json filters;              // Docker's filters, e.g. {"type":["container"]}; null: all
  std::optional<std::int64_t> since;   // unix seconds: Docker replays its recent events from then
  std::function<void()> on_connected;  // Docker accepted the stream: the moment to list and resync
};

// Thread-safety: every public member may be called from any thread. Handlers
// run on the executor given at construction, never inline from the call;
// give a strand if that executor runs on several threads and order matters.
// A handler may outlive the client: it must not assume the client exists.
// Calls in flight and a running event stream count as outstanding work on
// the executor (io_context::run() waits for them); stop or destroy the
// client before the executor's context goes away.
class DockerClient {
 public:
  using JsonHandler = std::function<void(Result<nlohmann::json>)>;
  using EventHandler = std::function<void(nlohmann::json event)>;
  using EndHandler = std::function<void(Status)>;

  // Parses docker_host (see parse_docker_host) and starts the worker threads.
  static Result<std::unique_ptr<DockerClient>> create(boost::asio::any_io_executor executor,
                                                      std::string_view docker_host,
                                                      DockerClientOptions options = {});

  DockerClient(boost::asio::any_io_executor executor, DockerEndpoint endpoint,
               DockerClientOptions options = {});
  ~DockerClient();  // stop()
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  const DockerEndpoint& endpoint() const noexcept;

  // The negotiated version ("1.41"), or empty before the first successful
  // call. Each call negotiates first (GET /version) while it is empty.
  std::string api_version() const;

  void version(JsonHandler done);          // GET /version (an object)
  void info(JsonHandler done);             // GET /info (an object)
  void list_containers(JsonHandler done);  // GET /containers/json?all=1 (an array)
  void inspect_container(std::string ref, JsonHandler done);  // GET /containers/{ref}/json
  void list_images(JsonHandler done);                         // GET /images/json (an array)

  // Writes, for the agent's own container (bootstrap). A 204 or 304 ("already
  // so") answers null.
  void create_container(std::string name, const nlohmann::json& spec, JsonHandler done);  // {"Id": …}
  void start_container(std::string ref, JsonHandler done);
  void stop_container(std::string ref, std::chrono::seconds grace, JsonHandler done);
  void rename_container(std::string ref, std::string new_name, JsonHandler done);
  void remove_container(std::string ref, JsonHandler done);  // forced: a running one is killed
  // POST /containers/{ref}/update: the restart policy's name ("no", "always", …).
  void set_restart_policy(std::string ref, std::string policy, JsonHandler done);

  // Streams GET /events: each event object goes to on_event, in order. The
  // stream is endless; it ends only by stop_events()/stop() (on_end gets Ok)
  // or by an error (Docker gone, a bad line, a consumer too slow), after
  // which the caller should resync and call events() again. on_end runs
  // once, after the last on_event. One stream at a time: a second call while
  // one runs ends with Errc::conflict.
  void events(EventHandler on_event, EndHandler on_end, DockerEventsOptions options = {});

  // Ends the event stream (within about a second; usually at once) and
  // waits for its thread. No-op without one.
  void stop_events();

  // Ends everything: aborts transfers in flight, fails queued calls with
  // Errc::unavailable, ends the event stream and joins all threads.
  // Idempotent; later calls fail with Errc::unavailable. Blocks only until
  // the threads notice (at once, or within about a second).
  void stop();

 private:
  struct Impl;

  // Fails `done` (and returns true) when ref is not a container id or name.
  bool refuse_bad_ref(const std::string& ref, JsonHandler& done);

  std::unique_ptr<Impl> impl_;
};

}  // namespace paddock::agent
