#include "cli/stream.hpp"

#include "cli/terminal.hpp"
#include "common/ws_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>

#include <array>
#include <cerrno>
#include <csignal>
#include <exception>

#include <unistd.h>

namespace paddock::cli::stream {

Handlers terminal_handlers() {
  Handlers h;
  h.on_stdout = [](std::string_view data) { return terminal::write_all(STDOUT_FILENO, data); };
  // A closed stderr is no reason to stop the stream.
  h.on_stderr = [](std::string_view data) {
    terminal::write_all(STDERR_FILENO, data);
    return true;
  };
  return h;
}

namespace {

std::string state_of(const json& resource) {
  const std::string state = str(resource, "state");
  return state.empty() ? std::string() : " (state " + state + ")";
}

std::string label_of(const json& resource) {
  const std::string id = str(resource, "id");
  const std::string name = str(resource, "name");
  const std::string type = str(resource, "type", "resource");
  if (name.empty() || name == id) return type + " " + id;
  return type + " " + name + " (" + id + ")";
}

}  // namespace

Frame decode(std::string_view message, bool text) {
  Frame f;
  if (text) {
    f.kind = Frame::Kind::text;
    f.payload = message;
    return f;
  }
  if (message.empty()) return f;
  const auto channel = static_cast<unsigned char>(message.front());
  f.payload = message.substr(1);
  switch (channel) {
    case 1:
      f.kind = Frame::Kind::output;
      f.channel = Channel::stdout_;
      break;
    case 2:
      f.kind = Frame::Kind::output;
      f.channel = Channel::stderr_;
      break;
    case 3:
      f.kind = Frame::Kind::status;
      f.channel = Channel::status;
      break;
    default:
      // stdin and resize only travel towards the container; unknown channels
      // may be added later and are skipped.
      f.payload = {};
      break;
  }
  return f;
}

std::string encode(Channel channel, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 1);
  out += static_cast<char>(channel);
  out += payload;
  return out;
}

std::string resize_message(unsigned width, unsigned height) {
  return encode(Channel::resize, json{{"width", width}, {"height", height}}.dump());
}

Result<Status> parse_status(std::string_view payload) {
  auto j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("status") || !j["status"].is_string()) {
    return fail(Errc::invalid_input, "the stream ended with a status that is not one");
  }
  Status s;
  s.success = j["status"].get<std::string>() == "Success";
  if (auto it = j.find("exitCode"); it != j.end() && it->is_number_integer()) {
    const auto code = it->get<long long>();
    if (code >= 0 && code <= 255) s.exit_code = static_cast<int>(code);
    else s.exit_code = 1;  // a code the shell cannot carry still means failure
  }
  s.message = str(j, "message");
  for (char& c : s.message) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (s.message.size() > 500) s.message.resize(500);
  return s;
}

Result<HostAccess> parse_host_access(const json& answer) {
  HostAccess a;
  a.url = str(answer, "url");
  a.token = str(answer, "token");
  if (str(answer, "type") != "hostAccess" || a.url.empty() || a.token.empty()) {
    return fail(Errc::invalid_input, "the server's answer to a stream action is not a hostAccess");
  }
  if (!a.url.starts_with("wss://") && !a.url.starts_with("ws://") && !a.url.starts_with("https://") &&
      !a.url.starts_with("http://")) {
    return fail(Errc::invalid_input, "the server named a stream URL that is not a WebSocket URL");
  }
  return a;
}

ApiResult<HostAccess> request_stream(ApiClient& api, const json& resource, std::string_view action,
                                     const json& input) {
  std::string url;
  if (auto actions = resource.find("actions"); actions != resource.end() && actions->is_object()) {
    url = str(*actions, action);
  }
  if (url.empty()) {
    ApiError e;
    e.message = label_of(resource) + " offers no '" + std::string(action) + "' action" + state_of(resource) +
                ": the server does not allow it now, or for your key";
    return e;
  }
  auto answer = api.post(url, input);
  if (!answer) return answer.error();
  auto access = parse_host_access(*answer);
  if (!access) {
    ApiError e;
    e.message = access.error().message;
    return e;
  }
  return std::move(*access);
}

boost::asio::awaitable<Result<std::shared_ptr<WebSocket>>> dial(boost::asio::any_io_executor executor,
                                                                HostAccess access, tls::ClientTrust trust) {
  ws_client::DialOptions options;
  options.headers.emplace_back("Authorization", "Bearer " + access.token);
  if (access.url.starts_with("wss://") || access.url.starts_with("https://")) {
    auto context = tls::make_client_context(trust);
    if (!context) co_return context.error();
    options.tls = std::move(*context);
  }
  // A container's output can arrive in large messages; samples are small.
  options.read_limit = std::size_t{16} << 20;
  auto ws = co_await ws_client::dial_web_socket(executor, access.url, std::move(options));
  if (!ws) {
    const auto& e = ws.error();
    if (e.http_status != 0) {
      std::string line = "the stream was refused: " + std::to_string(e.http_status);
      if (!e.api_code.empty()) line += " " + e.api_code;
      if (!e.api_message.empty()) line += ": " + e.api_message;
      co_return fail(e.code, line);
    }
    co_return fail(e.code, e.message);
  }
  co_return std::move(*ws);
}

