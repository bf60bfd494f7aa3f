#pragma once
// Dialing a WebSocket as a client: resolve, connect (TCP_NODELAY), TLS with
// the server's name checked, HTTP upgrade, and the project's WebSocket
// (common/web_socket.hpp) on success.
//
// A server that answers the upgrade with an HTTP error is reported with its
// status and the `code`/`message` of the API's JSON error body, so callers can
// tell "unknown credential" (401) from "host removed" (410) and the like.

#include "common/http_client.hpp"
#include "common/result.hpp"
#include "common/web_socket.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace paddock::ws_client {

struct DialError {
  Errc code = Errc::unavailable;
  std::string message;     // one line, for a person
  unsigned http_status = 0;  // the refusal's status; 0 when the upgrade was never answered
  std::string api_code;      // the refusal body's "code" ("HostRemoved"), if any
  std::string api_message;   // the refusal body's "message", if any

  Error to_error() const { return Error{code, message}; }
};

struct DialOptions {
  http_client::Headers headers;  // added to the upgrade request (e.g. Authorization)
  // Required for wss:// and https:// URLs: usually tls::make_client_context().
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::chrono::milliseconds timeout{15000};  // resolve + connect + TLS + upgrade
  std::size_t read_limit = std::size_t{4} << 20;  // largest message accepted
};

using DialResult = Result<std::shared_ptr<WebSocket>, DialError>;

// Dials `url` (ws, wss, http or https; the path and query are the target).
// The socket lives on `executor`; await this from a coroutine running on that
// executor (a strand when its context has several threads). The returned
// WebSocket has no idle timeout set yet.
boost::asio::awaitable<DialResult> dial_web_socket(boost::asio::any_io_executor executor, std::string url,
                                                   DialOptions options);

}  // namespace paddock::ws_client
