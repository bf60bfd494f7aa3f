#include "common/ws_client.hpp"

#include "common/tls.hpp"
#include "common/version.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>

namespace paddock::ws_client {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

DialError dial_error(Errc code, std::string message) {
  DialError e;
  e.code = code;
  e.message = std::move(message);
  return e;
}

// Maps a refusal's status onto the project's categories.
Errc errc_for_status(unsigned status) {
  switch (status) {
    case 400: case 413: case 422: return Errc::invalid_input;
    case 401: return Errc::unauthorized;
    case 403: return Errc::forbidden;
    case 404: case 410: return Errc::not_found;
    case 409: return Errc::conflict;
    default: return status >= 500 ? Errc::unavailable : Errc::internal;
  }
}

template <class NextLayer>
asio::awaitable<DialResult> upgrade(websocket::stream<NextLayer> ws, const http_client::Url& url,
                                    const DialOptions& options, Clock::time_point deadline) {
  ws.set_option(websocket::stream_base::decorator([headers = options.headers](websocket::request_type& req) {
    req.set(http::field::user_agent, std::string("paddock/") + kVersion);
    for (const auto& [name, value] : headers) req.set(name, value);
  }));
  ws.read_message_max(options.read_limit);
  beast::get_lowest_layer(ws).expires_at(deadline);
  websocket::response_type res;
  auto [ec] = co_await ws.async_handshake(res, url.authority(), url.target, asio::as_tuple(asio::use_awaitable));
  if (ec) {
    const unsigned status = res.result_int();
    if (status != 0 && status != 101) {
      auto body = http_client::parse_error_body(res.body());
      DialError e = dial_error(errc_for_status(status), "");
      e.http_status = status;
      e.api_code = body.code;
      e.api_message = body.message;
      e.message = url.origin() + " refused the connection: " + std::to_string(status);
      if (!body.code.empty()) e.message += " " + body.code;
      if (!body.message.empty()) e.message += ": " + body.message;
      co_return e;
    }
    co_return dial_error(Errc::unavailable,
                         "WebSocket upgrade with " + url.origin() + " failed: " + http_client::describe_error(ec));
  }
  // From here on the WebSocket's own timeouts apply (set_idle_timeout).
  beast::get_lowest_layer(ws).expires_never();
  co_return make_web_socket(std::move(ws), beast::role_type::client);
}

}  // namespace

asio::awaitable<DialResult> dial_web_socket(asio::any_io_executor executor, std::string url_text,
                                            DialOptions options) {
  const auto deadline = Clock::now() + options.timeout;
  auto url = http_client::parse_url(url_text);
  if (!url) co_return dial_error(url.error().code, url.error().message);
  if (url->tls() && !options.tls) {
    co_return dial_error(Errc::internal, "no TLS context for " + url->origin());
  }
  auto tcp = co_await http_client::connect_tcp(executor, *url, deadline);
  if (!tcp) co_return dial_error(tcp.error().code, tcp.error().message);

  if (!url->tls()) {
    co_return co_await upgrade(WebSocketStream<beast::tcp_stream>(std::move(*tcp)), *url, options, deadline);
  }
  using SslStream = beast::ssl_stream<beast::tcp_stream>;
  SslStream stream(std::move(*tcp), *options.tls);
  if (auto st = tls::prepare_client_stream(stream, url->host); !st) {
    co_return dial_error(st.error().code, st.error().message);
  }
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, asio::as_tuple(asio::use_awaitable));
  if (hec) {
    co_return dial_error(http_client::tls_failure_code(stream.native_handle()),
                         "cannot connect to " + url->origin() + ": " +
                             http_client::describe_error(hec, stream.native_handle()));
  }
  co_return co_await upgrade(WebSocketStream<SslStream>(std::move(stream)), *url, options, deadline);
}

}  // namespace paddock::ws_client
