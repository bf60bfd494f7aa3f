#include "agent/stream_token.hpp"

#include <gtest/gtest.h>

#include <string>

namespace paddock::agent {
namespace {

using nlohmann::json;

constexpr std::int64_t kNow = 1'800'000'000;
const std::string kContainer(64, 'a');

class StreamToken : public ::testing::Test {
 protected:
  StreamToken() : key_(jwt::SigningKey::generate()) {
    auto added = keys_.add(key_);
    EXPECT_TRUE(added.ok());
  }

  json claims() const {
    return json{{"iss", "https://server:8443"},
                {"aud", "1h5"},
                {"sub", "AK1"},
                {"iat", kNow},
                {"exp", kNow + 60},
                {"jti", "jti-1"},
                {"op", "logs"},
                {"container", kContainer},
                {"params", {{"tail", "all"}, {"follow", false}}}};
  }

  std::string sign(const json& c) const {
    auto token = key_.sign(c);
    EXPECT_TRUE(token.ok());
    return token.ok() ? *token : std::string();
  }

  Result<StreamRequest> check(const json& c, std::int64_t now = kNow) const {
    return check_stream_token(sign(c), keys_, "1h5", now);
  }

  jwt::SigningKey key_;
  jwt::KeySet keys_;
};

TEST_F(StreamToken, AcceptsAGoodToken) {
  auto r = check(claims());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, StreamOp::logs);
  EXPECT_EQ(r->container, kContainer);
  EXPECT_EQ(r->jti, "jti-1");
  EXPECT_EQ(r->exp, kNow + 60);
  EXPECT_EQ(r->params["tail"], "all");
}

TEST_F(StreamToken, RefusesAnotherHostsAudience) {
  auto c = claims();
  c["aud"] = "1h6";
  auto r = check(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unauthorized);
  EXPECT_EQ(r.error().message, "the token is for another host");
  c["aud"] = "1h55";
  EXPECT_FALSE(check(c).ok());
  c.erase("aud");
  EXPECT_FALSE(check(c).ok());
  c["aud"] = json::array({"1h5"});  // only a single string audience
  EXPECT_FALSE(check(c).ok());
}

TEST_F(StreamToken, RefusesAnExpiredTokenBeyondTheLeeway) {
  auto c = claims();
  EXPECT_TRUE(check(c, kNow + 60 + kStreamTokenLeeway - 1).ok());
  auto r = check(c, kNow + 60 + kStreamTokenLeeway);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "token expired");
  EXPECT_FALSE(check_stream_token(sign(c), keys_, "1h5", kNow + 61, 0).ok());
}

TEST_F(StreamToken, RefusesBadContainerIds) {
  for (const json& bad : {json(std::string(63, 'a')), json(std::string(65, 'a')), json(std::string(64, 'A')),
                          json(std::string(63, 'a') + "g"), json("../../containers/x"), json("web"),
                          json(std::string(63, 'a') + "/"), json(42), json(nullptr)}) {
    auto c = claims();
    c["container"] = bad;
    auto r = check(c);
    ASSERT_FALSE(r.ok()) << bad.dump();
    EXPECT_EQ(r.error().message, "the token names no valid container id");
  }
  auto c = claims();
  c.erase("container");
  EXPECT_FALSE(check(c).ok());
}

TEST_F(StreamToken, HoststatsNeedsNoContainer) {
  auto c = claims();
  c["op"] = "hoststats";
  c.erase("container");
  auto r = check(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->op, StreamOp::hoststats);
  EXPECT_TRUE(r->container.empty());
}

TEST_F(StreamToken, RefusesUnknownOperations) {
  for (const json& op : {json("attach"), json("LOGS"), json(""), json(1), json(nullptr)}) {
    auto c = claims();
    c["op"] = op;
    EXPECT_FALSE(check(c).ok()) << op.dump();
  }
  for (const char* op : {"logs", "exec", "stats", "hoststats"}) {
    auto c = claims();
    c["op"] = op;
    auto r = check(c);
    ASSERT_TRUE(r.ok()) << op;
    EXPECT_EQ(stream_op_name(r->op), op);
  }
}

