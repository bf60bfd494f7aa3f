// The server's FrameSocket on a real loopback TCP connection, against a
// Beast WebSocket client as the peer: Beast's parser judges every frame the
// socket writes, and Beast's writer (masked, fragmented on request) makes
// every frame it reads. Broken frames are written raw under the client.

#include "server/frame_socket.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace paddock::server {
namespace {

using tcp = asio::ip::tcp;
constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

class FrameSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket accepted(io_);
    client_.next_layer().connect(acceptor.local_endpoint());
    acceptor.accept(accepted);
    beast::tcp_stream server_side(std::move(accepted));
    auto accept = [&]() -> asio::awaitable<void> {
      websocket::stream<beast::tcp_stream&> handshake(server_side);
      auto [ec] = co_await handshake.async_accept(as_tuple_awaitable);
      EXPECT_FALSE(ec) << ec.message();
    };
    auto connect = [&]() -> asio::awaitable<void> {
      auto [ec] = co_await client_.async_handshake("localhost", "/", as_tuple_awaitable);
      EXPECT_FALSE(ec) << ec.message();
    };
    asio::co_spawn(io_, accept(), asio::detached);
    asio::co_spawn(io_, connect(), asio::detached);
    io_.run();
    io_.restart();
    socket_ = make_frame_socket(std::move(server_side), {});
  }

  // Runs the loop until `done` (the socket's watchdog always has a timer
  // pending, so the loop never runs out of work), for at most 10 s.
  void run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_one_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(done()) << "not done within 10 s";
  }

  // Spawns `work` and runs the loop until it is done.
  void run(std::function<asio::awaitable<void>()> work) {
    bool done = false;
    auto wrapped = [&]() -> asio::awaitable<void> {
      co_await work();
      done = true;
    };
    asio::co_spawn(io_, wrapped(), asio::detached);
    run_until([&] { return done; });
  }

  struct Read {
    error_code ec;
    std::string data;
    bool text = false;
  };

  // One read on the FrameSocket, with the client doing `peer` meanwhile.
  Read read_one() {
    Read r;
    run([&]() -> asio::awaitable<void> {
      beast::flat_buffer b;
      r.ec = co_await socket_->read(b);
      r.data = beast::buffers_to_string(b.data());
      r.text = socket_->got_text();
    });
    return r;
  }

  void client_write(const std::string& data, bool text) {
    client_.text(text);
    client_.write(asio::buffer(data));
  }

  // The client's next message, or its read error (a close from the server
  // gives websocket::error::closed, with client_.reason() set).
  Read client_read() {
    Read r;
    beast::flat_buffer b;
    client_.read(b, r.ec);
    r.data = beast::buffers_to_string(b.data());
    r.text = client_.got_text();
    return r;
  }

  asio::io_context io_;
  websocket::stream<beast::tcp_stream> client_{io_};
  std::shared_ptr<WebSocket> socket_;
};

TEST_F(FrameSocketTest, ReadsWholeMessagesOfEitherKind) {
  client_write("hello", true);
  client_write(std::string(70000, 'b'), false);  // a 64-bit length
  client_write("", false);
  auto a = read_one();
  EXPECT_FALSE(a.ec);
  EXPECT_EQ(a.data, "hello");
  EXPECT_TRUE(a.text);
  auto b = read_one();
  EXPECT_EQ(b.data, std::string(70000, 'b'));
  EXPECT_FALSE(b.text);
  auto c = read_one();
  EXPECT_FALSE(c.ec);
  EXPECT_EQ(c.data, "");
}

TEST_F(FrameSocketTest, ReassemblesFragmentedMessages) {
  client_.auto_fragment(true);
  client_.write_buffer_bytes(64);
  std::string big;
  for (int i = 0; i < 1000; ++i) big += std::to_string(i) + ",";
  client_write(big, true);
  auto r = read_one();
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.data, big);
}

TEST_F(FrameSocketTest, ReadMessagesTakesABurstInOrder) {
  for (int i = 0; i < 200; ++i) client_write("\x01line " + std::to_string(i), false);
  std::vector<OutgoingMessage> got;
  int calls = 0;
  run([&]() -> asio::awaitable<void> {
    while (got.size() < 200) {
      ++calls;
      const auto ec = co_await socket_->read_messages(got, 1 << 20);
      if (ec) co_return;
    }
  });
  ASSERT_EQ(got.size(), 200u);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(got[i].data, "\x01line " + std::to_string(i));
    EXPECT_TRUE(got[i].binary);
  }
  EXPECT_LT(calls, 200) << "a burst already received comes in one call";
}

