#include "agent/backoff.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace paddock::agent {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

TEST(Backoff, CeilingDoublesUpToTheCap) {
  Backoff b(1000ms, 60000ms, 1);
  std::vector<ms> ceilings;
  for (int i = 0; i < 9; ++i) {
    ceilings.push_back(b.ceiling());
    (void)b.next();
  }
  EXPECT_EQ(ceilings, (std::vector<ms>{1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s}));
}

TEST(Backoff, EveryDelayIsWithinZeroAndTheCeiling) {
  Backoff b(1000ms, 60000ms, 42);
  for (int i = 0; i < 10000; ++i) {
    const ms ceiling = b.ceiling();
    const ms d = b.next();
    ASSERT_GE(d, 0ms);
    ASSERT_LE(d, ceiling);
    ASSERT_LE(d, 60s);
  }
}

TEST(Backoff, ResetStartsOver) {
  Backoff b(1000ms, 60000ms, 7);
  for (int i = 0; i < 20; ++i) (void)b.next();
  EXPECT_EQ(b.ceiling(), 60s);
  b.reset();
  EXPECT_EQ(b.attempt(), 0u);
  EXPECT_EQ(b.ceiling(), 1s);
  EXPECT_LE(b.next(), 1s);
}

// Full jitter: at the cap, delays spread evenly over [0, cap]. With 20000
// draws, each tenth of the range holds 10% ± 1.5% of them, and the mean is
// half the cap.
TEST(Backoff, FullJitterIsUniform) {
  Backoff b(1000ms, 60000ms, 12345);
  for (int i = 0; i < 10; ++i) (void)b.next();
  ASSERT_EQ(b.ceiling(), 60s);
  constexpr int kDraws = 20000;
  int buckets[10] = {};
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto d = b.next().count();
    sum += static_cast<double>(d);
    ++buckets[std::min<long long>(9, d / 6000)];
  }
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(buckets[k] / double(kDraws), 0.10, 0.015) << "bucket " << k;
  }
  EXPECT_NEAR(sum / kDraws, 30000.0, 600.0);
}

TEST(Backoff, DifferentSeedsDiffer) {
  Backoff a(1000ms, 60000ms, 1), b(1000ms, 60000ms, 2);
  for (int i = 0; i < 6; ++i) (void)a.next(), (void)b.next();
  std::vector<ms> da, db;
  for (int i = 0; i < 5; ++i) da.push_back(a.next()), db.push_back(b.next());
  EXPECT_NE(da, db) << "agents must not retry in lockstep";
}

TEST(Backoff, DegenerateBoundsAreSafe) {
  Backoff b(0ms, 0ms, 3);
  for (int i = 0; i < 100; ++i) EXPECT_LE(b.next(), 1ms);
}

}  // namespace
}  // namespace paddock::agent