TEST_F(StreamToken, RefusesOtherKeysTamperingAndGarbage) {
  jwt::KeySet other;
  ASSERT_TRUE(other.add(jwt::SigningKey::generate()).ok());
  EXPECT_FALSE(check_stream_token(sign(claims()), other, "1h5", kNow).ok());
  EXPECT_FALSE(check_stream_token(sign(claims()), jwt::KeySet(), "1h5", kNow).ok());

  std::string token = sign(claims());
  const auto dot = token.find('.');
  std::string tampered = token;
  tampered[dot + 5] = tampered[dot + 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(check_stream_token(tampered, keys_, "1h5", kNow).ok());
  for (const char* garbage : {"", "x", "a.b.c", "....", "Bearer x"}) {
    EXPECT_FALSE(check_stream_token(garbage, keys_, "1h5", kNow).ok()) << garbage;
  }
  EXPECT_FALSE(check_stream_token(token, keys_, "", kNow).ok()) << "an agent without a host id opens nothing";
}

TEST_F(StreamToken, RefusesMissingJtiAndBadParams) {
  auto c = claims();
  c.erase("jti");
  EXPECT_FALSE(check(c).ok());
  c = claims();
  c["params"] = "tail=all";
  EXPECT_FALSE(check(c).ok());
  c = claims();
  c.erase("params");
  auto r = check(c);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->params.is_object());
}

TEST(StreamParams, LogsDefaultsAndTarget) {
  auto p = logs_params(json::object());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(logs_target(kContainer, *p),
            "/containers/" + kContainer + "/logs?follow=1&tail=100&timestamps=0&stdout=1&stderr=1");
  p = logs_params(json{{"follow", false},
                       {"tail", "all"},
                       {"since", 1700000000},
                       {"until", 1700000100},
                       {"timestamps", true},
                       {"stdout", false},
                       {"stderr", true}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(logs_target(kContainer, *p), "/containers/" + kContainer +
                                             "/logs?follow=0&tail=all&timestamps=1&stdout=0&stderr=1"
                                             "&since=1700000000&until=1700000100");
  p = logs_params(json{{"tail", "25"}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->tail, "25");
  p = logs_params(json{{"tail", 7}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->tail, "7");
}

TEST(StreamParams, LogsRefusesWrongTypes) {
  for (const json& bad : {json{{"tail", "-1"}}, json{{"tail", "1&follow=0"}}, json{{"tail", -3}},
                          json{{"tail", "123456789012"}}, json{{"since", "yesterday"}}, json{{"until", -1}},
                          json{{"follow", "yes"}}, json{{"stdout", 1}}}) {
    EXPECT_FALSE(logs_params(bad).ok()) << bad.dump();
  }
}

TEST(StreamParams, LogsTargetEncodesTheIdRegardless) {
  EXPECT_EQ(logs_target("a/../b?x", LogsParams{}).substr(0, 25), "/containers/a%2F..%2Fb%3F");
}

TEST(StreamParams, Exec) {
  auto p = exec_params(json{{"command", {"sh", "-c", "exit 3"}},
                            {"tty", false},
                            {"attachStdin", false},
                            {"env", {"A=1"}},
                            {"user", "nobody"},
                            {"workingDir", "/tmp"}});
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(exec_create_body(*p), (json{{"AttachStdin", false},
                                        {"AttachStdout", true},
                                        {"AttachStderr", true},
                                        {"Tty", false},
                                        {"Cmd", {"sh", "-c", "exit 3"}},
                                        {"Env", {"A=1"}},
                                        {"User", "nobody"},
                                        {"WorkingDir", "/tmp"}}));
  auto d = exec_params(json{{"command", {"sh"}}, {"env", nullptr}, {"user", nullptr}});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->tty);
  EXPECT_TRUE(d->attach_stdin);
  EXPECT_EQ(exec_create_body(*d),
            (json{{"AttachStdin", true},
                  {"AttachStdout", true},
                  {"AttachStderr", true},
                  {"Tty", true},
                  {"Cmd", {"sh"}}}));
  for (const json& bad : {json::object(), json{{"command", json::array()}}, json{{"command", "sh"}},
                          json{{"command", {"sh", 1}}}, json{{"command", {"sh"}}, {"env", {"NOEQUALS"}}},
                          json{{"command", {"sh"}}, {"tty", "yes"}}}) {
    EXPECT_FALSE(exec_params(bad).ok()) << bad.dump();
  }
}

TEST(StreamParams, Stats) {
  EXPECT_TRUE(stats_params(json::object())->stream);
  EXPECT_FALSE(stats_params(json{{"stream", false}})->stream);
  EXPECT_FALSE(stats_params(json{{"stream", "no"}}).ok());
}

TEST(JtiCache, RefusesAReplayUntilItExpires) {
  JtiCache cache;
  EXPECT_TRUE(cache.insert("a", kNow + 90, kNow));
  EXPECT_FALSE(cache.insert("a", kNow + 90, kNow + 1));
  EXPECT_TRUE(cache.insert("b", kNow + 90, kNow + 1));
  EXPECT_FALSE(cache.insert("a", kNow + 90, kNow + 90));
  // Past its expiry the token itself is refused; the entry can go.
  EXPECT_TRUE(cache.insert("c", kNow + 200, kNow + 100));
  EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace paddock::agent
