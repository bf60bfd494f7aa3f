#pragma once
// A one-waiter wake-up for coroutines on one executor: the interruptible wait
// of the agent's services and of the server's stream relays. A notify()
// before the wait is not lost.
// Not thread-safe: use it on its executor only.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

namespace paddock {

class AsyncEvent {
 public:
  explicit AsyncEvent(boost::asio::any_io_executor executor) : timer_(std::move(executor)) {}

  void notify() {
    pending_ = true;
    timer_.cancel();
  }

  // True when notified, false when `timeout` passed first.
  boost::asio::awaitable<bool> wait_for(std::chrono::steady_clock::duration timeout) {
    if (!pending_) {
      timer_.expires_after(timeout);
      co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    const bool notified = pending_;
    pending_ = false;
    co_return notified;
  }

  boost::asio::awaitable<void> wait() {
    // co_await only as a whole statement or initializer, with named
    // arguments: GCC 12 miscompiles some co_await subexpressions.
    const std::chrono::steady_clock::duration day = std::chrono::hours(24);
    for (;;) {
      const bool notified = co_await wait_for(day);
      if (notified) co_return;
    }
  }

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
};

}  // namespace paddock
