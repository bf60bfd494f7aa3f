#include "agent/control_connection.hpp"

#include "agent/messages.hpp"
#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/ws_client.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>

#include <exception>

namespace paddock::agent {

namespace {

constexpr std::size_t kReadLimit = std::size_t{4} << 20;
// A snapshot may be up to 4 MiB; a few of them may queue behind a slow link.
constexpr std::size_t kMaxQueued = std::size_t{32} << 20;

std::string seconds_text(std::chrono::milliseconds d) {
  const auto tenths = d.count() / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
}

}  // namespace

std::optional<ExitStatus> refusal_exit(unsigned code) {
  switch (code) {
    case 410:
    case 4410:
      return ExitStatus{2, "this host was removed from the server; register it again with a new command"};
    case 403:
    case 4403:
      return ExitStatus{2, "this host was deactivated by an administrator; activate it on the server, then start "
                           "the agent again"};
    case 409:
    case 4409:
      return ExitStatus{2, "another machine is connected with this host's identity (was the state copied?); "
                           "register this machine with its own command instead"};
    default:
      return std::nullopt;
  }
}

ControlConnection::ControlConnection(asio::any_io_executor executor, Config config, Callbacks callbacks)
    : executor_(executor),
      config_(std::move(config)),
      callbacks_(std::move(callbacks)),
      wake_(executor),
      instance_(crypto::random_token(16)) {}

void ControlConnection::start() {
  if (started_) return;
  started_ = true;
  asio::co_spawn(executor_, run(), asio::detached);
}

void ControlConnection::stop() {
  if (stopping_) return;
  stopping_ = true;
  in_session_ = false;
  wake_.notify();
  dial_cancel_.emit(asio::cancellation_type::terminal);
  if (ws_) ws_->close_soon({websocket::close_code::going_away, "agent stopping"});
}

void ControlConnection::send(const std::string& text) {
  if (!in_session_ || !ws_) return;
  ws_->send(text, false);
}

asio::awaitable<void> ControlConnection::run() {
  Backoff backoff(config_.retry_base, config_.retry_cap);
  const std::string url = config_.server_url + "/v1/connect";
  ws_client::DialOptions options;
  options.headers = {{"Authorization", "Basic " + crypto::base64_encode(config_.credential.access_key + ":" +
                                                                         config_.credential.secret_key)},
                     {"X-Paddock-Agent-Instance", instance_}};
  options.tls = config_.tls;
  options.timeout = std::chrono::seconds(10);
  options.read_limit = kReadLimit;

  bool warned = false;
  while (!stopping_) {
    std::optional<ws_client::DialResult> dialed;
    try {
      co_await asio::co_spawn(
          executor_,
          [&]() -> asio::awaitable<void> { dialed.emplace(co_await ws_client::dial_web_socket(executor_, url, options)); },
          asio::bind_cancellation_slot(dial_cancel_.slot(), asio::use_awaitable));
    } catch (const std::exception& e) {
      if (!stopping_) spdlog::warn("connecting to {}: {}", config_.server_url, e.what());
    }
    if (stopping_) {
      if (dialed && *dialed) (**dialed)->abort();
      break;
    }
    if (!dialed || !*dialed) {
      const std::string why = dialed ? dialed->error().message : "the dial failed";
      // The patience counts conflicts in a row: any other answer starts it over.
      if (!dialed || dialed->error().http_status != 409) conflict_since_.reset();
      if (dialed && dialed->error().http_status == 409) {
        // Another connection holds this identity. A connection of ours that
        // died unnoticed (a crash and restart) is dropped by the server within
        // its liveness window; one that outlives that is another machine.
        const auto now = std::chrono::steady_clock::now();
        if (!conflict_since_) conflict_since_ = now;
        if (now - *conflict_since_ < config_.conflict_patience) {
          spdlog::warn("{}; another connection with this identity is open, retrying", why);
          co_await wake_.wait_for(std::chrono::seconds(2));
          continue;
        }
      }
      if (dialed) {
        if (auto exit = refusal_exit(dialed->error().http_status)) {
          spdlog::error("the server refused this agent: {}", why);
          if (callbacks_.on_fatal) callbacks_.on_fatal(*exit);
          break;
        }
      }
      const auto delay = backoff.next();
      // The first failure is worth a warning; the retries that follow are not news.
      if (!warned) {
        spdlog::warn("{}; retrying in {}", why, seconds_text(delay));
        warned = true;
      } else {
        spdlog::info("{}; retrying in {}", why, seconds_text(delay));
      }
      co_await wake_.wait_for(delay);
      continue;
    }

    warned = false;
    conflict_since_.reset();
    ws_ = std::move(**dialed);
    const auto connected_at = std::chrono::steady_clock::now();
    co_await session(ws_);
    const auto reason = ws_->reason();
    ws_.reset();
    in_session_ = false;
    if (stopping_) break;
    if (auto exit = refusal_exit(static_cast<unsigned>(reason.code))) {
      spdlog::error("the server closed the connection: {} {}", static_cast<unsigned>(reason.code),
                    std::string(reason.reason.data(), reason.reason.size()));
      if (callbacks_.on_fatal) callbacks_.on_fatal(*exit);
      break;
    }
    if (std::chrono::steady_clock::now() - connected_at >= config_.stable_after) backoff.reset();
    const auto delay = backoff.next();
    spdlog::warn("lost the connection to {} ({}); reconnecting in {}", config_.server_url,
                 reason.code != websocket::close_code::none
                     ? "closed with " + std::to_string(static_cast<unsigned>(reason.code)) +
                           (reason.reason.empty() ? std::string() : " " + std::string(reason.reason.data(), reason.reason.size()))
                     : std::string("no answer or reset"),
                 seconds_text(delay));
    co_await wake_.wait_for(delay);
  }
}

asio::awaitable<void> ControlConnection::session(std::shared_ptr<WebSocket> ws) {
  ws->set_read_limit(kReadLimit);
  ws->set_max_queued(kMaxQueued);
  ws->set_idle_timeout(config_.idle_timeout, /*keep_alive_pings=*/true);

  // A server that answers pings but never says welcome is no use.
  auto watchdog = std::make_shared<asio::steady_timer>(executor_, config_.welcome_timeout);
  watchdog->async_wait([ws](error_code ec) {
    if (!ec) {
      spdlog::warn("the server sent no welcome; reconnecting");
      ws->abort();
    }
  });

  beast::flat_buffer buffer;
  for (;;) {
    auto ec = co_await ws->read(buffer);
    if (ec) {
      spdlog::debug("control connection read: {}", ec.message());
      break;
    }
    const std::string text = beast::buffers_to_string(buffer.data());
    buffer.consume(buffer.size());
    if (!ws->got_text()) continue;
    auto message = parse_server_message(text);
    if (!message) {
      spdlog::warn("ignoring a malformed message from the server: {}", message.error().message);
      continue;
    }
    switch (message->type) {
      case ServerMessage::Type::welcome:
        watchdog->cancel();
        if (stopping_) break;
        ++sessions_;
        in_session_ = true;
        spdlog::info("connected to {} as host {}", config_.server_url, message->host_id);
        if (message->jwks.is_object() && callbacks_.on_jwks) callbacks_.on_jwks(message->jwks);
        if (callbacks_.on_session) callbacks_.on_session();
        break;
      case ServerMessage::Type::open:
        if (callbacks_.on_open) {
          callbacks_.on_open(message->token);
        } else {
          spdlog::warn("the server asked for a stream tunnel; this agent does not support them yet");
        }
        break;
      case ServerMessage::Type::other:
        spdlog::debug("ignoring a server message of type '{}'", message->type_name);
        break;
    }
  }
  watchdog->cancel();
  in_session_ = false;
  // A read error without a close handshake leaves the socket to us.
  if (!stopping_) ws->abort();
}

}  // namespace paddock::agent
