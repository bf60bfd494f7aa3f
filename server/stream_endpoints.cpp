#include "server/stream_endpoints.hpp"

#include "common/async_event.hpp"
#include "common/jwt.hpp"
#include "common/time_util.hpp"
#include "server/agent_hub.hpp"
#include "server/auth.hpp"
#include "server/query.hpp"
#include "server/socket_quota.hpp"
#include "server/stream_broker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

namespace paddock::server {

namespace http = boost::beast::http;
using nlohmann::json;

namespace {

// The agent has this long to dial its tunnel after the user connects.
constexpr auto kAgentDialTimeout = std::chrono::seconds(10);
// One message (a Docker frame, a stdin chunk) at most. A direction of a
// stream holds at most one message being read, kRelayQueue bytes queued and
// the batch being written.
constexpr std::size_t kMaxMessage = 1024 * 1024;
// What waits between the two sockets of one direction of a stream, besides
// the batch being written.
constexpr std::size_t kRelayQueue = 256 * 1024;
// A reader that takes no message for this long is gone.
constexpr auto kStallTimeout = std::chrono::seconds(120);

std::string bearer_token(const HttpRequest& req) {
  auto header = req[http::field::authorization];
  constexpr std::string_view prefix = "Bearer ";
  if (header.size() > prefix.size() && header.substr(0, prefix.size()) == prefix) {
    return std::string(header.substr(prefix.size()));
  }
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url) return {};
  for (auto p : url->params()) {
    if (p.key == "token") return p.value;
  }
  return {};
}

struct Verified {
  json claims;
  std::int64_t host_id = 0;
  std::string jti;
};

// Signature, expiry, issuer and shape of a stream token.
ApiResult<Verified> verify_token(ServerContext& server, const std::string& token, const std::string& base) {
  if (token.empty()) return ApiError::unauthorized();
  auto claims = server.keys->verify(token, time_util::now_s());
  if (!claims) return ApiError{401, "Unauthorized", claims.error().message, {}};
  Verified v;
  v.claims = std::move(*claims);
  const auto& c = v.claims;
  if (!c.contains("jti") || !c["jti"].is_string() || !c.contains("aud") || !c["aud"].is_string() ||
      !c.contains("op") || !c["op"].is_string() || !c.contains("sub") || !c["sub"].is_string()) {
    return ApiError{401, "Unauthorized", "malformed token", {}};
  }
  if (server.config->advertise_url.empty() ? false : c.value("iss", "") != base) {
    return ApiError{401, "Unauthorized", "token from another server", {}};
  }
  const std::string aud = c["aud"];
  if (aud.rfind("1h", 0) != 0) return ApiError{401, "Unauthorized", "malformed token", {}};
  try {
    v.host_id = std::stoll(aud.substr(2));
  } catch (const std::exception&) {
    return ApiError{401, "Unauthorized", "malformed token", {}};
  }
  v.jti = c["jti"];
  return v;
}

// One direction of a stream. The reader (on `from`'s strand) queues each
// message it reads; a writer (on `to`'s strand) sends everything queued so
// far as one batch, so a burst of small messages costs one write, and the
// next messages are read while a batch is being written. The strands meet
// only under the mutex and on wake-ups when one side was idle.
struct Relay {
  Relay(std::shared_ptr<WebSocket> source, std::shared_ptr<WebSocket> sink)
      : from(std::move(source)), to(std::move(sink)), space(from->get_executor()), ready(to->get_executor()) {}

  std::shared_ptr<WebSocket> from;
  std::shared_ptr<WebSocket> to;
  AsyncEvent space;  // the reader waits here while the queue is full
  AsyncEvent ready;  // the writer waits here while the queue is empty

