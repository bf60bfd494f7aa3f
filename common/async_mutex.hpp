#pragma once
// A FIFO mutex for coroutines on one executor: a socket's writers take turns
// with it, so each write goes out whole. A timer that never expires on its
// own serves as each waiter's condition. An unlocked mutex holds no memory
// beyond itself (a deque would keep 512 bytes): every connection has one.
// Not thread-safe: use it on its executor only.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <vector>

namespace paddock {

class AsyncMutex {
 public:
  explicit AsyncMutex(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  boost::asio::awaitable<void> lock() {
    while (locked_) {
      boost::asio::steady_timer wait(executor_, boost::asio::steady_timer::time_point::max());
      waiters_.push_back(&wait);
      co_await wait.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    locked_ = true;
  }

  void unlock() {
    locked_ = false;
    if (!waiters_.empty()) {
      waiters_.front()->cancel();
      waiters_.erase(waiters_.begin());  // a few waiters at most: a socket's writers
    }
  }

 private:
  boost::asio::any_io_executor executor_;
  std::vector<boost::asio::steady_timer*> waiters_;
  bool locked_ = false;
};

}  // namespace paddock
