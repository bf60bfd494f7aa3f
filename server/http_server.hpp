#pragma once
// The HTTP/1.1 + WebSocket listener: Beast on Asio, one coroutine on its own
// strand per connection, a deadline on every read and write, a body limit,
// a connection limit, and a graceful stop.

#include "common/result.hpp"
#include "common/web_socket.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace paddock::server {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct Peer {
  std::string address;  // remote IP
  bool tls = false;
};

// What a handler answers to a WebSocket upgrade request: either a refusal (an
// ordinary HTTP response, sent before any upgrade) or the function that owns
// the socket once it is open.
struct Upgrade {
  std::optional<HttpResponse> refusal;
  std::function<boost::asio::awaitable<void>(std::shared_ptr<WebSocket>)> run;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on the connection's strand; may block briefly (store access).
  virtual HttpResponse handle(HttpRequest& request, const Peer& peer) = 0;
  virtual Upgrade upgrade(HttpRequest& request, const Peer& peer) = 0;
  // An answer for requests that never reach handle(): body too large, bad
  // framing. Lets the API keep its error format and headers.
  virtual HttpResponse reject(const HttpRequest& request, int status) = 0;
};

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 0;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
  std::size_t body_limit = 1024 * 1024;
  std::size_t header_limit = 16 * 1024;
  std::chrono::seconds read_timeout{15};   // a whole request, headers and body
  std::chrono::seconds write_timeout{15};
  std::chrono::seconds idle_timeout{60};   // between requests on a keep-alive connection
  std::size_t max_connections = 20000;
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpServerOptions options, HttpHandler& handler);
  ~HttpServer();

  // Binds and starts accepting. Returns the bound port (useful with port 0).
  Result<std::uint16_t> start();
  // Stops accepting, lets in-flight requests finish, closes idle connections
  // and WebSockets (1001). `done` runs once every connection has ended or
  // `grace` has passed. Thread-safe.
  void stop(std::chrono::milliseconds grace, std::function<void()> done);

  std::size_t open_connections() const { return connections_.load(); }
  std::uint64_t accepted_connections() const { return accepted_.load(); }

 private:
  class Session;
  boost::asio::awaitable<void> accept_loop();
  void forget(Session* session);

  boost::asio::io_context& io_;
  HttpServerOptions options_;
  HttpHandler& handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex sessions_mutex_;
  std::set<std::shared_ptr<Session>> sessions_;
};

}  // namespace paddock::server
