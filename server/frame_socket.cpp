#include "server/frame_socket.hpp"

#include "common/async_mutex.hpp"
#include "common/ws_frame.hpp"
#include "server/read_buffer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>

namespace paddock::server {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// A batch buffer kept between writes at most this large.
constexpr std::size_t kKeptCapacity = 64 * 1024;
// A message buffer kept between reads at most this large: a connection
// holds its largest message (an agent's snapshot) no longer than it takes to
// read it, thousands of idle agents each.
constexpr std::size_t kKeptMessageCapacity = 512;
// The peer's close must follow ours within this; a TLS close_notify too.
constexpr auto kCloseTimeout = std::chrono::seconds(5);
constexpr auto kShutdownTimeout = std::chrono::seconds(2);
const error_code kProtocolError = boost::system::errc::make_error_code(boost::system::errc::protocol_error);

template <class Stream>
class FrameSocket final : public WebSocket {
 public:
  FrameSocket(Stream stream, std::string_view received)
      : stream_(std::move(stream)), writes_(stream_.get_executor()), watchdog_(stream_.get_executor()) {
    in_.append(received);
  }

  void start_watchdog() {
    auto w = watch(std::static_pointer_cast<FrameSocket>(shared_from_this()));
    asio::co_spawn(stream_.get_executor(), std::move(w), asio::detached);
  }

  asio::any_io_executor get_executor() override { return stream_.get_executor(); }

  asio::awaitable<error_code> read(beast::flat_buffer& buffer) override {
    const auto ec = co_await next_message(true);
    if (ec) co_return ec;
    buffer.commit(asio::buffer_copy(buffer.prepare(message_.size()), asio::buffer(message_)));
    got_text_ = message_text_;
    if (message_.capacity() > kKeptMessageCapacity) {
      std::string().swap(message_);
    } else {
      message_.clear();
    }
    co_return error_code{};
  }

  asio::awaitable<error_code> read_messages(std::vector<OutgoingMessage>& out, std::size_t max_bytes) override {
    auto ec = co_await next_message(true);
    if (ec) co_return ec;
    std::size_t total = 0;
    do {
      total += message_.size();
      got_text_ = message_text_;
      out.push_back({std::move(message_), !message_text_});
      message_ = std::string();
      if (total >= max_bytes) break;
      ec = co_await next_message(false);
    } while (!ec);
    // What stopped the batch (nothing more received, a close, an error)
    // comes back from the next call.
    co_return error_code{};
  }

  bool got_text() const override { return got_text_; }

  asio::awaitable<error_code> write(asio::const_buffer data, bool binary) override {
    co_await writes_.lock();
    error_code ec = websocket::error::closed;
    if (open_for_writes()) {
      const auto opcode = binary ? ws::Opcode::binary : ws::Opcode::text;
      ec = co_await write_frame(opcode, data);
    }
    writes_.unlock();
    co_return ec;
  }

  asio::awaitable<error_code> write_batch(std::span<const OutgoingMessage> messages) override {
    co_await writes_.lock();
    error_code ec = websocket::error::closed;
    if (open_for_writes()) {
      batch_.clear();
      for (const auto& m : messages) {
        unsigned char header[ws::kMaxHeaderSize];
        const auto size = ws::write_header(header, m.binary ? ws::Opcode::binary : ws::Opcode::text, m.data.size());
        batch_.append(reinterpret_cast<const char*>(header), size);
        batch_.append(m.data);
      }
      auto [e, n] = co_await asio::async_write(stream_, asio::buffer(batch_), as_tuple_awaitable);
      (void)n;
      ec = e;
      batch_.clear();
      if (batch_.capacity() > kKeptCapacity) std::string().swap(batch_);
    }
    writes_.unlock();
    co_return ec;
  }

  // Sends our close, then reads (dropping messages) until the peer's close
  // arrives, alongside the owner's reader if it is reading; the watchdog
  // cuts the connection if the peer's close does not come in time.
  asio::awaitable<error_code> close(websocket::close_reason reason) override {
    if (close_sent_ || closed_) co_return websocket::error::closed;
    const auto code = static_cast<std::uint16_t>(reason.code);
    const auto payload = ws::close_payload(code, {reason.reason.data(), reason.reason.size()});
    const auto failed = co_await send_control(ws::Opcode::close, payload);
    // `closed`: another close went first (a relay's and a revocation's, say);
    // its handshake is awaited all the same.
    if (failed && failed != websocket::error::closed) {
      abort();
      co_return failed;
    }
    while (!closed_) {
      const auto ec = co_await next_message(true);
      if (ec) break;
      message_.clear();
    }
    co_return error_code{};
  }