  std::mutex mutex;
  std::vector<OutgoingMessage> queued;
  std::size_t queued_bytes = 0;
  bool reader_waiting = false;
  bool writer_idle = false;
  bool reader_done = false;
  bool writer_failed = false;
  websocket::close_reason reason;
};

// The writer's half: runs on `to`'s strand until the reader is done and the
// queue is empty, or a write fails; then closes `to` with `from`'s reason.
asio::awaitable<void> relay_writer(std::shared_ptr<Relay> relay) {
  std::vector<OutgoingMessage> batch;
  for (;;) {
    bool done = false;
    bool wake_reader = false;
    batch.clear();
    {
      std::lock_guard lock(relay->mutex);
      batch.swap(relay->queued);
      relay->queued_bytes = 0;
      done = relay->reader_done;
      relay->writer_idle = batch.empty() && !done;
      wake_reader = std::exchange(relay->reader_waiting, false);
    }
    if (wake_reader) asio::post(relay->from->get_executor(), [relay] { relay->space.notify(); });
    if (!batch.empty()) {
      const auto ec = co_await relay->to->write_batch(batch);
      if (ec) {
        std::lock_guard lock(relay->mutex);
        relay->writer_failed = true;
        if (std::exchange(relay->reader_waiting, false)) {
          asio::post(relay->from->get_executor(), [relay] { relay->space.notify(); });
        }
        break;
      }
      continue;
    }
    if (done) break;
    co_await relay->ready.wait();
  }
  websocket::close_reason reason;
  {
    std::lock_guard lock(relay->mutex);
    reason = relay->reason;
  }
  if (reason.code == websocket::close_code::none) reason = {websocket::close_code::going_away, "peer went away"};
  relay->to->close_soon(reason);
}

// Relays messages from one socket to the other until `from` ends, then
// closes `to` with the same reason. At most kRelayQueue bytes wait between
// the two sockets: a slow `to` stops the reads from `from`, so TCP's flow
// control reaches all the way back to the sender.
asio::awaitable<void> pump(std::shared_ptr<WebSocket> from, std::shared_ptr<WebSocket> to) {
  auto relay = std::make_shared<Relay>(from, to);
  // Named first: GCC 12 destroys a closure temporary inside a co_spawn call
  // expression twice.
  auto writer = relay_writer(relay);
  asio::co_spawn(to->get_executor(), std::move(writer), asio::detached);
  std::vector<OutgoingMessage> incoming;
  for (;;) {
    incoming.clear();
    auto ec = co_await from->read_messages(incoming, kRelayQueue);
    if (ec) break;
    std::size_t bytes = 0;
    for (const auto& m : incoming) bytes += m.data.size();
    bool wake_writer = false;
    bool wait = false;
    {
      std::lock_guard lock(relay->mutex);
      if (relay->writer_failed) break;
      relay->queued_bytes += bytes;
      if (relay->queued.empty()) {
        relay->queued.swap(incoming);
      } else {
        std::move(incoming.begin(), incoming.end(), std::back_inserter(relay->queued));
      }
      wake_writer = std::exchange(relay->writer_idle, false);
      wait = relay->reader_waiting = relay->queued_bytes >= kRelayQueue;
    }
    if (wake_writer) asio::post(to->get_executor(), [relay] { relay->ready.notify(); });
    if (wait) co_await relay->space.wait();
  }
  bool wake_writer = false;
  {
    std::lock_guard lock(relay->mutex);
    relay->reader_done = true;
    relay->reason = from->reason();
    wake_writer = std::exchange(relay->writer_idle, false);
  }
  if (wake_writer) asio::post(to->get_executor(), [relay] { relay->ready.notify(); });
}

// A refusal before the upgrade, answered and counted like any request.
Upgrade refusal(Api& api, Metrics& metrics, const HttpRequest& req, const std::string& base, const char* route,
                const ApiError& e) {
  metrics.observe_request(route, "GET", e.status, 0);
  Upgrade up;
  up.refusal = api.error(req, e, base + "/v1/schemas");
  return up;
}

// Whether the token's caller may still act on its host: its key, account and
// memberships, and the host, as they stand now. Any of them deactivated or
// removed since the token was issued refuses it.
struct StreamAccess {
  std::optional<ApiError> refused;
  std::optional<Caller> caller;
};

StreamAccess stream_access(ServerContext& server, const Verified& v) {
  StreamAccess access;
  auto read = server.db->read([&](db::Connection& c) {
    auto host = c.query_one("SELECT projectId, state FROM hosts WHERE id = ?", {v.host_id});
    if (host.is_null() || host["state"] == "inactive") {
      access.refused = ApiError::unavailable("the host is not available");
      return;
    }
    auto found = caller_of_key(c, v.claims["sub"].get<std::string>(), time_util::now_ms());
    if (!found.ok() || found.value().role_in(host["projectId"].get<std::int64_t>()) < Role::member) {
      access.refused = ApiError::forbidden("the caller may no longer use this host");
      return;
    }
    access.caller = std::move(found.value());
  });
  if (!read) access.refused = ApiError::internal();
  return access;
}

Upgrade user_stream(Api& api, ServerContext& server, Metrics& metrics, HttpRequest& req, const std::string& base) {
  Upgrade up;
  auto refuse = [&](const ApiError& e) { return refusal(api, metrics, req, base, "/v1/stream", e); };
  auto verified = verify_token(server, bearer_token(req), base);
  if (!verified) return refuse(verified.error());
  auto v = std::move(*verified);
  auto access = stream_access(server, v);
  if (access.refused) return refuse(*access.refused);
  const Caller& caller = *access.caller;
  if (!server.agents->connected(v.host_id)) return refuse(ApiError::unavailable("the host is not connected"));
  auto slot = server.sockets->take(caller);
  if (!slot) {
    auto refused = refuse(server.sockets->refusal());
    refused.refusal->set(http::field::retry_after, "5");
    return refused;
  }
  if (!server.streams->consume(v.jti, v.claims["exp"].get<std::int64_t>())) {
    return refuse(ApiError{401, "Unauthorized", "token already used", {}});
  }

  up.run = [&server, &metrics, v, token = bearer_token(req),
            slot = std::move(slot)](std::shared_ptr<WebSocket> ws) -> asio::awaitable<void> {
    metrics.websocket_opened("stream");
    ws->set_read_limit(kMaxMessage);
    ws->set_idle_timeout(kStallTimeout, true);
    ws->set_max_queued(kMaxMessage);
    auto stream = server.streams->open(v.jti, v.host_id, v.claims["sub"], ws);
    // Access may have ended between the check above and the stream's being
    // known to the broker, where its end would have found it: look again.
    if (auto now = stream_access(server, v); now.refused) {
      send_status_and_close(ws, json({{"status", "Failure"}, {"message", now.refused->message}}).dump());
    } else if (!server.agents->send(v.host_id, json({{"type", "open"}, {"token", token}}).dump())) {
      send_status_and_close(ws, R"({"status":"Failure","message":"the host is not connected"})");
    } else {
      stream->waiting->expires_after(kAgentDialTimeout);
      co_await stream->waiting->async_wait(asio::as_tuple(asio::use_awaitable));
      if (!server.streams->joined_or_abandon(v.jti)) {
        send_status_and_close(ws, R"({"status":"Failure","message":"the host's agent did not open the stream in time"})");
      } else {
        co_await pump(ws, stream->agent);
      }
    }
    // Drain until the close completes so the final status is delivered.
    beast::flat_buffer sink;
    while (!stream->agent && !(co_await ws->read(sink))) sink.consume(sink.size());
    server.streams->finish(v.jti);
    metrics.websocket_closed("stream");
  };
  return up;
}

Upgrade agent_tunnel(Api& api, ServerContext& server, Metrics& metrics, HttpRequest& req, const std::string& base) {
  Upgrade up;
  auto refuse = [&](const ApiError& e) { return refusal(api, metrics, req, base, "/v1/tunnel", e); };
  auto verified = verify_token(server, bearer_token(req), base);
  if (!verified) return refuse(verified.error());
  auto v = std::move(*verified);
  if (!server.agents->connected(v.host_id)) return refuse(ApiError::unauthorized());
  up.run = [&server, &metrics, v](std::shared_ptr<WebSocket> ws) -> asio::awaitable<void> {
    ws->set_read_limit(kMaxMessage);
    ws->set_idle_timeout(kStallTimeout, true);
    auto stream = server.streams->join(v.jti, v.host_id, ws);
    if (!stream) {
      co_await ws->close({websocket::close_code::policy_error, "no stream waits for this token"});
      co_return;
    }
    metrics.websocket_opened("tunnel");
    co_await pump(ws, stream->user);
    metrics.websocket_closed("tunnel");
  };
  return up;
}

}  // namespace

void add_stream_routes(Api& api, ServerContext& server, Metrics& metrics) {
  auto plain = [&api](HttpRequest& req, const Peer&, const std::vector<std::string>&, const std::string& base) {
    return api.error(req, {400, "InvalidFormat", "this is a WebSocket endpoint: send an Upgrade request", {}},
                     base + "/v1/schemas");
  };
  ExtraRoute stream;
  stream.handle = plain;
  stream.upgrade = [&](HttpRequest& req, const Peer&, const std::string& base) {
    return user_stream(api, server, metrics, req, base);
  };
  api.add_route("stream", std::move(stream));
  ExtraRoute tunnel;
  tunnel.handle = plain;
  tunnel.upgrade = [&](HttpRequest& req, const Peer&, const std::string& base) {
    return agent_tunnel(api, server, metrics, req, base);
  };
  api.add_route("tunnel", std::move(tunnel));
}

}  // namespace paddock::server
