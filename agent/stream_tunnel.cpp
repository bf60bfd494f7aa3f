#include "agent/stream_tunnel.hpp"

#include "common/async_event.hpp"
#include "agent/docker_client.hpp"
#include "agent/docker_stream.hpp"
#include "agent/messages.hpp"
#include "agent/stream_stats.hpp"
#include "common/log.hpp"
#include "common/time_util.hpp"
#include "common/web_socket.hpp"
#include "common/ws_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>

#include <csignal>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

// Note on coroutines: co_await appears only as a whole statement or an
// initializer, with non-trivial arguments named (GCC 12 mishandles some
// temporaries and subexpressions around co_await).

namespace paddock::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::uint8_t kStdin = 0;
constexpr std::uint8_t kStdout = 1;
constexpr std::uint8_t kStderr = 2;
constexpr std::uint8_t kStatus = 3;
constexpr std::uint8_t kResize = 4;

// One read from Docker; a message never holds more than kMaxStreamPayload.
constexpr std::size_t kReadChunk = 64 * 1024;
// The largest message a user may send through the server (1 MiB).
constexpr std::size_t kTunnelReadLimit = kMaxStreamPayload + 1;
constexpr auto kDialTimeout = 10s;
// A TTY's size is best set before the process starts; the user sends it
// first thing, so an exec waits this long for that first message.
constexpr auto kFirstMessageWait = 250ms;
// A user who vanished from an exec: its process is gone within this.
constexpr auto kExecEndBudget = 5s;
// Input the process has not taken yet, held so the tunnel is still read
// (its close seen, its pings answered) while the process is busy.
constexpr std::size_t kStdinBuffer = std::size_t{1} << 20;
// While more than that waits, the tunnel is not read: the back-pressure that
// reaches the user. A close is then seen only once the WebSocket's idle
// timeout gives up on the unread tunnel; that is looked for this often.
constexpr auto kStdinTunnelCheck = 1s;
constexpr std::size_t kMaxStatsLine = std::size_t{1} << 20;
constexpr std::size_t kMaxHostContainers = 512;
constexpr int kRelistTicks = 5;

