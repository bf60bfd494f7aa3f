// The project's WebSocket over Beast's in-memory test stream, against a plain
// Beast WebSocket as the peer: write_batch() frames messages itself (masked
// from a client, unmasked from a server), so the peer's own parser is the
// judge of every frame, and the test stream counts the transport writes.

#include "common/web_socket.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace paddock {
namespace {

using TestStream = beast::test::stream;

struct Received {
  std::string data;
  bool binary = false;
};

// Our WebSocket on one end (playing `role`), a Beast WebSocket on the other.
class WebSocketPair {
 public:
  explicit WebSocketPair(beast::role_type role) : ours_stream_(io_), peer_(io_) {
    beast::get_lowest_layer(ours_stream_).connect(beast::get_lowest_layer(peer_));
    auto handshake = [this, role]() -> asio::awaitable<void> {
      auto [ec] = role == beast::role_type::client
                      ? co_await ours_stream_.async_handshake("localhost", "/", asio::as_tuple(asio::use_awaitable))
                      : co_await ours_stream_.async_accept(asio::as_tuple(asio::use_awaitable));
      EXPECT_FALSE(ec) << ec.message();
    };
    auto peer_handshake = [this, role]() -> asio::awaitable<void> {
      auto [ec] = role == beast::role_type::client
                      ? co_await peer_.async_accept(asio::as_tuple(asio::use_awaitable))
                      : co_await peer_.async_handshake("localhost", "/", asio::as_tuple(asio::use_awaitable));
      EXPECT_FALSE(ec) << ec.message();
    };
    asio::co_spawn(io_, handshake(), asio::detached);
    asio::co_spawn(io_, peer_handshake(), asio::detached);
    io_.run();
    io_.restart();
    // The Beast stream keeps its layers on the heap: the pointer outlives the move.
    lowest_ = &beast::get_lowest_layer(ours_stream_);
    ours_ = make_web_socket(std::move(ours_stream_), role);
  }

  // Transport writes our end has made so far.
  std::size_t writes() { return lowest_->nwrite(); }

  error_code write_batch(const std::vector<OutgoingMessage>& messages) {
    error_code result;
    auto run = [&]() -> asio::awaitable<void> { result = co_await ours_->write_batch(messages); };
    asio::co_spawn(io_, run(), asio::detached);
    io_.run();
    io_.restart();
    return result;
  }

  error_code write(const std::string& data, bool binary) {
    error_code result;
    auto run = [&]() -> asio::awaitable<void> { result = co_await ours_->write(asio::buffer(data), binary); };
    asio::co_spawn(io_, run(), asio::detached);
    io_.run();
    io_.restart();
    return result;
  }

  error_code close() {
    error_code result;
    auto run = [&]() -> asio::awaitable<void> { result = co_await ours_->close({websocket::close_code::normal}); };
    auto drain = [&]() -> asio::awaitable<void> {
      beast::flat_buffer b;
      for (;;) {
        auto [ec, n] = co_await peer_.async_read(b, asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        b.consume(n);
      }
    };
    asio::co_spawn(io_, run(), asio::detached);
    asio::co_spawn(io_, drain(), asio::detached);
    io_.run();
    io_.restart();
    return result;
  }

  // Reads `count` messages at the peer, each checked by Beast's parser.
  std::vector<Received> receive(std::size_t count) {
    std::vector<Received> got;
    auto run = [&]() -> asio::awaitable<void> {
      beast::flat_buffer b;
      while (got.size() < count) {
        auto [ec, n] = co_await peer_.async_read(b, asio::as_tuple(asio::use_awaitable));
        if (ec) {
          ADD_FAILURE() << "the peer's read failed: " << ec.message();
          co_return;
        }
        got.push_back({beast::buffers_to_string(b.data()), peer_.got_binary()});
        b.consume(n);
      }
    };
    asio::co_spawn(io_, run(), asio::detached);
    io_.run();
    io_.restart();
    return got;
  }

 private:
  asio::io_context io_;
  WebSocketStream<TestStream> ours_stream_;
  TestStream* lowest_ = nullptr;  // our end's transport
  websocket::stream<TestStream> peer_;
  std::shared_ptr<WebSocket> ours_;
};

std::vector<OutgoingMessage> sample_batch() {
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 300; ++i) batch.push_back({"\x01line " + std::to_string(i) + "\n", true});
  batch.push_back({"{\"status\":\"Success\"}", false});      // text among binary
  batch.push_back({std::string(70000, 'x'), true});            // a 64-bit length
  batch.push_back({std::string(300, '\x02'), true});           // a 16-bit length
  batch.push_back({"", true});                                 // empty
  return batch;
}

void expect_same(const std::vector<OutgoingMessage>& sent, const std::vector<Received>& got) {
  ASSERT_EQ(got.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(got[i].data, sent[i].data) << "message " << i;
    EXPECT_EQ(got[i].binary, sent[i].binary) << "message " << i;
  }
}

class WriteBatch : public ::testing::TestWithParam<beast::role_type> {};

TEST_P(WriteBatch, ArrivesWholeAndInOrder) {
  WebSocketPair pair(GetParam());
  const auto batch = sample_batch();
  ASSERT_FALSE(pair.write_batch(batch));
  expect_same(batch, pair.receive(batch.size()));
}

TEST_P(WriteBatch, SmallMessagesTakeOneTransportWrite) {
  WebSocketPair pair(GetParam());
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 500; ++i) batch.push_back({"\x01" + std::string(100, 'a' + i % 26), true});
  auto before = pair.writes();
  ASSERT_FALSE(pair.write_batch(batch));
  EXPECT_EQ(pair.writes() - before, 1u);
  expect_same(batch, pair.receive(batch.size()));
  // The same messages one at a time: a write each.
  before = pair.writes();
  for (const auto& m : batch) ASSERT_FALSE(pair.write(m.data, m.binary));
  EXPECT_EQ(pair.writes() - before, batch.size());
}