TEST_F(FrameSocketTest, WritesFramesTheClientAccepts) {
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 50; ++i) batch.push_back({"\x01" + std::to_string(i), true});
  batch.push_back({"{\"status\":\"Success\"}", false});
  batch.push_back({std::string(300, 'x'), true});  // a 16-bit length
  error_code single, batched;
  run([&]() -> asio::awaitable<void> {
    single = co_await socket_->write(asio::buffer(std::string_view("first")), false);
    batched = co_await socket_->write_batch(batch);
  });
  ASSERT_FALSE(single);
  ASSERT_FALSE(batched);
  auto first = client_read();
  EXPECT_EQ(first.data, "first");
  EXPECT_TRUE(first.text);
  for (const auto& m : batch) {
    auto r = client_read();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.data, m.data);
    EXPECT_EQ(r.text, !m.binary);
  }
}

TEST_F(FrameSocketTest, AnswersPingsWithPongs) {
  std::string pong;
  client_.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
    if (kind == websocket::frame_type::pong) pong = std::string(payload);
  });
  client_.ping("are you there");
  client_write("after the ping", true);
  EXPECT_EQ(read_one().data, "after the ping");
  // The pong is written once the socket has read the ping; the client sees
  // it ahead of the next message.
  run([&]() -> asio::awaitable<void> { co_await socket_->write(asio::buffer(std::string_view("x")), true); });
  EXPECT_EQ(client_read().data, "x");
  EXPECT_EQ(pong, "are you there");
}

TEST_F(FrameSocketTest, ThePeersCloseEndsReadsWithItsReason) {
  auto closing = std::thread([&] {
    error_code ec;
    client_.close({static_cast<websocket::close_code>(4000), "bye"}, ec);
    EXPECT_FALSE(ec) << "the server echoes the close: " << ec.message();
  });
  auto r = read_one();
  closing.join();
  EXPECT_EQ(r.ec, websocket::error::closed);
  EXPECT_EQ(static_cast<int>(socket_->reason().code), 4000);
  EXPECT_EQ(std::string(socket_->reason().reason.data(), socket_->reason().reason.size()), "bye");
  EXPECT_FALSE(socket_->is_open());
}

TEST_F(FrameSocketTest, CloseWhileTheOwnerReadsCompletesTheHandshake) {
  Read owner;
  error_code closed;
  int done = 0;
  auto reading = [&]() -> asio::awaitable<void> {
    beast::flat_buffer b;
    owner.ec = co_await socket_->read(b);
    ++done;
  };
  auto closing = [&]() -> asio::awaitable<void> {
    closed = co_await socket_->close({websocket::close_code::going_away, "server shutting down"});
    ++done;
  };
  asio::co_spawn(io_, reading(), asio::detached);
  asio::co_spawn(io_, closing(), asio::detached);
  auto client = std::thread([&] {
    auto r = client_read();  // Beast answers the close and reports it
    EXPECT_EQ(r.ec, websocket::error::closed);
    EXPECT_EQ(client_.reason().code, websocket::close_code::going_away);
    EXPECT_EQ(std::string(client_.reason().reason.data(), client_.reason().reason.size()), "server shutting down");
  });
  run_until([&] { return done == 2; });
  client.join();
  EXPECT_FALSE(closed) << closed.message();
  EXPECT_EQ(owner.ec, websocket::error::closed);
}

TEST_F(FrameSocketTest, AnOversizedMessageClosesWith1009) {
  socket_->set_read_limit(1000);
  client_write(std::string(1001, 'x'), false);
  Read c;
  auto client = std::thread([&] { c = client_read(); });
  auto r = read_one();
  client.join();
  EXPECT_EQ(r.ec, websocket::error::message_too_big);
  EXPECT_EQ(c.ec, websocket::error::closed) << c.ec.message();
  EXPECT_EQ(client_.reason().code, websocket::close_code::too_big);
}

TEST_F(FrameSocketTest, AnUnmaskedFrameClosesWith1002) {
  // A server's frame (no mask) written raw by the client: a protocol error.
  const std::string frame = "\x82\x03" "abc";
  asio::write(client_.next_layer(), asio::buffer(frame));
  Read c;
  auto client = std::thread([&] { c = client_read(); });
  auto r = read_one();
  client.join();
  EXPECT_TRUE(r.ec);
  EXPECT_EQ(c.ec, websocket::error::closed) << c.ec.message();
  EXPECT_EQ(client_.reason().code, websocket::close_code::protocol_error);
}

TEST_F(FrameSocketTest, ASilentPeerIsCutAfterTheIdleTimeout) {
  socket_->set_idle_timeout(std::chrono::seconds(2), true);
  const auto start = std::chrono::steady_clock::now();
  auto r = read_one();  // the client never reads, so never answers the ping
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.ec, beast::error::timeout);
  EXPECT_GE(took, std::chrono::seconds(2));
  EXPECT_LT(took, std::chrono::seconds(4));
}

}  // namespace
}  // namespace paddock::server
