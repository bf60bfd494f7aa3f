#include "common/async_mutex.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <string>

namespace paddock {
namespace {

namespace asio = boost::asio;

// Takes the lock, notes its name, then yields once before letting go, so
// the others queue up behind it.
asio::awaitable<void> take(AsyncMutex& mutex, std::string& order, char name) {
  co_await mutex.lock();
  order += name;
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  mutex.unlock();
}

TEST(AsyncMutexTest, WaitersGetTheLockInTheOrderTheyAsked) {
  asio::io_context io;
  AsyncMutex mutex(io.get_executor());
  std::string order;
  for (char name : std::string("ABCD")) asio::co_spawn(io, take(mutex, order, name), asio::detached);
  io.run();
  EXPECT_EQ(order, "ABCD");
}

TEST(AsyncMutexTest, OneWhoAsksRightAfterAnUnlockQueuesBehindTheWaiter) {
  asio::io_context io;
  AsyncMutex mutex(io.get_executor());
  std::string order;
  // X asks for the lock as soon as `go` ends: its turn comes after the
  // unlock but before the waiting B has been resumed.
  asio::steady_timer go(io, asio::steady_timer::time_point::max());
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await go.async_wait(asio::as_tuple(asio::use_awaitable));
        co_await take(mutex, order, 'X');
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await mutex.lock();
        order += 'A';
        asio::co_spawn(io, take(mutex, order, 'B'), asio::detached);
        co_await asio::post(io, asio::use_awaitable);  // B is waiting now
        go.cancel();
        mutex.unlock();
      },
      asio::detached);
  io.run();
  EXPECT_EQ(order, "ABX");
}

TEST(AsyncMutexTest, AnUnlockedMutexIsFreeAgain) {
  asio::io_context io;
  AsyncMutex mutex(io.get_executor());
  std::string order;
  asio::co_spawn(io, take(mutex, order, 'A'), asio::detached);
  io.run();
  io.restart();
  asio::co_spawn(io, take(mutex, order, 'B'), asio::detached);
  io.run();
  EXPECT_EQ(order, "AB");
}

}  // namespace
}  // namespace paddock