TEST_P(WriteBatch, MixesWithSingleWritesInOrder) {
  WebSocketPair pair(GetParam());
  const std::vector<OutgoingMessage> first = {{"a", true}, {"b", false}};
  const std::vector<OutgoingMessage> second = {{"d", true}};
  ASSERT_FALSE(pair.write_batch(first));
  ASSERT_FALSE(pair.write("c", true));
  ASSERT_FALSE(pair.write_batch(second));
  expect_same({{"a", true}, {"b", false}, {"c", true}, {"d", true}}, pair.receive(4));
}

TEST_P(WriteBatch, AfterCloseFailsAndSendsNothing) {
  WebSocketPair pair(GetParam());
  ASSERT_FALSE(pair.close());
  const auto before = pair.writes();
  EXPECT_EQ(pair.write_batch(sample_batch()), websocket::error::closed);
  EXPECT_EQ(pair.writes(), before);
}

// On loopback TCP: the peer completes the handshake, then reads nothing.
// Our end writes a message far larger than the socket buffers, so the write
// never completes on its own, and close_soon() must still end the socket.
TEST(CloseSoon, EndsTheSocketWhileAWriteIsStuck) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  websocket::stream<asio::ip::tcp::socket> peer(io);
  std::shared_ptr<WebSocket> ours;
  std::optional<error_code> written;
  auto accept = [&]() -> asio::awaitable<void> {
    co_await acceptor.async_accept(peer.next_layer(), asio::use_awaitable);
    co_await peer.async_accept(asio::use_awaitable);
  };
  auto connect = [&]() -> asio::awaitable<void> {
    WebSocketStream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    co_await beast::get_lowest_layer(ws).async_connect(acceptor.local_endpoint(), asio::use_awaitable);
    co_await ws.async_handshake("localhost", "/", asio::use_awaitable);
    ours = make_web_socket(std::move(ws), beast::role_type::client);
    auto huge = std::make_shared<std::string>(64 << 20, 'x');
    // Takes the write turn first; the close below waits behind it.
    asio::co_spawn(
        io,
        [&written, ws = ours, huge]() -> asio::awaitable<void> {
          written = co_await ws->write(asio::buffer(*huge), true);
        },
        asio::detached);
    ours->close_soon({websocket::close_code::going_away, "stopping"});
  };
  asio::co_spawn(io, accept(), asio::detached);
  asio::co_spawn(io, connect(), asio::detached);
  io.run_for(std::chrono::seconds(30));  // returns early once all is done
  ASSERT_TRUE(written.has_value()) << "the write still hangs, and the close behind it";
  EXPECT_TRUE(*written) << "the stuck write ended by the cut, not by success";
  EXPECT_FALSE(ours->is_open());
}

INSTANTIATE_TEST_SUITE_P(Roles, WriteBatch,
                         ::testing::Values(beast::role_type::client, beast::role_type::server),
                         [](const auto& role) {
                           return std::string(role.param == beast::role_type::client ? "Client" : "Server");
                         });

}  // namespace
}  // namespace paddock
