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
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "common/coalescing_stream.hpp"
#include "common/crypto.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <string>

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
  virtual void send(std::string message, bool binary) = 0;
  // Starts a close from outside the handler (server shutdown, revocation).
  virtual void close_soon(websocket::close_reason reason) = 0;
  // Abort without a close handshake.
  virtual void abort() = 0;

  virtual void set_read_limit(std::size_t bytes) = 0;
  // Idle timeout: with keep-alive pings Beast pings at half the interval and
  // gives up when nothing arrives for the whole interval.
  virtual void set_idle_timeout(std::chrono::seconds idle, bool keep_alive_pings) = 0;
  virtual void set_max_queued(std::size_t bytes) = 0;
  virtual websocket::close_reason reason() const = 0;
  virtual bool is_open() const = 0;
};

// The WebSocket stream type over a transport (beast::tcp_stream, an SSL stream).
template <class Transport>
using WebSocketStream = websocket::stream<CoalescingStream<Transport>>;

namespace detail {

template <class NextLayer>
class WebSocketImpl final : public WebSocket {
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
    co_await acquire();
    error_code ec;
    if (closing_) {
      ec = websocket::error::closed;
    } else {
      ws_.binary(binary);
      auto [e, n] = co_await ws_.async_write(data, asio::as_tuple(asio::use_awaitable));
      (void)n;
      ec = e;
    }
    release();
    co_return ec;
  }

  // The batch's frames are made here rather than by Beast, which spends more
  // per message (a composed operation, a completion, a new mask from its
  // generator) than a small message is worth.
  asio::awaitable<error_code> write_batch(std::span<const OutgoingMessage> messages) override {
    co_await acquire();
    error_code ec;
    if (closing_ || !ws_.is_open()) {
      ec = websocket::error::closed;
    } else {
      auto& out = ws_.next_layer();
      out.hold();
      for (const auto& m : messages) append_frame(out, m);
      ec = co_await out.flush();
    }
    release();
    co_return ec;
  }

  asio::awaitable<error_code> close(websocket::close_reason reason) override {
    co_await acquire();
    error_code ec = websocket::error::closed;
    if (!closing_) {
      closing_ = true;
      auto [e] = co_await ws_.async_close(reason, asio::as_tuple(asio::use_awaitable));
      ec = e;
    }
    release();
    co_return ec;
  }

  void send(std::string message, bool binary) override {
    if (closing_) return;
    if (queued_ + message.size() > max_queued_) {
      close_soon({websocket::close_code::policy_error, "reader too slow"});
      return;
    }
    queued_ += message.size();
    auto self = std::static_pointer_cast<WebSocketImpl>(shared_from_this());
    asio::co_spawn(
        ws_.get_executor(),
        [self, m = std::move(message), binary]() -> asio::awaitable<void> {
          co_await self->write(asio::buffer(m), binary);
          self->queued_ -= m.size();
        },
        asio::detached);
  }

  void close_soon(websocket::close_reason reason) override {
    auto self = std::static_pointer_cast<WebSocketImpl>(shared_from_this());
    asio::co_spawn(
        ws_.get_executor(),
        [self, reason]() -> asio::awaitable<void> {
          // A peer that never answers the close is cut off by the WebSocket's
          // handshake timeout (which also bounds the close handshake). The
          // TCP layer's own timer must stay unused under the WebSocket's.
          websocket::stream_base::timeout t{};
          self->ws_.get_option(t);
          if (t.handshake_timeout == websocket::stream_base::none()) {
            t.handshake_timeout = std::chrono::seconds(5);
            self->ws_.set_option(t);
          }
          co_await self->close(reason);
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
  void set_max_queued(std::size_t bytes) override { max_queued_ = bytes; }
  websocket::close_reason reason() const override { return ws_.reason(); }
  bool is_open() const override { return ws_.is_open() && !closing_; }

 private:
  // One unfragmented frame (RFC 6455, 5.2): FIN and the opcode, the length,
  // and from a client a fresh masking key with the payload masked by it.
  void append_frame(CoalescingStream<NextLayer>& out, const OutgoingMessage& m) {
    unsigned char header[14];
    std::size_t size = 0;
    header[size++] = static_cast<unsigned char>(0x80 | (m.binary ? 0x2 : 0x1));
    const std::uint64_t length = m.data.size();
    const unsigned char mask_bit = client_ ? 0x80 : 0x00;
    if (length < 126) {
      header[size++] = static_cast<unsigned char>(mask_bit | length);
    } else if (length <= 0xffff) {
      header[size++] = mask_bit | 126;
      for (int shift = 8; shift >= 0; shift -= 8) header[size++] = static_cast<unsigned char>(length >> shift);
    } else {
      header[size++] = mask_bit | 127;
      for (int shift = 56; shift >= 0; shift -= 8) header[size++] = static_cast<unsigned char>(length >> shift);
    }
    if (!client_) {
      out.append({reinterpret_cast<const char*>(header), size});
      out.append(m.data);
      return;
    }
    unsigned char key[4];
    next_mask_key(key);
    for (unsigned char k : key) header[size++] = k;
    out.append({reinterpret_cast<const char*>(header), size});
    char* payload = out.append(m.data);
    for (std::size_t i = 0; i < m.data.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ key[i & 3]);
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

  // A FIFO async mutex over the write side: a timer that never expires on
  // its own serves as the wait queue's condition.
  asio::awaitable<void> acquire() {
    while (writing_) {
      asio::steady_timer wait(ws_.get_executor(), asio::steady_timer::time_point::max());
      waiters_.push_back(&wait);
      co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    writing_ = true;
  }
  void release() {
    writing_ = false;
    if (!waiters_.empty()) {
      waiters_.front()->cancel();
      waiters_.pop_front();
    }
  }

  WebSocketStream<NextLayer> ws_;
  bool client_;
  std::string keys_;
  std::size_t keys_used_ = 0;
  std::deque<asio::steady_timer*> waiters_;
  bool writing_ = false;
  bool closing_ = false;
  std::size_t queued_ = 0;
  std::size_t max_queued_ = 1024 * 1024;
};

}  // namespace detail

// `role` is the side this end played in the handshake.
template <class NextLayer>
std::shared_ptr<WebSocket> make_web_socket(WebSocketStream<NextLayer> ws, beast::role_type role) {
  return std::make_shared<detail::WebSocketImpl<NextLayer>>(std::move(ws), role);
}

}  // namespace paddock