  void close_soon(websocket::close_reason reason) override {
    // Once is enough: a peer that reads nothing makes every later send ask
    // again, and each ask would wait behind the stuck write.
    if (std::exchange(close_requested_, true)) return;
    auto self = std::static_pointer_cast<FrameSocket>(shared_from_this());
    auto close_it = [self, reason]() -> asio::awaitable<void> { co_await self->close(reason); };
    asio::co_spawn(stream_.get_executor(), std::move(close_it), asio::detached);
  }

  void abort() override {
    if (closed_) return;
    closed_ = true;
    if (!failure_) failure_ = websocket::error::closed;
    watchdog_.cancel();
    for (auto* waiter : read_waiters_) waiter->cancel();
    read_waiters_.clear();
    error_code ignored;
    auto& tcp = beast::get_lowest_layer(stream_);
    tcp.socket().shutdown(asio::socket_base::shutdown_both, ignored);
    tcp.close();
  }

  void set_read_limit(std::size_t bytes) override { read_limit_ = bytes; }
  void set_idle_timeout(std::chrono::seconds idle, bool keep_alive_pings) override {
    idle_ = idle;
    keep_alive_ = keep_alive_pings;
    watchdog_.cancel();  // to wake on the new schedule
  }
  websocket::close_reason reason() const override { return reason_; }
  bool is_open() const override { return open_for_writes() && !close_requested_; }

 private:
  enum class Step { message, need_more, control, malformed, too_big };

  bool open_for_writes() const { return !closed_ && !close_sent_; }

  // The next whole message into message_, answering control frames on the
  // way. Without `may_wait` it only looks at what was already received
  // (would_block when that holds no whole message).
  asio::awaitable<error_code> next_message(bool may_wait) {
    for (;;) {
      if (failure_) co_return failure_;
      switch (parse()) {
        case Step::message:
          co_return error_code{};
        case Step::control: {
          const auto ec = co_await on_control();
          if (ec) co_return ec;
          continue;
        }
        case Step::malformed:
          co_return co_await fail(websocket::close_code::protocol_error, why_, kProtocolError);
        case Step::too_big:
          co_return co_await fail(websocket::close_code::too_big, "message too big", websocket::error::message_too_big);
        case Step::need_more:
          break;
      }
      if (!may_wait) co_return asio::error::would_block;
      const auto ec = co_await receive();
      if (ec) co_return ec;
    }
  }

  // One read from the transport into in_. Readers take turns: close() may
  // read alongside the owner's reader; one that waited for another's read
  // gets the socket's failure, if any, and parses what that read brought.
  asio::awaitable<error_code> receive() {
    if (reading_) {
      // Someone else's read will bring the bytes; wait for it to finish.
      while (reading_ && !closed_) {
        asio::steady_timer wait(stream_.get_executor(), Clock::time_point::max());
        read_waiters_.push_back(&wait);
        co_await wait.async_wait(as_tuple_awaitable);
      }
      co_return failure_;
    }
    reading_ = true;
    auto [ec, n] = co_await stream_.async_read_some(in_.space(), as_tuple_awaitable);
    reading_ = false;
    for (auto* waiter : read_waiters_) waiter->cancel();
    read_waiters_.clear();
    if (n > 0) {
      in_.received(n);
      last_received_ = Clock::now();
      ping_unanswered_ = false;
    }
    if (ec) {  // the peer hung up, or the connection broke
      if (!failure_) failure_ = ec;
      abort();
      co_return failure_;
    }
    co_return error_code{};
  }

  // Parses what in_ holds: the rest of the current data frame into message_,
  // then further frames, up to a whole message or a control frame.
  Step parse() {
    for (;;) {
      if (!in_frame_) {
        const std::string_view bytes = in_.view();
        const auto state = ws::parse_header(bytes, frame_, why_);
        if (state == ws::ParseState::need_more) return Step::need_more;
        if (state == ws::ParseState::malformed) return Step::malformed;
        if (!frame_.masked) {
          why_ = "unmasked frame from a client";
          return Step::malformed;
        }
        if (ws::is_control(frame_.opcode)) {
          if (bytes.size() < frame_.size + frame_.length) return Step::need_more;
          control_.assign(bytes.substr(frame_.size, static_cast<std::size_t>(frame_.length)));
          ws::apply_mask(control_.data(), control_.size(), frame_.key, 0);
          in_.consume(frame_.size + static_cast<std::size_t>(frame_.length));
          return Step::control;
        }
        const bool continuation = frame_.opcode == ws::Opcode::continuation;
        if (continuation != in_message_) {
          why_ = continuation ? "continuation frame outside a message" : "new message inside a fragmented one";
          return Step::malformed;
        }
        if (frame_.length > read_limit_ - message_.size()) return Step::too_big;
        if (!continuation) message_text_ = frame_.opcode == ws::Opcode::text;
        in_message_ = true;
        in_frame_ = true;
        frame_read_ = 0;
        in_.consume(frame_.size);
      }
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(in_.size(), frame_.length - frame_read_));
      const auto at = message_.size();
      message_.append(in_.view().data(), take);
      ws::apply_mask(message_.data() + at, take, frame_.key, frame_read_);
      in_.consume(take);
      frame_read_ += take;
      if (frame_read_ < frame_.length) return Step::need_more;
      in_frame_ = false;
      if (frame_.fin) {
        in_message_ = false;
        return Step::message;
      }
    }
  }

