// The HeapTrimmer's rule on a real io_context, with the trim counted
// instead of made: a burst of connections since the last trim makes one due
// at the next look, and nothing else does.

#include "server/heap_trimmer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace paddock::server {
namespace {

using namespace std::chrono_literals;

class HeapTrimmerTest : public ::testing::Test {
 protected:
  // Runs the io_context until the trimmer has looked `looks` more times.
  void run_looks(int looks) {
    const int until = looks_ + looks;
    while (looks_ < until) {
      io_.run_one_for(2s);
      ASSERT_FALSE(io_.stopped()) << "the trimmer stopped looking";
    }
  }

  boost::asio::io_context io_;
  std::uint64_t accepted_ = 0;
  int looks_ = 0;
  int trims_ = 0;
  HeapTrimmer trimmer_{io_,
                       [this] {
                         ++looks_;
                         return accepted_;
                       },
                       TrimRule{10ms, 100}, [this] { ++trims_; }};
};

TEST_F(HeapTrimmerTest, TrimsOnceAfterEachBurstAndNeverWhenQuiet) {
  trimmer_.start();
  run_looks(3);
  EXPECT_EQ(trims_, 0);  // no connections

  accepted_ = 99;
  run_looks(3);
  EXPECT_EQ(trims_, 0);  // fewer than a burst

  accepted_ = 100;
  run_looks(1);
  EXPECT_EQ(trims_, 1);
  run_looks(3);
  EXPECT_EQ(trims_, 1);  // nothing new since

  accepted_ = 150;
  run_looks(2);
  EXPECT_EQ(trims_, 1);  // counted from the last trim, not from the start
  accepted_ = 200;
  run_looks(1);
  EXPECT_EQ(trims_, 2);
}

TEST_F(HeapTrimmerTest, StopEndsTheLooks) {
  trimmer_.start();
  run_looks(1);
  trimmer_.stop();
  io_.run_for(200ms);
  EXPECT_TRUE(io_.stopped());  // no timer left: the io_context ran out of work
}

}  // namespace
}  // namespace paddock::server
