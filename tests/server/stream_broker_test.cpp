// The stream broker's bookkeeping, with a recording stand-in for the two
// WebSockets a stream joins.
#include "server/stream_broker.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace paddock::server {
namespace {

class RecordingSocket final : public WebSocket {
 public:
  explicit RecordingSocket(asio::io_context& io) : executor_(io.get_executor()) {}

  asio::any_io_executor get_executor() override { return executor_; }
  asio::awaitable<error_code> read(beast::flat_buffer&) override { co_return websocket::error::closed; }
  bool got_text() const override { return false; }
  asio::awaitable<error_code> write(asio::const_buffer data, bool) override {
    sent.emplace_back(static_cast<const char*>(data.data()), data.size());
    co_return error_code{};
  }
  asio::awaitable<error_code> write_batch(std::span<const OutgoingMessage> messages) override {
    for (const auto& m : messages) sent.push_back(m.data);
    co_return error_code{};
  }
  asio::awaitable<error_code> close(websocket::close_reason reason) override {
    closed_with = reason;
    co_return error_code{};
  }
  void close_soon(websocket::close_reason reason) override { closed_with = reason; }
  void abort() override {}
  void set_read_limit(std::size_t) override {}
  void set_idle_timeout(std::chrono::seconds, bool) override {}
  websocket::close_reason reason() const override { return closed_with; }
  bool is_open() const override { return closed_with.code == websocket::close_code::none; }

  std::vector<std::string> sent;
  websocket::close_reason closed_with;

 private:
  asio::any_io_executor executor_;
};

class StreamBrokerTest : public ::testing::Test {
 protected:
  std::shared_ptr<RecordingSocket> socket() { return std::make_shared<RecordingSocket>(io_); }

  asio::io_context io_;
  StreamBroker broker_;
};

TEST_F(StreamBrokerTest, ATokenOpensOneStream) {
  EXPECT_TRUE(broker_.consume("jti-1", 4102444800));
  EXPECT_FALSE(broker_.consume("jti-1", 4102444800));
  EXPECT_TRUE(broker_.consume("jti-2", 4102444800));
}

TEST_F(StreamBrokerTest, AnAgentJoinsTheUserWaitingOnItsHost) {
  broker_.open("jti", 7, "key", socket());
  EXPECT_EQ(broker_.join("jti", 8, socket()), nullptr) << "another host's agent";
  EXPECT_EQ(broker_.join("other", 7, socket()), nullptr) << "no user waits under that jti";
  auto agent = socket();
  auto joined = broker_.join("jti", 7, agent);
  ASSERT_NE(joined, nullptr);
  EXPECT_EQ(joined->agent, agent);
  EXPECT_EQ(broker_.join("jti", 7, socket()), nullptr) << "a second agent";
  EXPECT_TRUE(broker_.joined_or_abandon("jti"));
  EXPECT_EQ(broker_.open_streams(), 1u);
  broker_.finish("jti");
  EXPECT_EQ(broker_.open_streams(), 0u);
}

// The user's wait ended without an agent: the stream is given up at once,
// and a tunnel arriving just after is refused rather than joined to a user
// who was told the stream failed.
TEST_F(StreamBrokerTest, AnAgentAfterTheWaitIsRefused) {
  broker_.open("jti", 7, "key", socket());
  EXPECT_FALSE(broker_.joined_or_abandon("jti"));
  EXPECT_EQ(broker_.join("jti", 7, socket()), nullptr);
  EXPECT_EQ(broker_.open_streams(), 0u);
}

TEST_F(StreamBrokerTest, ClosingAKeyOnSomeHostsEndsOnlyThoseStreams) {
  auto on_1 = socket(), on_2 = socket(), on_3 = socket(), others = socket();
  broker_.open("a", 1, "key", on_1);
  broker_.open("b", 2, "key", on_2);
  broker_.open("c", 3, "key", on_3);
  broker_.open("d", 1, "another key", others);
  auto agent = socket();
  ASSERT_NE(broker_.join("a", 1, agent), nullptr);

  broker_.close_key_on_hosts("key", {1, 3}, "the account left the project");
  io_.run();

  std::string status = "\x03";  // the status channel
  status += R"({"message":"the account left the project","status":"Failure"})";
  for (const auto& user : {on_1, on_3}) {
    ASSERT_EQ(user->sent.size(), 1u);
    EXPECT_EQ(user->sent[0], status);
    EXPECT_EQ(user->closed_with.code, websocket::close_code::normal);
  }
  EXPECT_EQ(agent->closed_with.code, websocket::close_code::going_away);
  EXPECT_EQ(agent->closed_with.reason, "the account left the project");
  for (const auto& untouched : {on_2, others}) {
    EXPECT_TRUE(untouched->sent.empty());
    EXPECT_TRUE(untouched->is_open());
  }
}

}  // namespace
}  // namespace paddock::server
