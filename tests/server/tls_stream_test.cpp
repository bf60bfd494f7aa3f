// The server's TlsStream on real loopback TCP, with Asio's own TLS stream as
// the client: OpenSSL on both sides, the server's certificate from
// tls::ensure_server_identity and the client pinned to its CA.

#include "server/tls_stream.hpp"

#include "common/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <thread>

namespace paddock::server {
namespace {

namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using ClientStream = asio::ssl::stream<tcp::socket>;
constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// Bytes that tell their position: a cut or a reordering shows.
std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

class TlsStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string dir = (fs::path(testing::TempDir()) / "paddock_tls_stream_XXXXXX").string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    auto identity = tls::ensure_server_identity(dir_ / "tls", {"localhost", "127.0.0.1"});
    ASSERT_TRUE(identity.ok()) << identity.error().message;
    auto server = tls::make_server_context(*identity);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_context_ = new std::shared_ptr<asio::ssl::context>(*server);
    TlsStream::prepare_context((*server)->native_handle());
    auto client = tls::make_client_context(tls::ClientTrust::pinned(identity->ca_pem));
    ASSERT_TRUE(client.ok()) << client.error().message;
    client_context_ = new std::shared_ptr<asio::ssl::context>(*client);
  }

  static void TearDownTestSuite() {
    delete server_context_;
    delete client_context_;
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // A connected pair, before any handshake.
  void SetUp() override {
    tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket accepted(io_);
    client_.next_layer().connect(acceptor.local_endpoint());
    acceptor.accept(accepted);
    client_.next_layer().set_option(tcp::no_delay(true));  // as the server's sockets
    accepted.set_option(tcp::no_delay(true));
    server_.emplace(beast::tcp_stream(std::move(accepted)), (*server_context_)->native_handle());
    ASSERT_TRUE(tls::prepare_client_ssl(client_.native_handle(), "127.0.0.1").ok());
  }

  // Runs `server` and `client` side by side until both are done (10 s at most).
  void run(std::function<asio::awaitable<void>()> server, std::function<asio::awaitable<void>()> client) {
    int done = 0;
    auto wrap = [&done](std::function<asio::awaitable<void>()> work) -> asio::awaitable<void> {
      co_await work();
      ++done;
    };
    asio::co_spawn(io_, wrap(std::move(server)), asio::detached);
    asio::co_spawn(io_, wrap(std::move(client)), asio::detached);
    io_.run_for(std::chrono::seconds(10));
    io_.restart();
    ASSERT_EQ(done, 2) << "not done within 10 s";
  }

  void handshake() {
    run(
        [&]() -> asio::awaitable<void> {
          auto [ec] = co_await server_->async_handshake(as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
        },
        [&]() -> asio::awaitable<void> {
          auto [ec] = co_await client_.async_handshake(asio::ssl::stream_base::client, as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
        });
  }

  // Reads on the server until `size` bytes or an error.
  asio::awaitable<std::string> server_read(std::size_t size, error_code& ec) {
    std::string got(size, '\0');
    auto [e, n] = co_await asio::async_read(*server_, asio::buffer(got), as_tuple_awaitable);
    ec = e;
    got.resize(n);
    co_return got;
  }

  // Echoes `up` through the server: what the client reads back.
  std::string echo(const std::string& up) {
    std::string back(up.size(), '\0');
    run(
        [&]() -> asio::awaitable<void> {
          error_code ec;
          const std::string got = co_await server_read(up.size(), ec);
          EXPECT_FALSE(ec) << ec.message();
          co_await asio::async_write(*server_, asio::buffer(got), as_tuple_awaitable);
        },
        [&]() -> asio::awaitable<void> {
          co_await asio::async_write(client_, asio::buffer(up), as_tuple_awaitable);
          auto [ec, n] = co_await asio::async_read(client_, asio::buffer(back), as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
          back.resize(n);
        });
    return back;
  }

  static inline fs::path dir_;
  static inline std::shared_ptr<asio::ssl::context>* server_context_ = nullptr;
  static inline std::shared_ptr<asio::ssl::context>* client_context_ = nullptr;

  asio::io_context io_;
  ClientStream client_{io_, **client_context_};
  std::optional<TlsStream> server_;
};

TEST_F(TlsStreamTest, CarriesDataBothWaysAtOnceInEverySize) {
  handshake();
  for (const std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{16 * 1024 + 1}, std::size_t{3 << 20}}) {
    SCOPED_TRACE(size);
    const std::string up = pattern(size);
    const std::string down = pattern(size + 13);
    std::string got_up, got_down;
    // Each side writes everything while it reads: neither may wait on the other.
    run(
        [&]() -> asio::awaitable<void> {
          auto reader = [&]() -> asio::awaitable<void> {
            error_code ec;
            got_up = co_await server_read(up.size(), ec);
            EXPECT_FALSE(ec) << ec.message();
          };
          asio::co_spawn(io_, reader, asio::detached);
          auto [ec, n] = co_await asio::async_write(*server_, asio::buffer(down), as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
          EXPECT_EQ(n, down.size());
        },
        [&]() -> asio::awaitable<void> {
          auto writer = [&]() -> asio::awaitable<void> {
            auto [ec, n] = co_await asio::async_write(client_, asio::buffer(up), as_tuple_awaitable);
            EXPECT_FALSE(ec) << ec.message();
          };
          asio::co_spawn(io_, writer, asio::detached);
          got_down.resize(down.size());
          auto [ec, n] = co_await asio::async_read(client_, asio::buffer(got_down), as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
          got_down.resize(n);
        });
    EXPECT_TRUE(got_up == up) << "server read " << got_up.size() << " bytes, not the " << up.size() << " sent";
    EXPECT_TRUE(got_down == down) << "client read " << got_down.size() << " bytes, not the " << down.size() << " sent";
  }
}

TEST_F(TlsStreamTest, BuffersWrittenTogetherArriveWholeAndInOrder) {
  handshake();
  // A frame's header and payload, as the WebSocket layer writes them; sizes
  // around a record's end.
  for (const std::size_t size : {std::size_t{10}, TlsStream::kRecordSize - 5, std::size_t{200 * 1024}}) {
    SCOPED_TRACE(size);
    const std::string header = "HEADER";
    const std::string payload = pattern(size);
    const std::array<asio::const_buffer, 2> frame{asio::buffer(header), asio::buffer(payload)};
    std::string got(header.size() + payload.size(), '\0');
    run(
        [&]() -> asio::awaitable<void> {
          auto [ec, n] = co_await asio::async_write(*server_, frame, as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
          EXPECT_EQ(n, got.size());
        },
        [&]() -> asio::awaitable<void> {
          auto [ec, n] = co_await asio::async_read(client_, asio::buffer(got), as_tuple_awaitable);
          EXPECT_FALSE(ec) << ec.message();
        });
    EXPECT_TRUE(got == header + payload);
  }
}

TEST_F(TlsStreamTest, OneReadTakesEveryRecordAlreadyReceived) {
  handshake();
  // Three records (TLS 1.3: 22 bytes each beside the data), all received
  // before the server reads once with room for them all.
  const std::array<std::string, 3> records{"x", "abc", "defg"};
  run([]() -> asio::awaitable<void> { co_return; },
      [&]() -> asio::awaitable<void> {
        for (const auto& record : records) co_await asio::async_write(client_, asio::buffer(record), as_tuple_awaitable);
      });
  ASSERT_EQ(SSL_version(client_.native_handle()), TLS1_3_VERSION);
  const std::size_t wire = 3 * 22 + 8;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server_->next_layer().socket().available() < wire && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(server_->next_layer().socket().available(), wire);
  std::string got;
  run(
      [&]() -> asio::awaitable<void> {
        std::array<char, 64> buffer{};
        auto [ec, n] = co_await server_->async_read_some(asio::buffer(buffer), as_tuple_awaitable);
        EXPECT_FALSE(ec) << ec.message();
        got.assign(buffer.data(), n);
      },
      []() -> asio::awaitable<void> { co_return; });
  EXPECT_EQ(got, "xabcdefg");
}

TEST_F(TlsStreamTest, ATls12ClientIsServedToo) {
  ASSERT_EQ(SSL_set_max_proto_version(client_.native_handle(), TLS1_2_VERSION), 1);
  handshake();
  EXPECT_EQ(SSL_version(client_.native_handle()), TLS1_2_VERSION);
  EXPECT_FALSE(server_->carries_records());  // OpenSSL carries TLS 1.2's
  EXPECT_NE(server_->native_handle(), nullptr);
  const std::string up = pattern(100 * 1024);
  std::string got, back(up.size(), '\0');
  run(
      [&]() -> asio::awaitable<void> {
        error_code ec;
        got = co_await server_read(up.size(), ec);
        EXPECT_FALSE(ec) << ec.message();
        co_await asio::async_write(*server_, asio::buffer(got), as_tuple_awaitable);
        auto [sec] = co_await server_->async_shutdown(as_tuple_awaitable);
        EXPECT_FALSE(sec) << sec.message();
      },
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(client_, asio::buffer(up), as_tuple_awaitable);
        auto [ec, n] = co_await asio::async_read(client_, asio::buffer(back), as_tuple_awaitable);
        EXPECT_FALSE(ec) << ec.message();
        std::array<char, 16> more;
        auto [eof, m] = co_await client_.async_read_some(asio::buffer(more), as_tuple_awaitable);
        EXPECT_EQ(eof, asio::error::eof) << eof.message();
      });
  EXPECT_TRUE(back == up);
}

TEST_F(TlsStreamTest, ShutdownSendsCloseNotifyThePeerReadsAsEof) {
  handshake();
  run(
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(*server_, asio::buffer("last words", 10), as_tuple_awaitable);
        auto [ec] = co_await server_->async_shutdown(as_tuple_awaitable);
        EXPECT_FALSE(ec) << ec.message();
      },
      [&]() -> asio::awaitable<void> {
        std::string got(64, '\0');
        auto [ec, n] = co_await asio::async_read(client_, asio::buffer(got), as_tuple_awaitable);
        EXPECT_EQ(ec, asio::error::eof) << ec.message();  // a clean close_notify, not a truncation
        EXPECT_EQ(got.substr(0, n), "last words");
      });
}

TEST_F(TlsStreamTest, ThePeersCloseNotifyIsEof) {
  handshake();
  run(
      [&]() -> asio::awaitable<void> {
        error_code ec;
        const auto got = co_await server_read(100, ec);
        EXPECT_EQ(got, "bye");
        EXPECT_EQ(ec, asio::error::eof) << ec.message();
        auto [sec] = co_await server_->async_shutdown(as_tuple_awaitable);
        EXPECT_FALSE(sec) << sec.message();
      },
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(client_, asio::buffer("bye", 3), as_tuple_awaitable);
        // Asio's shutdown waits for the server's close_notify in return.
        auto [ec] = co_await client_.async_shutdown(as_tuple_awaitable);
        EXPECT_FALSE(ec) << ec.message();
      });
}

TEST_F(TlsStreamTest, AHangUpWithoutCloseNotifyIsATruncation) {
  handshake();
  run(
      [&]() -> asio::awaitable<void> {
        error_code ec;
        const auto got = co_await server_read(100, ec);
        EXPECT_EQ(got, "cut");
        EXPECT_EQ(ec, asio::ssl::error::stream_truncated) << ec.message();
      },
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(client_, asio::buffer("cut", 3), as_tuple_awaitable);
        client_.next_layer().close();
      });
}

TEST_F(TlsStreamTest, APeerThatSpeaksNoTlsFailsTheHandshakeAtOnce) {
  run(
      [&]() -> asio::awaitable<void> {
        auto [ec] = co_await server_->async_handshake(as_tuple_awaitable);
        EXPECT_TRUE(ec);
        EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
        server_->next_layer().close();
      },
      [&]() -> asio::awaitable<void> {
        const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        co_await asio::async_write(client_.next_layer(), asio::buffer(request), as_tuple_awaitable);
        // The server's alert, then the end of the connection.
        std::array<char, 256> sink;
        for (;;) {
          auto [ec, n] = co_await client_.next_layer().async_read_some(asio::buffer(sink), as_tuple_awaitable);
          if (ec) break;
        }
      });
}

TEST_F(TlsStreamTest, ASilentPeerMeetsTheNextLayersDeadline) {
  run(
      [&]() -> asio::awaitable<void> {
        server_->next_layer().expires_after(std::chrono::milliseconds(200));
        auto [ec] = co_await server_->async_handshake(as_tuple_awaitable);
        EXPECT_EQ(ec, beast::error::timeout) << ec.message();
      },
      []() -> asio::awaitable<void> { co_return; });
}

TEST_F(TlsStreamTest, AnIdleConnectionGivesItsBuffersBack) {
  handshake();
  const std::string big = pattern(1 << 20);
  run(
      [&]() -> asio::awaitable<void> {
        error_code ec;
        const auto got = co_await server_read(big.size(), ec);
        EXPECT_EQ(got.size(), big.size());
        co_await asio::async_write(*server_, asio::buffer(big), as_tuple_awaitable);
        // Then small talk, as an idle agent's pings: the buffers shrink back.
        for (int i = 0; i < 12; ++i) {
          std::array<char, 4> ping{};
          co_await asio::async_read(*server_, asio::buffer(ping), as_tuple_awaitable);
          co_await asio::async_write(*server_, asio::buffer(ping), as_tuple_awaitable);
        }
      },
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(client_, asio::buffer(big), as_tuple_awaitable);
        std::string back(big.size(), '\0');
        co_await asio::async_read(client_, asio::buffer(back), as_tuple_awaitable);
        for (int i = 0; i < 12; ++i) {
          std::array<char, 4> ping{'p', 'i', 'n', 'g'};
          co_await asio::async_write(client_, asio::buffer(ping), as_tuple_awaitable);
          co_await asio::async_read(client_, asio::buffer(ping), as_tuple_awaitable);
        }
      });
  // Asio's own stream would hold 68 KiB here for the connection's life.
  EXPECT_LE(server_->buffered_capacity(), 2048u);
}

class TlsStreamSuiteTest : public TlsStreamTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(TlsStreamSuiteTest, PastATls13HandshakeTheRecordsAreTheStreamsOwn) {
  ASSERT_EQ(SSL_set_ciphersuites(client_.native_handle(), GetParam()), 1);
  handshake();
  EXPECT_STREQ(SSL_CIPHER_get_name(SSL_get_current_cipher(client_.native_handle())), GetParam());
  EXPECT_TRUE(server_->carries_records());
  EXPECT_EQ(server_->native_handle(), nullptr);  // OpenSSL's session is freed
  for (const std::size_t size : {std::size_t{1}, std::size_t{16 * 1024}, std::size_t{100 * 1024 + 7}}) {
    const std::string up = pattern(size);
    EXPECT_TRUE(echo(up) == up) << size;
  }
}

INSTANTIATE_TEST_SUITE_P(EverySuiteOpenSslEnables, TlsStreamSuiteTest,
                         ::testing::Values("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256"));

TEST_F(TlsStreamTest, KeyUpdatesBothWaysKeepTheDataFlowing) {
  // Counts the KeyUpdates the client receives from the server.
  static int updates_received;
  updates_received = 0;
  SSL_set_msg_callback(client_.native_handle(), [](int write_p, int, int content_type, const void* buf, std::size_t len,
                                                   SSL*, void*) {
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 && *static_cast<const unsigned char*>(buf) == 24) {
      ++updates_received;
    }
  });
  handshake();
  ASSERT_TRUE(server_->carries_records());
  int requested = 0;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    // The client's keys change with its next write; every other time it
    // asks the server to change its own, which it must before it answers.
    const bool request = round % 2 == 0;
    ASSERT_EQ(SSL_key_update(client_.native_handle(), request ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    requested += request ? 1 : 0;
    const std::string up = pattern(20000 + round);
    EXPECT_TRUE(echo(up) == up);
    EXPECT_EQ(updates_received, requested);
  }
}

// A record no client's TLS would send, written straight to the socket once
// the handshake is done; the reason OpenSSL would give for it.
struct BadRecord {
  const char* name;
  std::string bytes;
  int reason;
};

void PrintTo(const BadRecord& record, std::ostream* os) { *os << record.name; }

class TlsStreamBadRecordTest : public TlsStreamTest, public ::testing::WithParamInterface<BadRecord> {};

TEST_P(TlsStreamBadRecordTest, EndsTheStreamForGood) {
  handshake();
  ASSERT_TRUE(server_->carries_records());
  error_code first, again;
  run(
      [&]() -> asio::awaitable<void> {
        const auto got = co_await server_read(100, first);
        EXPECT_EQ(got, "");
        co_await server_read(100, again);
      },
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(client_.next_layer(), asio::buffer(GetParam().bytes), as_tuple_awaitable);
      });
  EXPECT_EQ(first.category(), asio::error::get_ssl_category()) << first.message();
  EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(first.value())), GetParam().reason) << first.message();
  EXPECT_EQ(again, first);
}

INSTANTIATE_TEST_SUITE_P(
    Refused, TlsStreamBadRecordTest,
    ::testing::Values(
        // 32 bytes that are no sealed record: its tag cannot match.
        BadRecord{"ForgedTag", std::string("\x17\x03\x03\x00\x20", 5) + std::string(32, 'x'),
                  SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC},
        // Refused by its header, before its body is waited for.
        BadRecord{"TooLong", std::string("\x17\x03\x03\x41\x01", 5), SSL_R_ENCRYPTED_LENGTH_TOO_LONG},
        BadRecord{"TooShortForATag", std::string("\x17\x03\x03\x00\x10", 5) + std::string(16, 'x'),
                  SSL_R_RECORD_TOO_SMALL},
        BadRecord{"ChangeCipherSpecAfterTheHandshake", std::string("\x14\x03\x03\x00\x01\x01", 6),
                  SSL_R_UNEXPECTED_RECORD}),
    [](const auto& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace paddock::server
