#include "server/http_server.hpp"

#include "server/frame_socket.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>

namespace paddock::server {

namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
constexpr auto as_tuple_awaitable = asio::as_tuple(use_awaitable);

namespace {

// Lingering close (RFC 9112 §9.6): a client still sending the body we
// refused would otherwise get a reset instead of our answer. Drains what it
// sends until it hangs up, bounded in time and bytes. A coroutine of its
// own, so that its buffer is no part of every connection's frame.
template <class Stream>
asio::awaitable<void> linger(Stream& stream, std::size_t limit) {
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
  std::array<char, 16 * 1024> sink;
  std::size_t drained = 0;
  while (drained < limit) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), as_tuple_awaitable);
    if (ec) break;
    drained += n;
  }
}

}  // namespace

// A connection. The coroutine owns the stream; Session is the handle the
// server keeps so stop() can reach idle connections and open WebSockets.
class HttpServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer& server, asio::any_io_executor strand) : server_(server), strand_(std::move(strand)) {}

  asio::any_io_executor strand() const { return strand_; }

  // On the strand: ends the connection as soon as it is not mid-request.
  void stop() {
    stopping_ = true;
    if (auto ws = ws_.lock()) {
      ws->close_soon({websocket::close_code::going_away, "server shutting down"});
    } else if (idle_ && cancel_) {
      cancel_();
    }
  }

  // The connection's life: requests, then a WebSocket if one is asked for.
  // What each step needs lives in that step's frame, ended before the next:
  // thousands of agents each hold only the WebSocket's frames and this one.
  template <class Stream>
  asio::awaitable<void> run(Stream& stream, Peer peer);

 private:
  struct Opened {
    std::shared_ptr<WebSocket> socket;
    decltype(Upgrade::run) run;
  };

  // Answers requests until the connection ends (then it is closed) or one
  // asks for an upgrade: that one is returned, with the bytes read past it
  // left in `buffer`.
  template <class Stream>
  asio::awaitable<std::optional<HttpRequest>> serve(Stream& stream, const Peer& peer, beast::flat_buffer& buffer);

  // Answers an upgrade: a refusal (then the connection is closed as after
  // any last response, and nothing returned), or the handshake and, once it
  // succeeded, the socket with the handler's run for it.
  template <class Stream>
  asio::awaitable<std::optional<Opened>> accept_websocket(Stream& stream, HttpRequest request, const Peer& peer,
                                                           beast::flat_buffer& buffer);

  // Our side of the end: TLS's close_notify (bounded so a silent peer cannot
  // hold us), then TCP's.
  template <class Stream>
  static asio::awaitable<void> close(Stream& stream);

  HttpServer& server_;
  asio::any_io_executor strand_;
  bool stopping_ = false;
  bool idle_ = true;
  std::function<void()> cancel_;
  std::weak_ptr<WebSocket> ws_;
};

template <class Stream>
asio::awaitable<void> HttpServer::Session::run(Stream& stream, Peer peer) {
  beast::flat_buffer buffer;
  std::optional<HttpRequest> upgrade = co_await serve(stream, peer, buffer);
  if (!upgrade) co_return;
  std::optional<Opened> opened = co_await accept_websocket(stream, std::move(*upgrade), peer, buffer);
  upgrade.reset();
  if (opened) co_await opened->run(std::move(opened->socket));
}

template <class Stream>
asio::awaitable<std::optional<HttpRequest>> HttpServer::Session::serve(Stream& stream, const Peer& peer,
                                                                      beast::flat_buffer& buffer) {
  auto& tcp_layer = beast::get_lowest_layer(stream);
  cancel_ = [&tcp_layer] { tcp_layer.cancel(); };
  // However serving ends, stop() must no longer reach the stream: it may be
  // gone by the time a stop posted before the end runs.
  struct Forget {
    Session& session;
    ~Forget() {
      session.cancel_ = nullptr;
      session.idle_ = false;
    }
  } forget{*this};
  const auto& opts = server_.options_;
  bool first = true;

  while (!stopping_) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(opts.body_limit);
    parser.header_limit(static_cast<std::uint32_t>(opts.header_limit));

    // Wait for the first byte of the next request up to the idle timeout,
    // then give the whole request one read deadline: a client trickling its
    // headers a byte at a time is cut off, and holds no thread meanwhile.
    // A new connection's first request has the read deadline from the start.
    // Until its first byte arrives a connection is idle: stop() ends it.
    idle_ = true;
    if (buffer.size() == 0) {
      tcp_layer.expires_after(first ? opts.read_timeout : opts.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), as_tuple_awaitable);
      if (ec) break;
      buffer.commit(n);
    }
    idle_ = false;
    if (!first) tcp_layer.expires_after(opts.read_timeout);
    first = false;
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, as_tuple_awaitable);
    (void)n;
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset || ec == asio::error::eof) {
      break;
    }
    if (ec) {
      // Framing errors: answer once and close; the parser state is unusable.
      int status = ec == http::error::body_limit ? 413 : ec == http::error::header_limit ? 431 : 400;
      HttpResponse res = server_.handler_.reject(parser.get(), status);
      res.keep_alive(false);
      res.prepare_payload();
      tcp_layer.expires_after(opts.write_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, as_tuple_awaitable);
      (void)wn;
      if (!wec) co_await linger(stream, 4 * opts.body_limit);
      break;
    }

    HttpRequest request = parser.release();
    if (websocket::is_upgrade(request)) co_return request;

    HttpResponse res = server_.handler_.handle(request, peer);
    const bool keep_alive = res.keep_alive() && !stopping_;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    tcp_layer.expires_after(opts.write_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, as_tuple_awaitable);
    (void)wn;
    if (wec || !keep_alive) break;
  }
  co_await close(stream);
  co_return std::nullopt;
}