  asio::awaitable<error_code> on_control() {
    switch (frame_.opcode) {
      case ws::Opcode::ping:
        pong(control_);
        co_return error_code{};
      case ws::Opcode::close:
        co_return co_await on_close();
      default:  // a pong: receiving it was the point
        co_return error_code{};
    }
  }

  // The peer's close: remembered as the reason, answered with the same code
  // unless we started the close, then the transport is shut down.
  asio::awaitable<error_code> on_close() {
    std::uint16_t code = 0;
    std::string text;
    if (!ws::parse_close_payload(control_, code, text)) {
      co_return co_await fail(websocket::close_code::protocol_error, "malformed close frame", kProtocolError);
    }
    reason_ = websocket::close_reason(static_cast<websocket::close_code>(code == 1005 ? 0 : code), text);
    // Nothing is read after the peer's close: another reader (a close()
    // waiting for this frame) must not start a read under the TLS shutdown.
    failure_ = websocket::error::closed;
    if (!close_sent_) {
      const auto echo = code == 1005 ? std::string() : ws::close_payload(code, {});
      co_await send_control(ws::Opcode::close, echo);
    }
    co_await shut_down();
    co_return failure_;
  }

  // A broken rule: a close with the reason, and the connection ends. What
  // the peer sends after the broken frame cannot be parsed, so its close is
  // not awaited.
  asio::awaitable<error_code> fail(websocket::close_code code, std::string why, error_code ec) {
    failure_ = ec;
    if (!close_sent_ && !closed_) {
      const auto payload = ws::close_payload(static_cast<std::uint16_t>(code), why);
      co_await send_control(ws::Opcode::close, payload);
    }
    co_await shut_down();
    failure_ = ec;
    co_return ec;
  }

  // At most one pong waits to be written: the latest ping's.
  void pong(std::string payload) {
    if (!open_for_writes()) return;
    const bool scheduled = pending_pong_.has_value();
    pending_pong_ = std::move(payload);
    if (scheduled) return;
    auto self = std::static_pointer_cast<FrameSocket>(shared_from_this());
    auto write_pong = [self]() -> asio::awaitable<void> {
      co_await self->writes_.lock();
      auto latest = std::move(self->pending_pong_).value_or(std::string());
      self->pending_pong_.reset();
      if (self->open_for_writes()) {
        const auto data = asio::buffer(latest);
        co_await self->write_frame(ws::Opcode::pong, data);
      }
      self->writes_.unlock();
    };
    asio::co_spawn(stream_.get_executor(), std::move(write_pong), asio::detached);
  }

  // A ping or a close, after the writes before it (websocket::error::closed
  // when a close went before). Once a close is sent, nothing more is
  // written, and the peer's close is due within kCloseTimeout of ours
  // reaching the transport: a slow reader may take longer to get there,
  // and the idle timeout bounds a stalled one.
  asio::awaitable<error_code> send_control(ws::Opcode opcode, std::string payload) {
    co_await writes_.lock();
    error_code ec = websocket::error::closed;
    if (open_for_writes()) {
      if (opcode == ws::Opcode::close) close_sent_ = true;
      const auto data = asio::buffer(payload);
      ec = co_await write_frame(opcode, data);
      if (opcode == ws::Opcode::close) {
        close_deadline_ = Clock::now() + kCloseTimeout;
        watchdog_.cancel();  // to watch the deadline
      }
    }
    writes_.unlock();
    co_return ec;
  }

  // One unfragmented frame, unmasked as a server's are, written whole. The
  // caller holds the write lock.
  asio::awaitable<error_code> write_frame(ws::Opcode opcode, asio::const_buffer payload) {
    unsigned char header[ws::kMaxHeaderSize];
    const auto size = ws::write_header(header, opcode, payload.size());
    const std::array<asio::const_buffer, 2> frame{asio::buffer(header, size), payload};
    auto [ec, n] = co_await asio::async_write(stream_, frame, as_tuple_awaitable);
    (void)n;
    co_return ec;
  }