Reader::Reader(std::shared_ptr<WebSocket> ws, Handlers handlers) : ws_(std::move(ws)), handlers_(std::move(handlers)) {}

void Reader::stop() {
  if (stopped_) return;
  stopped_ = true;
  ws_->close_soon({websocket::close_code::normal});
}

boost::asio::awaitable<End> Reader::run() {
  beast::flat_buffer buffer;
  for (;;) {
    auto ec = co_await ws_->read(buffer);
    if (stopped_) co_return End{End::How::stopped, {}, {}};
    if (ec) {
      End end;
      end.how = End::How::closed;
      if (ec == websocket::error::closed) {
        const auto reason = ws_->reason();
        end.detail = "the server closed the stream without a status (code " + std::to_string(reason.code);
        if (!reason.reason.empty()) end.detail += ": " + std::string(reason.reason.c_str());
        end.detail += ")";
      } else {
        end.detail = "the stream broke: " + http_client::describe_error(ec);
      }
      co_return end;
    }
    const std::string message = beast::buffers_to_string(buffer.data());
    buffer.consume(buffer.size());
    const Frame f = decode(message, ws_->got_text());
    switch (f.kind) {
      case Frame::Kind::output:
        if (f.channel == Channel::stdout_ && handlers_.on_stdout && !handlers_.on_stdout(f.payload)) stop();
        if (f.channel == Channel::stderr_ && handlers_.on_stderr && !handlers_.on_stderr(f.payload)) stop();
        break;
      case Frame::Kind::text:
        if (handlers_.on_text && !handlers_.on_text(f.payload)) {
          stop();
          co_return End{End::How::stopped, {}, {}};
        }
        break;
      case Frame::Kind::status: {
        auto status = parse_status(f.payload);
        End end;
        if (!status) {
          end.how = End::How::closed;
          end.detail = status.error().message;
        } else {
          end.how = End::How::status;
          end.status = std::move(*status);
        }
        // The status is the last message: answer the server's close.
        stopped_ = true;
        ws_->close_soon({websocket::close_code::normal});
        co_return end;
      }
      case Frame::Kind::ignored:
        break;
    }
    // A handler (a broken stdout) may have stopped us.
    if (stopped_) co_return End{End::How::stopped, {}, {}};
  }
}

struct StdinPump::State {
  State(boost::asio::any_io_executor executor, std::shared_ptr<WebSocket> socket, int descriptor)
      : ws(std::move(socket)), fd(descriptor), stream(executor) {}
  std::shared_ptr<WebSocket> ws;
  int fd;
  boost::asio::posix::stream_descriptor stream;
  bool cancelled = false;
};

StdinPump::StdinPump(boost::asio::any_io_executor executor, std::shared_ptr<WebSocket> ws, int fd)
    : state_(std::make_shared<State>(std::move(executor), std::move(ws), fd)) {}

StdinPump::~StdinPump() { cancel(); }

void StdinPump::cancel() {
  state_->cancelled = true;
  error_code ignored;
  state_->stream.cancel(ignored);
  state_->stream.close(ignored);
}

boost::asio::awaitable<void> StdinPump::run() {
  auto s = state_;  // outlives this object while the coroutine runs
  std::array<char, 16384> chunk{};
  // A duplicate, so closing the descriptor object leaves the caller's fd open.
  const int dup = ::dup(s->fd);
  error_code ec;
  if (dup >= 0) {
    s->stream.assign(dup, ec);
    if (ec) ::close(dup);
  }
  const bool pollable = dup >= 0 && !ec;
  for (;;) {
    std::size_t n = 0;
    if (pollable) {
      auto [rec, got] = co_await s->stream.async_read_some(boost::asio::buffer(chunk),
                                                           boost::asio::as_tuple(boost::asio::use_awaitable));
      if (s->cancelled) co_return;
      if (rec) break;  // end of input, or an error that ends it all the same
      n = got;
    } else {
      const ssize_t got = ::read(s->fd, chunk.data(), chunk.size());
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      n = static_cast<std::size_t>(got);
    }
    if (s->cancelled) co_return;
    const std::string message = encode(Channel::stdin_, std::string_view(chunk.data(), n));
    if (co_await s->ws->write(boost::asio::buffer(message), true)) co_return;
  }
  if (s->cancelled) co_return;
  const std::string eof = encode(Channel::stdin_, {});
  co_await s->ws->write(boost::asio::buffer(eof), true);
}

