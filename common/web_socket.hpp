#pragma once
// One interface over Beast WebSocket streams (plain or TLS, client or server
// side) so handlers and tunnels are written once. Writes are serialized
// internally: any number of coroutines on the socket's strand may write; the
// reader is single. Every method must be called on the socket's executor.
// Under the WebSocket sits a CoalescingStream, so that write_batch() sends
// many small messages with one write to the transport.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "common/async_mutex.hpp"
#include "common/coalescing_stream.hpp"
#include "common/crypto.hpp"
#include "common/ws_frame.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace paddock {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using error_code = boost::system::error_code;

struct OutgoingMessage {
  std::string data;
  bool binary = true;
};

class WebSocket : public std::enable_shared_from_this<WebSocket> {
 public:
  virtual ~WebSocket() = default;

  virtual asio::any_io_executor get_executor() = 0;
  // Reads one whole message. got_text() tells its kind.
  virtual asio::awaitable<error_code> read(beast::flat_buffer& buffer) = 0;
  virtual bool got_text() const = 0;
  // Reads one whole message, then every further whole message already
  // received (never waiting for more) until about `max_bytes` are gathered,
  // and appends them to `out`: a relay's read of a burst of small messages.
  virtual asio::awaitable<error_code> read_messages(std::vector<OutgoingMessage>& out, std::size_t max_bytes) {
    (void)max_bytes;
    beast::flat_buffer buffer;
    const auto ec = co_await read(buffer);
    if (!ec) out.push_back({beast::buffers_to_string(buffer.data()), !got_text()});
    co_return ec;
  }
  // Writes one message; waits for earlier writes first. Completing means the
  // bytes reached the kernel: awaiting it is back-pressure.
  virtual asio::awaitable<error_code> write(asio::const_buffer data, bool binary) = 0;
  // Writes the messages in order, each one whole, with as few writes to the
  // transport as their total size allows. Same back-pressure as write().
  virtual asio::awaitable<error_code> write_batch(std::span<const OutgoingMessage> messages) = 0;
  // Sends a close frame (after queued writes) and waits for the peer's.
  virtual asio::awaitable<error_code> close(websocket::close_reason reason) = 0;
  // Fire-and-forget: queues a message unless more than `max_queued` bytes are
  // already waiting, in which case the peer is too slow and is closed with 1008.
  void send(std::string message, bool binary) {
    if (!is_open()) return;
    if (queued_ + message.size() > max_queued_) {
      close_soon({websocket::close_code::policy_error, "reader too slow"});
      return;
    }
    queued_ += message.size();
    auto write_it = [self = shared_from_this(), m = std::move(message), binary]() -> asio::awaitable<void> {
      co_await self->write(asio::buffer(m), binary);
      self->queued_ -= m.size();
    };
    asio::co_spawn(get_executor(), std::move(write_it), asio::detached);
  }
  // Starts a close from outside the handler (server shutdown, revocation).
  virtual void close_soon(websocket::close_reason reason) = 0;
  // Abort without a close handshake.
  virtual void abort() = 0;

  virtual void set_read_limit(std::size_t bytes) = 0;
  // Idle timeout: with keep-alive pings Beast pings at half the interval and
  // gives up when nothing arrives for the whole interval.
  virtual void set_idle_timeout(std::chrono::seconds idle, bool keep_alive_pings) = 0;
  void set_max_queued(std::size_t bytes) { max_queued_ = bytes; }
  virtual websocket::close_reason reason() const = 0;
  virtual bool is_open() const = 0;

 private:
  std::size_t queued_ = 0;  // bytes send() has queued and not yet written
  std::size_t max_queued_ = 1024 * 1024;
};

// The WebSocket stream type over a transport (beast::tcp_stream, an SSL stream).
template <class Transport>
using WebSocketStream = websocket::stream<CoalescingStream<Transport>>;

namespace detail {

template <class NextLayer>
class WebSocketImpl final : public WebSocket {
  static constexpr std::chrono::seconds kCloseTimeout{5};

 public:
  WebSocketImpl(WebSocketStream<NextLayer> ws, beast::role_type role)
      : ws_(std::move(ws)), client_(role == beast::role_type::client) {
    ws_.auto_fragment(false);
    ws_.read_message_max(1024 * 1024);
  }

  asio::any_io_executor get_executor() override { return ws_.get_executor(); }

  asio::awaitable<error_code> read(beast::flat_buffer& buffer) override {
    auto [ec, n] = co_await ws_.async_read(buffer, asio::as_tuple(asio::use_awaitable));
    (void)n;
    co_return ec;
  }
  bool got_text() const override { return ws_.got_text(); }

