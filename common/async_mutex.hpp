#pragma once
// A FIFO mutex for coroutines on one executor: a socket's writers take turns
// with it, so each write goes out whole and in the order they asked. A timer
// that never expires on its own serves as each waiter's condition. An
// unlocked mutex holds no memory beyond itself (a deque would keep 512
// bytes): every connection has one.
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
    if (!locked_) {
      locked_ = true;
      co_return;
    }
    Waiter me(*this);
    waiters_.push_back(&me);
    while (!me.granted) co_await me.timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }

  // Hands the lock straight to the longest waiter: nobody who asks later can
  // take it while that waiter is still to be resumed.
  void unlock() {
    if (waiters_.empty()) {
      locked_ = false;
      return;
    }
    Waiter* next = waiters_.front();
    waiters_.erase(waiters_.begin());  // a few waiters at most: a socket's writers
    next->granted = true;
    next->timer.cancel();
  }

 private:
  struct Waiter {
    explicit Waiter(AsyncMutex& m)
        : mutex(m), timer(m.executor_, boost::asio::steady_timer::time_point::max()) {}
    // A wait that ends some other way (its coroutine unwound) leaves the queue.
    ~Waiter() {
      if (!granted) std::erase(mutex.waiters_, this);
    }
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    AsyncMutex& mutex;
    boost::asio::steady_timer timer;
    bool granted = false;
  };

  boost::asio::any_io_executor executor_;
  std::vector<Waiter*> waiters_;
  bool locked_ = false;
};

}  // namespace paddock