struct SignalWatch::State {
  State(boost::asio::any_io_executor executor, std::function<void(int)> callback)
      : set(executor, SIGINT, SIGTERM, SIGHUP), on_signal(std::move(callback)) {
    error_code ignored;
    set.add(SIGQUIT, ignored);
  }
  boost::asio::signal_set set;
  std::function<void(int)> on_signal;
  bool cancelled = false;
};

SignalWatch::SignalWatch(boost::asio::any_io_executor executor, std::function<void(int)> on_signal)
    : state_(std::make_shared<State>(std::move(executor), std::move(on_signal))) {
  arm(state_);
}

SignalWatch::~SignalWatch() { cancel(); }

void SignalWatch::cancel() {
  state_->cancelled = true;
  error_code ignored;
  state_->set.cancel(ignored);
}

void SignalWatch::arm(const std::shared_ptr<State>& s) {
  s->set.async_wait([s](error_code ec, int signal) {
    if (ec || s->cancelled) return;
    s->on_signal(signal);
    if (!s->cancelled) arm(s);
  });
}

Outcome run_stream(const HostAccess& access, const tls::ClientTrust& trust, RunOptions options) {
  // Polling stdin makes its open file non-blocking, and that file is usually
  // the terminal the shell shares: put its flags back whatever happens.
  std::optional<terminal::FdFlagsGuard> stdin_flags;
  if (options.stdin_fd >= 0) stdin_flags.emplace(options.stdin_fd);

  boost::asio::io_context io;
  auto executor = io.get_executor();
  Outcome outcome;
  std::shared_ptr<WebSocket> ws;
  std::shared_ptr<Reader> reader;
  boost::asio::steady_timer abort_timer(io);
  bool aborting = false;

  SignalWatch signals(executor, [&](int signal) {
    if (outcome.signal == 0) outcome.signal = signal;
    if (!reader) {
      io.stop();  // still dialing: nothing to close politely
      return;
    }
    if (aborting) {
      ws->abort();
      return;
    }
    aborting = true;
    reader->stop();
    abort_timer.expires_after(std::chrono::seconds(2));
    abort_timer.async_wait([&](error_code ec) {
      if (!ec) ws->abort();
    });
  });
  boost::asio::signal_set winch(io);
  bool finished = false;

  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        auto dialed = co_await dial(executor, access, trust);
        if (!dialed) {
          outcome.error = dialed.error().message;
          signals.cancel();
          finished = true;
          co_return;
        }
        ws = std::move(*dialed);
        ws->set_idle_timeout(std::chrono::seconds(60), /*keep_alive_pings=*/true);
        reader = std::make_shared<Reader>(ws, options.handlers);

        // Raw mode only once connected, so errors before it print normally.
        std::optional<terminal::RawModeGuard> raw;
        if (options.raw_terminal) raw.emplace(options.stdin_fd >= 0 ? options.stdin_fd : STDIN_FILENO);

        if (options.size_fd >= 0) {
          if (auto size = terminal::window_size(options.size_fd)) {
            ws->send(resize_message(size->width, size->height), true);
          }
          winch.add(SIGWINCH);
          boost::asio::co_spawn(
              executor,
              [&]() -> boost::asio::awaitable<void> {
                for (;;) {
                  auto [ec, signal] = co_await winch.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
                  (void)signal;
                  if (ec || !ws->is_open()) co_return;
                  if (auto size = terminal::window_size(options.size_fd)) {
                    ws->send(resize_message(size->width, size->height), true);
                  }
                }
              },
              boost::asio::detached);
        }

        std::shared_ptr<StdinPump> pump;
        if (options.stdin_fd >= 0) {
          pump = std::make_shared<StdinPump>(executor, ws, options.stdin_fd);
          boost::asio::co_spawn(executor, [pump]() { return pump->run(); }, boost::asio::detached);
        }

        outcome.end = co_await reader->run();
        if (pump) pump->cancel();
        error_code ignored;
        winch.cancel(ignored);
        abort_timer.cancel();
        signals.cancel();
        finished = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  // Run until the stream is over, not until every timer is: a socket that
  // failed keeps Beast's idle timer armed for up to half the idle timeout.
  while (!finished && io.run_one() > 0) {
  }
  // A polite close is on its way after a status or a stop: let it go out.
  if (finished && outcome.end.how != End::How::closed && !io.stopped()) io.run_for(std::chrono::seconds(2));
  return outcome;
}

}  // namespace paddock::cli::stream