  asio::awaitable<error_code> write(asio::const_buffer data, bool binary) override {
    co_await writes_.lock();
    error_code ec;
    if (closing_) {
      ec = websocket::error::closed;
    } else {
      ws_.binary(binary);
      auto [e, n] = co_await ws_.async_write(data, asio::as_tuple(asio::use_awaitable));
      (void)n;
      ec = e;
    }
    writes_.unlock();
    co_return ec;
  }

  // The batch's frames are made here rather than by Beast, which spends more
  // per message (a composed operation, a completion, a new mask from its
  // generator) than a small message is worth.
  asio::awaitable<error_code> write_batch(std::span<const OutgoingMessage> messages) override {
    co_await writes_.lock();
    error_code ec;
    if (closing_ || !ws_.is_open()) {
      ec = websocket::error::closed;
    } else {
      auto& out = ws_.next_layer();
      out.hold();
      for (const auto& m : messages) append_frame(out, m);
      ec = co_await out.flush();
    }
    writes_.unlock();
    co_return ec;
  }

  asio::awaitable<error_code> close(websocket::close_reason reason) override {
    co_await writes_.lock();
    error_code ec = websocket::error::closed;
    if (!closing_) {
      closing_ = true;
      auto [e] = co_await ws_.async_close(reason, asio::as_tuple(asio::use_awaitable));
      ec = e;
    }
    writes_.unlock();
    co_return ec;
  }

  void close_soon(websocket::close_reason reason) override {
    auto self = std::static_pointer_cast<WebSocketImpl>(shared_from_this());
    // The close waits for the write in progress, and a peer that reads
    // nothing holds that write forever; a peer may also never answer the
    // close. Either way the connection is cut off if the close has not ended
    // in time.
    auto deadline = std::make_shared<asio::steady_timer>(ws_.get_executor(), kCloseTimeout);
    deadline->async_wait([self](error_code ec) {
      if (!ec) self->abort();
    });
    asio::co_spawn(
        ws_.get_executor(),
        [self, reason, deadline]() -> asio::awaitable<void> {
          co_await self->close(reason);
          deadline->cancel();
        },
        asio::detached);
  }

  void abort() override {
    closing_ = true;
    error_code ignored;
    auto& transport = beast::get_lowest_layer(ws_);
    if constexpr (requires { transport.socket(); }) {
      transport.socket().shutdown(asio::socket_base::shutdown_both, ignored);
    }
    transport.close();
  }

  void set_read_limit(std::size_t bytes) override { ws_.read_message_max(bytes); }
  void set_idle_timeout(std::chrono::seconds idle, bool keep_alive_pings) override {
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = idle;
    t.keep_alive_pings = keep_alive_pings;
    ws_.set_option(t);
  }
  websocket::close_reason reason() const override { return ws_.reason(); }
  bool is_open() const override { return ws_.is_open() && !closing_; }

 private:
  // One unfragmented frame (RFC 6455, 5.2), from a client masked by a
  // fresh key.
  void append_frame(CoalescingStream<NextLayer>& out, const OutgoingMessage& m) {
    unsigned char header[ws::kMaxHeaderSize];
    const auto opcode = m.binary ? ws::Opcode::binary : ws::Opcode::text;
    if (!client_) {
      out.append({reinterpret_cast<const char*>(header), ws::write_header(header, opcode, m.data.size())});
      out.append(m.data);
      return;
    }
    unsigned char key[4];
    next_mask_key(key);
    out.append({reinterpret_cast<const char*>(header), ws::write_header(header, opcode, m.data.size(), key)});
    char* payload = out.append(m.data);
    ws::apply_mask(payload, m.data.size(), key, 0);
  }

  // Masking keys come from OpenSSL's generator, drawn a block at a time
  // (only by clients: a server's socket never holds one).
  void next_mask_key(unsigned char key[4]) {
    if (keys_used_ + 4 > keys_.size()) {
      keys_ = crypto::random_bytes(1024);
      keys_used_ = 0;
    }
    std::memcpy(key, keys_.data() + keys_used_, 4);
    keys_used_ += 4;
  }

  WebSocketStream<NextLayer> ws_;
  bool client_;
  std::string keys_;
  std::size_t keys_used_ = 0;
  AsyncMutex writes_{ws_.get_executor()};
  bool closing_ = false;
};

}  // namespace detail

// `role` is the side this end played in the handshake.
template <class NextLayer>
std::shared_ptr<WebSocket> make_web_socket(WebSocketStream<NextLayer> ws, beast::role_type role) {
  return std::make_shared<detail::WebSocketImpl<NextLayer>>(std::move(ws), role);
}

}  // namespace paddock
