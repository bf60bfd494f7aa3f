#pragma once
// A stream layer under Beast's WebSocket that can hold writes: between hold()
// and flush() every write is copied into one buffer and completes at once,
// and flush() hands the buffer to the layer below as one write. A batch of
// small WebSocket messages then costs one TLS record per 16 KiB and one
// system call, not one of each per message. Without hold() writes pass
// straight through.
//
// While holding, the owner may also append() bytes of its own (whole
// WebSocket frames). Beast's own writes (a pong, a keep-alive ping, a close)
// are each one whole frame in one write_some call, so held ones never split
// an appended frame; flush() first waits for a write already passing through,
// and holds what Beast writes while it runs, so nothing ever interleaves with
// the flushed bytes. Reads always pass through.
// Not thread-safe, like the layers around it: use it on its executor.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace paddock {

template <class NextLayer>
class CoalescingStream {
 public:
  using next_layer_type = std::remove_reference_t<NextLayer>;
  using executor_type = typename next_layer_type::executor_type;

  template <class... Args>
  explicit CoalescingStream(Args&&... args)
      : next_(std::forward<Args>(args)...), passed_(next_.get_executor(), boost::asio::steady_timer::time_point::max()) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  next_layer_type& next_layer() noexcept { return next_; }
  const next_layer_type& next_layer() const noexcept { return next_; }

  // Holds every write from now until flush().
  void hold() { holding_ = true; }
  bool holding() const noexcept { return holding_; }
  // Appends bytes to what is held (only while holding) and returns where the
  // copy starts, valid until the next append.
  char* append(std::string_view bytes) {
    const std::size_t at = held_.size();
    held_.append(bytes);
    return held_.data() + at;
  }

  // Writes out what was held (and what is held while this runs) and stops
  // holding. Completes when the bytes reached the layer below.
  boost::asio::awaitable<boost::system::error_code> flush() {
    flushing_ = true;
    holding_ = false;
    while (passing_ > 0) {
      co_await passed_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    boost::system::error_code ec;
    while (!held_.empty() && !ec) {
      sending_.swap(held_);
      auto [e, n] = co_await boost::asio::async_write(next_, boost::asio::buffer(sending_),
                                                      boost::asio::as_tuple(boost::asio::use_awaitable));
      (void)n;
      ec = e;
      sending_.clear();
    }
    held_.clear();  // after a failure nothing more can be written anyway
    // An idle stream keeps no large batch's buffers.
    if (held_.capacity() > kKeptCapacity) std::string().swap(held_);
    if (sending_.capacity() > kKeptCapacity) std::string().swap(sending_);
    flushing_ = false;
    co_return ec;
  }

  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    return next_.async_read_some(buffers, std::forward<ReadHandler>(handler));
  }

  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    return boost::asio::async_initiate<WriteHandler, void(boost::system::error_code, std::size_t)>(
        [this](auto h, const ConstBufferSequence& b) {
          if (!holding_ && !flushing_) {
            ++passing_;
            auto ex = boost::asio::get_associated_executor(h, next_.get_executor());
            next_.async_write_some(
                b, boost::asio::bind_executor(ex, [this, h = std::move(h)](boost::system::error_code ec,
                                                                          std::size_t n) mutable {
                  if (--passing_ == 0) passed_.cancel();
                  std::move(h)(ec, n);
                }));
            return;
          }
          std::size_t n = 0;
          for (auto piece : boost::beast::buffers_range_ref(b)) {
            held_.append(static_cast<const char*>(piece.data()), piece.size());
            n += piece.size();
          }
          // Completes as if the bytes were written, never inside this call.
          auto ex = boost::asio::get_associated_executor(h, next_.get_executor());
          boost::asio::post(ex, boost::beast::bind_front_handler(std::move(h), boost::system::error_code{}, n));
        },
        handler, buffers);
  }

 private:
  static constexpr std::size_t kKeptCapacity = 64 * 1024;

  NextLayer next_;
  boost::asio::steady_timer passed_;  // cancelled when no write passes through
  int passing_ = 0;
  std::string held_;
  std::string sending_;
  bool holding_ = false;
  bool flushing_ = false;
};

// The WebSocket close handshake tears down the layer below.
template <class NextLayer>
void teardown(boost::beast::role_type role, CoalescingStream<NextLayer>& stream, boost::system::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

template <class NextLayer, class TeardownHandler>
void async_teardown(boost::beast::role_type role, CoalescingStream<NextLayer>& stream, TeardownHandler&& handler) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace paddock
