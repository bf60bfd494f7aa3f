#include "server/socket_quota.hpp"

#include "server/auth.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace paddock::server {
namespace {

Caller account_key(std::int64_t account, std::string key) {
  Caller c;
  c.account_id = account;
  c.access_key = std::move(key);
  return c;
}

Caller project_key(std::string key) {
  Caller c;
  c.key_project_id = 1;
  c.access_key = std::move(key);
  return c;
}

TEST(SocketQuota, AnAccountsKeysShareItsSlots) {
  SocketQuota quota(2);
  auto a = quota.take(account_key(1, "k1"));
  auto b = quota.take(account_key(1, "k2"));
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(quota.take(account_key(1, "k1")));
  EXPECT_FALSE(quota.take(account_key(1, "k3")));
  EXPECT_TRUE(quota.take(account_key(2, "k4"))) << "another account";
  EXPECT_TRUE(quota.take(project_key("p1"))) << "a project key counts on its own";
}

TEST(SocketQuota, ASlotComesBackWithItsLastHolder) {
  SocketQuota quota(1);
  auto held = quota.take(project_key("p"));
  ASSERT_TRUE(held);
  auto copy = held;
  held.reset();
  EXPECT_FALSE(quota.take(project_key("p"))) << "a copy still holds it";
  copy.reset();
  EXPECT_TRUE(quota.take(project_key("p")));
}

TEST(SocketQuota, ZeroMeansNoLimit) {
  SocketQuota quota(0);
  std::vector<std::shared_ptr<const void>> held;
  for (int i = 0; i < 1000; ++i) held.push_back(quota.take(account_key(1, "k")));
  for (const auto& h : held) EXPECT_TRUE(h);
}

TEST(SocketQuota, TheRefusalSaysWhy) {
  const auto e = SocketQuota(3).refusal();
  EXPECT_EQ(e.status, 429);
  EXPECT_EQ(e.code, "RateLimited");
  EXPECT_NE(e.message.find("3 streams and subscriptions"), std::string::npos);
}

}  // namespace
}  // namespace paddock::server