std::string status_text(const json& status) { return status.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string success() { return R"({"status":"Success"})"; }
std::string failure(const std::string& message) { return status_text({{"status", "Failure"}, {"message", message}}); }
std::string not_found() { return failure("container not found"); }
std::string exit_status(std::int64_t code) {
  return code == 0 ? success() : status_text({{"status", "Failure"}, {"exitCode", code}});
}

struct TermSize {
  unsigned width = 0;
  unsigned height = 0;
};

// {"width": W, "height": H}, each 1..65535; anything else is ignored.
std::optional<TermSize> parse_resize(std::string_view payload) {
  if (payload.size() > 4096) return std::nullopt;
  auto j = json::parse(payload, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto dim = [&](const char* name) -> unsigned {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_integer()) return 0;
    const auto v = it->get<std::int64_t>();
    return v >= 1 && v <= 65535 ? static_cast<unsigned>(v) : 0;
  };
  TermSize size{dim("width"), dim("height")};
  if (size.width == 0 || size.height == 0) return std::nullopt;
  return size;
}

std::string read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string text(64 * 1024, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

std::string pid_namespace(std::int64_t pid) {
  std::error_code ec;
  auto link = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/pid", ec);
  return ec ? std::string() : link.string();
}

}  // namespace

class Session;

// Shared by StreamTunnels and its sessions. The session map, the key cache
// and the jti cache live on `executor`.
class StreamHub {
 public:
  StreamHub(asio::any_io_executor ex, StreamTunnels::Config cfg) : executor(std::move(ex)), config(std::move(cfg)) {}

  asio::any_io_executor executor;
  StreamTunnels::Config config;
  JtiCache jtis;
  json keys_source;
  jwt::KeySet keys;
  std::map<std::uint64_t, std::weak_ptr<Session>> sessions;
  std::uint64_t next_id = 0;
  bool stopping = false;
};

// One stream: its tunnel, its operation, its Docker connections. Runs on a
// strand of its own; every member is used there.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<StreamHub> hub, std::uint64_t id, StreamRequest request, std::string token)
      : hub_(std::move(hub)),
        id_(id),
        strand_(asio::make_strand(hub_->executor)),
        request_(std::move(request)),
        token_(std::move(token)),
        first_message_(strand_),
        stdin_ready_(strand_),
        stdin_room_(strand_),
        workers_changed_(strand_) {
    name_ = request_.jti.substr(0, 8);
  }

  ~Session() {
    asio::post(hub_->executor, [hub = hub_, id = id_] { hub->sessions.erase(id); });
  }

  asio::any_io_executor strand() const { return strand_; }

  // From the hub's executor: end the stream now (agent stopping).
  void stop() {
    asio::post(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      const bool had_tunnel = self->ws_ && !self->tunnel_closed_;
      self->tunnel_gone();
      if (had_tunnel) self->ws_->close_soon({websocket::close_code::going_away, "agent stopping"});
    });
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    ws_client::DialOptions options;
    options.headers = {{"Authorization", "Bearer " + token_}};
    options.tls = hub_->config.tls;
    options.timeout = kDialTimeout;
    options.read_limit = kTunnelReadLimit;
    token_.clear();
    const std::string url = hub_->config.server_url + "/v1/tunnel";
    auto dialed = co_await ws_client::dial_web_socket(strand_, url, options);
    if (!dialed) {
      spdlog::warn("stream {}: cannot open its tunnel: {}", name_, dialed.error().message);
      co_return;
    }
    ws_ = std::move(*dialed);
    if (stopped_) {
      ws_->close_soon({websocket::close_code::going_away, "agent stopping"});
      co_return;
    }
    ws_->set_read_limit(kTunnelReadLimit);
    ws_->set_idle_timeout(hub_->config.idle_timeout, /*keep_alive_pings=*/true);
    ws_->set_max_queued(kTunnelReadLimit);
    spdlog::info("stream {}: {}{} opened", name_, stream_op_name(request_.op),
                 request_.container.empty() ? std::string() : " of container " + request_.container.substr(0, 12));
    asio::co_spawn(strand_, [self]() { return self->read_tunnel(); }, asio::detached);

    std::string status = co_await run_operation();
    if (status.empty() && !tunnel_closed_) status = failure("the stream ended");
    if (!tunnel_closed_) {
      co_await send(kStatus, status);
      if (!tunnel_closed_) {
        const websocket::close_reason normal{websocket::close_code::normal};
        co_await ws_->close(normal);
      }
    }
    spdlog::info("stream {}: ended{}", name_,
                 stopped_                             ? " (the agent stops)"
                 : tunnel_closed_ && status.empty() ? " (closed by the other side)"
                                                      : "");
    tunnel_gone();
  }

 private:
  // -- plumbing ---------------------------------------------------------

  // Runs `cancel` when the stream ends early; forgets it when destroyed.
  class CancelScope {
   public:
    CancelScope(Session& s, std::function<void()> cancel) : s_(s) {
      if (s_.aborted_) {
        cancel();
      } else {
        id_ = ++s_.next_cancel_;
        s_.cancels_.emplace(id_, std::move(cancel));
      }
    }
    ~CancelScope() { s_.cancels_.erase(id_); }
    CancelScope(const CancelScope&) = delete;
    CancelScope& operator=(const CancelScope&) = delete;

   private:
    Session& s_;
    std::uint64_t id_ = 0;
  };

  // The tunnel is gone (or the agent stops): nothing more goes out, and
  // every Docker connection of the stream is closed so pending reads end.
  void tunnel_gone() {
    tunnel_closed_ = true;
    aborted_ = true;
    auto cancels = std::move(cancels_);
    cancels_.clear();
    for (auto& [id, cancel] : cancels) cancel();
    first_message_.notify();
    stdin_ready_.notify();
    stdin_room_.notify();
    workers_changed_.notify();
  }

  // Sends one binary message and waits until it is out: the back-pressure.
  static std::string channel_message(std::uint8_t channel, std::string_view payload) {
    std::string message;
    message.reserve(payload.size() + 1);
    message += static_cast<char>(channel);
    message.append(payload);
    return message;
  }

  asio::awaitable<bool> send(std::uint8_t channel, std::string_view payload) {
    if (tunnel_closed_) co_return false;
    const std::string message = channel_message(channel, payload);
    const auto ec = co_await ws_->write(asio::buffer(message), true);
    if (ec) {
      tunnel_gone();
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<bool> send_batch(std::span<const OutgoingMessage> messages) {
    if (tunnel_closed_) co_return false;
    if (messages.empty()) co_return true;
    const auto ec = co_await ws_->write_batch(messages);
    if (ec) {
      tunnel_gone();
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<bool> send_text(const json& value) {
    if (tunnel_closed_) co_return false;
    const std::string text = status_text(value);
    const auto ec = co_await ws_->write(asio::buffer(text), false);
    if (ec) {
      tunnel_gone();
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer timer(strand_, d);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  asio::awaitable<Result<DockerReply>> docker(std::string method, std::string path, json body = nullptr) {
    auto reply = co_await docker_request(strand_, docker_, std::move(method), std::move(path), std::move(body));
    co_return reply;
  }

  // GET /containers/{id}/json; Errc::not_found when Docker does not know it.
  asio::awaitable<Result<json>> inspect(const std::string& container) {
    const std::string path = "/containers/" + url_encode(container) + "/json";
    auto reply = co_await docker("GET", path);
    if (!reply) co_return reply.error();
    if (reply->status == 404) co_return Error{Errc::not_found, "container not found"};
    if (reply->status >= 300) co_return Error{Errc::unavailable, reply->message()};
    auto body = reply->json();
    if (!body || !body->is_object()) co_return Error{Errc::unavailable, "Docker's inspect reply is not an object"};
    co_return std::move(*body);
  }

  static std::string failure_for(const Error& e) {
    return e.code == Errc::not_found ? not_found() : failure(e.message);
  }

  static bool flag(const json& j, const char* object, const char* key) {
    auto o = j.find(object);
    if (o == j.end() || !o->is_object()) return false;
    auto v = o->find(key);
    return v != o->end() && v->is_boolean() && v->get<bool>();
  }

  // Reads the tunnel: stdin and resizes for an exec; anything else (and
  // any input on logs or stats) is ignored. Its end ends the stream.
  asio::awaitable<void> read_tunnel() {
    auto self = shared_from_this();
    beast::flat_buffer buffer;
    for (;;) {
      const auto ec = co_await ws_->read(buffer);
      if (ec) break;
      const bool text = ws_->got_text();
      std::string message = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      if (!first_message_seen_) {
        first_message_seen_ = true;
        first_message_.notify();
      }
      if (text || message.empty() || request_.op != StreamOp::exec) continue;
      co_await exec_input(message);
    }
    if (!tunnel_closed_) spdlog::debug("stream {}: the tunnel closed", name_);
    tunnel_gone();
  }

  // The Docker client's version when it has one; else this stream asks
  // Docker itself (the agent just started, or Docker is coming back).
  asio::awaitable<Result<std::string>> api_version() {
    std::string version = hub_->config.docker_api_version ? hub_->config.docker_api_version() : std::string();
    if (!version.empty()) co_return version;
    const std::string socket = hub_->config.docker_socket;
    auto negotiated = co_await negotiate_docker_api(strand_, socket);
    co_return negotiated;
  }

  asio::awaitable<std::string> run_operation() {
    auto version = co_await api_version();
    if (!version) co_return failure("Docker: " + version.error().message);
    docker_ = DockerTarget{hub_->config.docker_socket, *version};
    std::string status;
    switch (request_.op) {
      case StreamOp::logs:
        status = co_await run_logs();
        break;
      case StreamOp::exec:
        status = co_await run_exec();
        break;
      case StreamOp::stats:
        status = co_await run_stats();
        break;
      case StreamOp::hoststats:
        status = co_await run_hoststats();
        break;
    }
    co_return status;
  }

  // Docker's output to the tunnel: raw chunks on channel 1 (TTY), or
  // demultiplexed frames on channels 1 and 2, one message per frame. The
  // frames of one read from Docker go out as one batch (one write to the
  // transport), and the next read waits for it. Returns a failure message,
  // or nothing at the end of the output (or of the tunnel).
  template <class Source>
  asio::awaitable<std::optional<std::string>> pump(Source& source, bool raw) {
    std::vector<char> chunk(kReadChunk);
    FrameDemuxer demux;
    std::vector<OutgoingMessage> batch;
    for (;;) {
      auto got = co_await source.read_some(chunk.data(), chunk.size());
      if (tunnel_closed_) co_return std::nullopt;
      if (!got) co_return "reading from Docker failed: " + got.error().message;
      if (*got == 0) co_return std::nullopt;
      std::string_view rest(chunk.data(), *got);
      if (raw) {
        const bool sent = co_await send(kStdout, rest);
        if (!sent) co_return std::nullopt;
        continue;
      }
      batch.clear();
      std::optional<std::string> failed;
      for (;;) {
        const auto state = demux.next(rest);
        if (state == FrameDemuxer::State::need_more) break;
        if (state == FrameDemuxer::State::malformed) {
          failed = "Docker sent a malformed stream";
          break;
        }
        auto m = demux.take();
        // Stream 3 is Docker's own error, in band (e.g. a log driver failing).
        if (m.stream == 3) {
          failed = "Docker: " + clean_text(m.payload, 512);
          break;
        }
        batch.push_back({channel_message(m.stream == 2 ? kStderr : kStdout, m.payload), true});
      }
      // What Docker sent before its error still reaches the user.
      const bool sent = co_await send_batch(batch);
      if (failed) co_return failed;
      if (!sent) co_return std::nullopt;
    }
  }

  // -- logs -------------------------------------------------------------

  asio::awaitable<std::string> run_logs() {
    auto params = logs_params(request_.params);
    if (!params) co_return failure(params.error().message);
    auto inspected = co_await inspect(request_.container);
    if (!inspected) co_return failure_for(inspected.error());
    if (tunnel_closed_) co_return std::string();
    const bool tty = flag(*inspected, "Config", "Tty");
    DockerBodyStream body(strand_);
    CancelScope cancel(*this, [&body] { body.close(); });
    const std::string method = "GET";
    const std::string path = logs_target(request_.container, *params);
    DockerReply refusal;
    auto opened = co_await body.open(docker_, method, path, &refusal);
    if (tunnel_closed_) co_return std::string();
    if (!opened) co_return refusal.status == 404 ? not_found() : failure(opened.error().message);
    auto failed = co_await pump(body, tty);
    if (tunnel_closed_) co_return std::string();
    co_return failed ? failure(*failed) : success();
  }

  // -- exec -------------------------------------------------------------

  asio::awaitable<void> exec_input(const std::string& message) {
    const auto channel = static_cast<std::uint8_t>(message.front());
    const std::string_view payload = std::string_view(message).substr(1);
    if (channel == kResize) {
      auto size = parse_resize(payload);
      if (!size) co_return;
      if (!started_) {
        pending_size_ = size;  // applied as soon as the exec runs
        co_return;
      }
      co_await resize(*size);
    } else if (channel == kStdin) {
      if (!exec_.attach_stdin || stdin_closed_ || tunnel_closed_) co_return;
      // Queued for write_stdin(); an empty payload is the client's end of input.
      if (payload.empty()) stdin_closed_ = true;
      stdin_queued_ += payload.size();
      stdin_queue_.emplace_back(payload);
      stdin_ready_.notify();
      // A flood waits for the process to take some before the tunnel is read
      // again: the back-pressure.
      while (stdin_queued_ > kStdinBuffer && !stdin_closed_ && !tunnel_closed_) {
        const bool room = co_await stdin_room_.wait_for(kStdinTunnelCheck);
        if (!room && !ws_->is_open()) tunnel_gone();
      }
    }
  }

  // Hands queued input to the process, in order, from the exec's start until
  // the end of input, the process's end or the tunnel's.
  asio::awaitable<void> write_stdin() {
    while (!tunnel_closed_ && !exec_over_ && hijack_->is_open()) {
      if (stdin_queue_.empty()) {
        if (stdin_closed_) break;
        co_await stdin_ready_.wait();
        continue;
      }
      const std::string chunk = std::move(stdin_queue_.front());
      stdin_queue_.pop_front();
      if (chunk.empty()) {
        hijack_->shutdown_send();
        break;
      }
      auto written = co_await hijack_->write(chunk);
      stdin_queued_ -= chunk.size();
      stdin_room_.notify();
      if (!written) break;
    }
    drop_stdin();
  }

  asio::awaitable<void> resize(TermSize size) {
    if (exec_id_.empty() || tunnel_closed_) co_return;
    const std::string path = "/exec/" + url_encode(exec_id_) + "/resize?h=" + std::to_string(size.height) +
                             "&w=" + std::to_string(size.width);
    auto reply = co_await docker("POST", path);
    if (!reply) {
      spdlog::debug("stream {}: resize: {}", name_, reply.error().message);
    } else if (reply->status >= 300) {
      spdlog::debug("stream {}: resize refused: {}", name_, reply->message());
    }
  }

  struct ExecState {
    bool running = false;
    std::optional<std::int64_t> exit_code;
    std::int64_t pid = 0;
  };

  asio::awaitable<Result<ExecState>> exec_state() {
    const std::string path = "/exec/" + url_encode(exec_id_) + "/json";
    auto reply = co_await docker("GET", path);
    if (!reply) co_return reply.error();
    if (reply->status >= 300) co_return Error{Errc::unavailable, reply->message()};
    auto body = reply->json();
    if (!body || !body->is_object()) co_return Error{Errc::unavailable, "Docker's exec inspect is not an object"};
    ExecState state;
    if (auto it = body->find("Running"); it != body->end() && it->is_boolean()) state.running = it->get<bool>();
    if (auto it = body->find("ExitCode"); it != body->end() && it->is_number_integer()) {
      state.exit_code = it->get<std::int64_t>();
    }
    if (auto it = body->find("Pid"); it != body->end() && it->is_number_integer()) state.pid = it->get<std::int64_t>();
    co_return state;
  }

  // No more input is taken: what waits is dropped, and a reader waiting
  // for room goes on.
  void drop_stdin() {
    stdin_closed_ = true;
    stdin_queue_.clear();
    stdin_queued_ = 0;
    stdin_room_.notify();
  }

  asio::awaitable<std::string> run_exec() {
    auto params = exec_params(request_.params);
    if (!params) {
      drop_stdin();
      co_return failure(params.error().message);
    }
    exec_ = std::move(*params);
    if (!exec_.attach_stdin) drop_stdin();  // what came before the parameters were read
    std::string status = co_await start_exec();
    if (!status.empty() || tunnel_closed_) {
      drop_stdin();
      // The exec may have started just as the user went: it must not linger.
      if (tunnel_closed_) co_await end_exec();
      co_return status;
    }
    CancelScope cancel(*this, [this] { hijack_->close(); });
    if (exec_.attach_stdin) {
      asio::co_spawn(strand_, [self = shared_from_this()] { return self->write_stdin(); }, asio::detached);
    }
    auto failed = co_await pump(*hijack_, exec_.tty);
    exec_over_ = true;
    stdin_ready_.notify();
    if (tunnel_closed_) {
      // The user is gone (or the agent stops): the process must not linger.
      co_await end_exec();
      co_return std::string();
    }
    hijack_->close();
    if (failed) co_return failure(*failed);
    // Docker ends the output when the process exits; its exit code may
    // trail by a moment.
    for (int i = 0; i < 100; ++i) {
      auto state = co_await exec_state();
      if (!state) co_return failure("the exit code is unknown: " + state.error().message);
      if (!state->running && state->exit_code) co_return exit_status(*state->exit_code);
      co_await pause(50ms);
    }
    co_return failure("the exit code is unknown");
  }

  // Creates and starts the exec; an empty string when it runs.
  asio::awaitable<std::string> start_exec() {
    const json body = exec_create_body(exec_);
    const std::string path = "/containers/" + url_encode(request_.container) + "/exec";
    auto created = co_await docker("POST", path, body);
    if (!created) co_return failure(created.error().message);
    if (created->status == 404) co_return not_found();
    if (created->status >= 300) co_return failure(created->message());
    auto reply = created->json();
    if (!reply || !reply->is_object() || !reply->contains("Id") || !(*reply)["Id"].is_string() ||
        !is_full_docker_id((*reply)["Id"].get<std::string>())) {
      co_return failure("Docker's exec create reply has no valid Id");
    }
    exec_id_ = (*reply)["Id"].get<std::string>();
    if (exec_.tty && !first_message_seen_ && !tunnel_closed_) {
      co_await first_message_.wait_for(kFirstMessageWait);
    }
    if (tunnel_closed_) co_return std::string();
    hijack_ = std::make_unique<DockerHijack>(strand_);
    DockerReply refusal;
    {
      CancelScope cancel(*this, [this] { hijack_->close(); });
      auto started = co_await hijack_->start(docker_, exec_id_, exec_.tty, &refusal);
      if (tunnel_closed_) co_return std::string();
      if (!started) co_return refusal.status == 404 ? not_found() : failure(started.error().message);
    }
    // Sizes sent before the start, in order, before any stdin.
    while (pending_size_ && !tunnel_closed_) {
      const TermSize size = *pending_size_;
      pending_size_.reset();
      co_await resize(size);
    }
    started_ = true;
    co_return std::string();
  }

  // The user vanished: close the hijacked connection (the process's stdin
  // ends, which ends shells and most interactive programs), and if the
  // process still runs after a second, hang it up (SIGHUP, as a terminal
  // would) and then SIGKILL it. Signals need the process to be visible:
  // the agent must share the host's pid namespace with dockerd (true for a
  // host install; a containerized agent needs --pid=host). Docker's Pid
  // is checked to belong to this container (its cgroup, or the pid
  // namespace of the container's init) right before each signal.
  asio::awaitable<void> end_exec() {
    if (hijack_) hijack_->close();
    if (exec_id_.empty()) co_return;  // none was created (one created, not started, is not running)
    const auto deadline = std::chrono::steady_clock::now() + kExecEndBudget;
    auto wait_ended = [this](std::chrono::steady_clock::time_point until) -> asio::awaitable<std::optional<ExecState>> {
      for (;;) {
        auto state = co_await exec_state();
        if (!state) co_return std::nullopt;  // gone with its container: nothing to end
        if (!state->running) co_return std::nullopt;
        if (std::chrono::steady_clock::now() >= until) co_return *state;
        co_await pause(100ms);
      }
    };
    auto running = co_await wait_ended(std::chrono::steady_clock::now() + 1s);
    for (int sig : {SIGHUP, SIGKILL}) {
      if (!running) break;
      const bool sent = co_await signal_exec(running->pid, sig);
      if (!sent) {
        spdlog::warn("stream {}: the exec's process {} still runs and cannot be signalled from here (the agent "
                     "needs the host's pid namespace)",
                     name_, running->pid);
        co_return;
      }
      const auto until = sig == SIGHUP ? std::chrono::steady_clock::now() + 1s : deadline;
      running = co_await wait_ended(until);
    }
    if (running) {
      spdlog::warn("stream {}: the exec's process {} still runs after SIGKILL", name_, running->pid);
    } else {
      spdlog::info("stream {}: the exec ended with its user", name_);
    }
  }

  asio::awaitable<bool> signal_exec(std::int64_t pid, int sig) {
    if (pid <= 1) co_return false;
    const std::string cgroup = read_small_file("/proc/" + std::to_string(pid) + "/cgroup");
    bool ours = !cgroup.empty() && cgroup.find(request_.container) != std::string::npos;
    if (!ours) {
      auto inspected = co_await inspect(request_.container);
      if (inspected) {
        const json& state = (*inspected)["State"];
        const std::int64_t init = state.is_object() && state.value("Pid", json()).is_number_integer()
                                      ? state["Pid"].get<std::int64_t>()
                                      : 0;
        const std::string ns = pid_namespace(pid);
        ours = init > 1 && !ns.empty() && ns == pid_namespace(init);
      }
    }
    if (!ours) co_return false;
    if (::kill(static_cast<pid_t>(pid), sig) != 0) co_return false;
    spdlog::info("stream {}: sent {} to the exec's process {}", name_, sig == SIGKILL ? "SIGKILL" : "SIGHUP", pid);
    co_return true;
  }

  // -- stats ------------------------------------------------------------

  // Feeds NDJSON bytes and calls `each` for every parsed sample.
  static Status split_samples(EventLineSplitter& lines, std::string_view bytes, std::vector<json>& out) {
    return lines.feed(bytes, [&out](std::string_view line) {
      auto sample = json::parse(line, nullptr, false);
      if (sample.is_object()) out.push_back(std::move(sample));
    });
  }

  static std::string stats_path(const std::string& container, bool stream) {
    return "/containers/" + url_encode(container) + "/stats?stream=" + (stream ? "1" : "0");
  }

  asio::awaitable<std::string> run_stats() {
    auto params = stats_params(request_.params);
    if (!params) co_return failure(params.error().message);
    auto inspected = co_await inspect(request_.container);
    if (!inspected) co_return failure_for(inspected.error());
    if (!flag(*inspected, "State", "Running")) co_return failure("the container is not running");
    if (tunnel_closed_) co_return std::string();
    DockerBodyStream body(strand_);
    CancelScope cancel(*this, [&body] { body.close(); });
    const std::string method = "GET";
    const std::string path = stats_path(request_.container, params->stream);
    DockerReply refusal;
    auto opened = co_await body.open(docker_, method, path, &refusal);
    if (tunnel_closed_) co_return std::string();
    if (!opened) co_return refusal.status == 404 ? not_found() : failure(opened.error().message);
    EventLineSplitter lines(kMaxStatsLine);
    std::vector<char> chunk(kReadChunk);
    for (;;) {
      auto got = co_await body.read_some(chunk.data(), chunk.size());
      if (tunnel_closed_) co_return std::string();
      if (!got) co_return failure("reading stats from Docker failed: " + got.error().message);
      if (*got == 0) break;
      std::vector<json> samples;
      if (auto st = split_samples(lines, std::string_view(chunk.data(), *got), samples); !st) {
        co_return failure("Docker sent an oversized stats line");
      }
      for (const auto& sample : samples) {
        if (is_empty_stats(sample)) {
          // Docker's stand-in for a container that is not running.
          auto again = co_await inspect(request_.container);
          if (!again) co_return failure_for(again.error());
          if (!flag(*again, "State", "Running")) co_return failure("the container stopped");
          continue;
        }
        const json normalized = normalize_stats(sample, request_.container, time_util::now_ms());
        const bool sent = co_await send_text(normalized);
        if (!sent) co_return std::string();
      }
    }
    if (!params->stream) co_return success();
    // Docker ended an endless stream: the container went away or stopped.
    auto after = co_await inspect(request_.container);
    if (!after) co_return failure_for(after.error());
    co_return flag(*after, "State", "Running") ? failure("Docker ended the stats stream")
                                               : failure("the container stopped");
  }

  // -- hoststats ----------------------------------------------------------

  struct HostSample {
    std::optional<json> latest;
    bool done = false;
  };

  asio::awaitable<Result<std::vector<std::string>>> running_containers() {
    auto reply = co_await docker("GET", "/containers/json");
    if (!reply) co_return reply.error();
    if (reply->status >= 300) co_return Error{Errc::unavailable, reply->message()};
    auto list = reply->json();
    if (!list || !list->is_array()) co_return Error{Errc::unavailable, "Docker's container list is not an array"};
    std::vector<std::string> ids;
    for (const auto& c : *list) {
      if (!c.is_object() || !c.contains("Id") || !c["Id"].is_string()) continue;
      const auto& id = c["Id"].get_ref<const std::string&>();
      if (is_full_docker_id(id)) ids.push_back(id);
    }
    co_return ids;
  }

  void start_workers(const std::vector<std::string>& ids, bool stream) {
    for (const auto& id : ids) {
      if (host_samples_.size() >= kMaxHostContainers) {
        spdlog::warn("stream {}: host stats follow the first {} containers only", name_, kMaxHostContainers);
        return;
      }
      if (!host_samples_.try_emplace(id).second) continue;
      asio::co_spawn(strand_, [self = shared_from_this(), id, stream]() { return self->stats_worker(id, stream); },
                     asio::detached);
    }
  }

  // One container's stats for hoststats: keeps only its latest sample.
  asio::awaitable<void> stats_worker(std::string id, bool stream) {
    auto self = shared_from_this();
    DockerBodyStream body(strand_);
    {
      CancelScope cancel(*this, [&body] { body.close(); });
      const std::string method = "GET";
      const std::string path = stats_path(id, stream);
      DockerReply refusal;
      auto opened = co_await body.open(docker_, method, path, &refusal);
      if (opened) {
        EventLineSplitter lines(kMaxStatsLine);
        std::vector<char> chunk(kReadChunk);
        bool ended = false;
        while (!ended && !tunnel_closed_) {
          auto got = co_await body.read_some(chunk.data(), chunk.size());
          if (!got || *got == 0) break;
          std::vector<json> samples;
          if (!split_samples(lines, std::string_view(chunk.data(), *got), samples)) break;
          for (const auto& sample : samples) {
            if (is_empty_stats(sample)) {
              ended = true;  // not running any more
              break;
            }
            auto it = host_samples_.find(id);
            if (it != host_samples_.end()) it->second.latest = normalize_stats(sample, id, time_util::now_ms());
          }
        }
      }
    }
    if (auto it = host_samples_.find(id); it != host_samples_.end()) it->second.done = true;
    workers_changed_.notify();
  }

  json host_samples(bool include_done) {
    json samples = json::array();
    for (auto it = host_samples_.begin(); it != host_samples_.end();) {
      if (it->second.latest && (include_done || !it->second.done)) samples.push_back(*it->second.latest);
      if (it->second.done && !include_done) {
        it = host_samples_.erase(it);
      } else {
        ++it;
      }
    }
    return samples;
  }

  asio::awaitable<std::string> run_hoststats() {
    auto params = stats_params(request_.params);
    if (!params) co_return failure(params.error().message);
    auto ids = co_await running_containers();
    if (!ids) co_return failure(ids.error().message);
    if (tunnel_closed_) co_return std::string();
    start_workers(*ids, params->stream);
    if (!params->stream) {
      for (;;) {
        bool all_done = true;
        for (const auto& [id, s] : host_samples_) all_done = all_done && s.done;
        if (all_done || tunnel_closed_) break;
        co_await workers_changed_.wait();
      }
      if (tunnel_closed_) co_return std::string();
      const json samples = host_samples(true);
      const bool sent = co_await send_text(samples);
      co_return sent ? success() : std::string();
    }
    asio::steady_timer tick(strand_);
    CancelScope cancel(*this, [&tick] { tick.cancel(); });
    for (int n = 1; !tunnel_closed_; ++n) {
      tick.expires_after(1s);
      co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
      if (tunnel_closed_) break;
      if (n % kRelistTicks == 0) {
        auto again = co_await running_containers();
        if (again) start_workers(*again, true);
        if (tunnel_closed_) break;
      }
      const json samples = host_samples(false);
      const bool sent = co_await send_text(samples);
      if (!sent) break;
    }
    co_return std::string();
  }

  std::shared_ptr<StreamHub> hub_;
  std::uint64_t id_;
  asio::any_io_executor strand_;
  StreamRequest request_;
  std::string token_;
  std::string name_;
  DockerTarget docker_;
  std::shared_ptr<WebSocket> ws_;

  bool tunnel_closed_ = false;
  bool aborted_ = false;
  bool stopped_ = false;
  std::map<std::uint64_t, std::function<void()>> cancels_;
  std::uint64_t next_cancel_ = 0;

  // exec
  ExecParams exec_;
  std::string exec_id_;
  std::unique_ptr<DockerHijack> hijack_;
  bool first_message_seen_ = false;
  AsyncEvent first_message_;
  bool started_ = false;  // the exec runs, its first sizes applied
  bool exec_over_ = false;  // its output ended: no more input is written
  bool stdin_closed_ = false;  // no more input is taken
  std::deque<std::string> stdin_queue_;
  std::size_t stdin_queued_ = 0;  // bytes queued or being written
  AsyncEvent stdin_ready_;
  AsyncEvent stdin_room_;
  std::optional<TermSize> pending_size_;

  // hoststats
  std::map<std::string, HostSample> host_samples_;
  AsyncEvent workers_changed_;
};

StreamTunnels::StreamTunnels(asio::any_io_executor executor, Config config)
    : hub_(std::make_shared<StreamHub>(std::move(executor), std::move(config))) {}

StreamTunnels::~StreamTunnels() { stop(); }

void StreamTunnels::open(const std::string& token) {
  StreamHub& hub = *hub_;
  if (hub.stopping) return;
  const json jwks = hub.config.jwks ? hub.config.jwks() : json();
  if (jwks != hub.keys_source) {
    auto keys = jwt::KeySet::from_jwks(jwks);
    if (keys) {
      hub.keys = std::move(*keys);
    } else {
      spdlog::warn("the server's token keys are unusable: {}", keys.error().message);
      hub.keys = jwt::KeySet();
    }
    hub.keys_source = jwks;
  }
  const auto now = time_util::now_s();
  auto request = check_stream_token(token, hub.keys, hub.config.host_id, now);
  if (!request) {
    spdlog::warn("refused to open a stream: {}", request.error().message);
    return;
  }
  if (!hub.jtis.insert(request->jti, request->exp + kStreamTokenLeeway, now)) {
    spdlog::warn("refused to open a stream: its token was used before");
    return;
  }
  std::erase_if(hub.sessions, [](const auto& entry) { return entry.second.expired(); });
  if (hub.sessions.size() >= hub.config.max_streams) {
    spdlog::warn("refused to open a stream: {} streams are open already", hub.sessions.size());
    return;
  }
  const auto id = ++hub.next_id;
  auto session = std::make_shared<Session>(hub_, id, std::move(*request), token);
  hub.sessions.emplace(id, session);
  asio::co_spawn(session->strand(), [session]() -> asio::awaitable<void> { co_await session->run(); },
                 [](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     spdlog::error("a stream failed: {}", ex.what());
                   }
                 });
}

void StreamTunnels::stop() {
  if (!hub_ || hub_->stopping) return;
  hub_->stopping = true;
  for (auto& [id, weak] : hub_->sessions) {
    if (auto session = weak.lock()) session->stop();
  }
}

std::size_t StreamTunnels::active() const {
  std::size_t n = 0;
  for (const auto& [id, weak] : hub_->sessions) n += weak.expired() ? 0 : 1;
  return n;
}

}  // namespace paddock::agent