  // After the close handshake the server ends the connection (RFC 6455,
  // 7.1.1): a TLS close_notify first, then TCP, gently: it stops sending and
  // takes what the peer still sends until the peer hangs up, so the peer
  // reads everything before our FIN rather than a reset. Bounded in time.
  asio::awaitable<void> shut_down() {
    if (closed_) co_return;
    auto& tcp = beast::get_lowest_layer(stream_);
    if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
      // Under the write lock: the close_notify goes after our last record.
      co_await writes_.lock();
      tcp.expires_after(kShutdownTimeout);
      co_await stream_.async_shutdown(as_tuple_awaitable);
      writes_.unlock();
    }
    if (reading_ || closed_) {  // another read is pending: nothing more to wait for
      abort();
      co_return;
    }
    error_code ignored;
    tcp.socket().shutdown(asio::socket_base::shutdown_send, ignored);
    tcp.expires_after(kShutdownTimeout);
    std::array<char, 512> scratch;
    for (;;) {
      auto [ec, n] = co_await tcp.async_read_some(asio::buffer(scratch), as_tuple_awaitable);
      (void)n;
      if (ec) break;
    }
    abort();
  }

  // Cuts a connection that was silent too long (after a keep-alive ping at
  // half the time), or whose close handshake did not finish in time. Holds
  // the socket weakly: a socket nobody uses any more is simply destroyed.
  static asio::awaitable<void> watch(std::weak_ptr<FrameSocket> weak) {
    for (;;) {
      auto self = weak.lock();
      if (!self || self->closed_) co_return;
      const auto now = Clock::now();
      auto next = Clock::time_point::max();
      if (self->close_deadline_ != Clock::time_point{}) {
        if (now >= self->close_deadline_) {
          self->abort();
          co_return;
        }
        next = self->close_deadline_;
      } else if (self->idle_.count() > 0) {
        const auto silent = now - self->last_received_;
        const auto half = std::chrono::duration_cast<Clock::duration>(self->idle_) / 2;
        if (silent >= 2 * half) {
          self->failure_ = beast::error::timeout;
          self->abort();
          co_return;
        }
        if (silent >= half && self->keep_alive_ && !self->ping_unanswered_) {
          self->ping_unanswered_ = true;
          auto ping = [self]() -> asio::awaitable<void> { co_await self->send_control(ws::Opcode::ping, {}); };
          asio::co_spawn(self->stream_.get_executor(), std::move(ping), asio::detached);
        }
        next = self->last_received_ + (silent >= half ? 2 * half : half);
      }
      auto& timer = self->watchdog_;
      timer.expires_at(next);
      self.reset();  // the wait must not keep the socket alive
      co_await timer.async_wait(as_tuple_awaitable);
    }
  }

  Stream stream_;
  AsyncMutex writes_;
  asio::steady_timer watchdog_;

  // Reading.
  ReadBuffer in_;
  std::size_t read_limit_ = 1024 * 1024;
  bool reading_ = false;
  std::vector<asio::steady_timer*> read_waiters_;
  ws::FrameHeader frame_;
  std::uint64_t frame_read_ = 0;  // payload bytes of frame_ consumed
  bool in_frame_ = false;         // frame_'s payload is being read
  bool in_message_ = false;       // a data message is being assembled
  bool message_text_ = false;
  std::string message_;
  std::string control_;
  std::string why_;
  bool got_text_ = false;

  // Writing.
  std::string batch_;
  std::optional<std::string> pending_pong_;

  // Liveness and the close.
  std::chrono::seconds idle_{60};
  bool keep_alive_ = true;
  Clock::time_point last_received_ = Clock::now();
  bool ping_unanswered_ = false;
  bool close_sent_ = false;
  Clock::time_point close_deadline_{};  // set once our close is written
  bool close_requested_ = false;         // by close_soon()
  bool closed_ = false;
  error_code failure_;
  websocket::close_reason reason_;
};

template <class Stream>
std::shared_ptr<WebSocket> make(Stream stream, std::string_view received) {
  auto socket = std::make_shared<FrameSocket<Stream>>(std::move(stream), received);
  socket->start_watchdog();
  return socket;
}

}  // namespace

std::shared_ptr<WebSocket> make_frame_socket(beast::tcp_stream stream, std::string_view received) {
  return make(std::move(stream), received);
}

std::shared_ptr<WebSocket> make_frame_socket(TlsStream stream, std::string_view received) {
  return make(std::move(stream), received);
}

}  // namespace paddock::server