template <class Stream>
asio::awaitable<void> HttpServer::Session::close(Stream& stream) {
  auto& tcp_layer = beast::get_lowest_layer(stream);
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    tcp_layer.expires_after(std::chrono::seconds(2));
    co_await stream.async_shutdown(as_tuple_awaitable);
  }
  error_code ignored;
  tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

template <class Stream>
asio::awaitable<std::optional<HttpServer::Session::Opened>> HttpServer::Session::accept_websocket(
    Stream& stream, HttpRequest request, const Peer& peer, beast::flat_buffer& buffer) {
  auto& tcp_layer = beast::get_lowest_layer(stream);
  Upgrade up = server_.handler_.upgrade(request, peer);
  if (up.refusal || !up.run) {
    HttpResponse res = up.refusal ? std::move(*up.refusal) : server_.handler_.reject(request, 400);
    res.keep_alive(false);
    res.prepare_payload();
    tcp_layer.expires_after(server_.options_.write_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, as_tuple_awaitable);
    (void)wn;
    if (!wec) co_await close(stream);
    co_return std::nullopt;
  }
  tcp_layer.expires_never();
  {
    // Beast answers the handshake; the frames after it are the FrameSocket's.
    websocket::stream<Stream&> handshake(stream);
    handshake.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "paddock");
    }));
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = websocket::stream_base::none();
    handshake.set_option(t);
    auto [aec] = co_await handshake.async_accept(request, as_tuple_awaitable);
    if (aec) co_return std::nullopt;
  }
  // From here the connection lives as long as the socket, thousands of them
  // idle: the HTTP read buffer is given back first.
  const std::string_view received(static_cast<const char*>(buffer.data().data()), buffer.size());
  auto socket = make_frame_socket(std::move(stream), received);
  buffer = beast::flat_buffer();
  ws_ = socket;
  cancel_ = nullptr;
  if (stopping_) socket->close_soon({websocket::close_code::going_away, "server shutting down"});
  co_return Opened{std::move(socket), std::move(up.run)};
}

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, HttpHandler& handler)
    : io_(io), options_(std::move(options)), handler_(handler), acceptor_(io) {
  if (options_.tls) TlsStream::prepare_context(options_.tls->native_handle());
}

HttpServer::~HttpServer() = default;

Result<std::uint16_t> HttpServer::start() {
  error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return fail(Errc::invalid_input, "cannot listen on '" + options_.host + "': not an IP address");
  tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(Errc::io, "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
                              ec.message());
  }
  asio::co_spawn(io_, accept_loop(), asio::detached);
  return acceptor_.local_endpoint().port();
}

asio::awaitable<void> HttpServer::accept_loop() {
  while (!stopping_) {
    auto strand = asio::make_strand(io_);
    auto [ec, socket] = co_await acceptor_.async_accept(strand, as_tuple_awaitable);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) break;
      // Out of descriptors and the like: pause instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(as_tuple_awaitable);
      continue;
    }
    ++accepted_;
    if (connections_.load() >= options_.max_connections) {
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    Peer peer;
    peer.address = socket.remote_endpoint(ec).address().to_string();
    peer.tls = options_.tls != nullptr;

    auto session = std::make_shared<Session>(*this, strand);
    {
      std::lock_guard lock(sessions_mutex_);
      sessions_.insert(session);
    }
    ++connections_;
    auto run = [this, session, peer, s = std::move(socket)]() mutable -> asio::awaitable<void> {
      if (options_.tls) {
        TlsStream stream(beast::tcp_stream(std::move(s)), options_.tls->native_handle());
        stream.next_layer().expires_after(options_.read_timeout);
        auto [hec] = co_await stream.async_handshake(as_tuple_awaitable);
        if (!hec) co_await session->run(stream, peer);
      } else {
        beast::tcp_stream stream(std::move(s));
        co_await session->run(stream, peer);
      }
    };
    asio::co_spawn(strand, std::move(run), [this, session](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("connection ended by an exception: {}", ex.what());
        }
      }
      forget(session.get());
    });
  }
}

void HttpServer::forget(Session* session) {
  std::lock_guard lock(sessions_mutex_);
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->get() == session) {
      sessions_.erase(it);
      break;
    }
  }
  --connections_;
}

void HttpServer::stop(std::chrono::milliseconds grace, std::function<void()> done) {
  asio::post(io_, [this, grace, done = std::move(done)]() mutable {
    stopping_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    std::vector<std::shared_ptr<Session>> sessions;
    {
      std::lock_guard lock(sessions_mutex_);
      sessions.assign(sessions_.begin(), sessions_.end());
    }
    for (auto& s : sessions) asio::post(s->strand(), [s] { s->stop(); });
    // Wait for connections to drain, polling cheaply, up to the grace period.
    auto deadline = std::chrono::steady_clock::now() + grace;
    auto timer = std::make_shared<asio::steady_timer>(io_);
    auto check = std::make_shared<std::function<void()>>();
    *check = [this, timer, deadline, done, check]() {
      if (connections_.load() == 0 || std::chrono::steady_clock::now() >= deadline) {
        done();
        *check = nullptr;  // break the self-reference
        return;
      }
      timer->expires_after(std::chrono::milliseconds(20));
      timer->async_wait([check](error_code) { if (*check) (*check)(); });
    };
    (*check)();
  });
}

}  // namespace paddock::server
