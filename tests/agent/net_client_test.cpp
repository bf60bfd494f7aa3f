// common/http_client and common/ws_client against small servers on loopback
// (port 0), plain and TLS. They live with the agent's tests because the
// agent is their first user.

#include "common/http_client.hpp"
#include "common/tls.hpp"
#include "common/ws_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

namespace paddock {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pdk-net-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Serves one connection on a thread: `serve` gets the (TLS-wrapped if asked)
// stream's first request and writes what it likes.
class OneShotServer {
 public:
  using Handler = std::function<void(beast::tcp_stream&, std::shared_ptr<asio::ssl::context>)>;

  OneShotServer(std::string address, Handler handler, std::shared_ptr<asio::ssl::context> tls = nullptr)
      : acceptor_(io_, {asio::ip::make_address(address), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, handler = std::move(handler), tls] {
      error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      beast::tcp_stream stream(std::move(socket));
      handler(stream, tls);
    });
  }
  ~OneShotServer() {
    error_code ignored;
    acceptor_.close(ignored);
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return port_; }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// Reads one request and answers it (plain or TLS).
OneShotServer::Handler answer(unsigned status, std::string body, std::string* seen = nullptr) {
  return [status, body, seen](beast::tcp_stream& stream, std::shared_ptr<asio::ssl::context> tls) {
    auto serve = [&](auto& s) {
      beast::flat_buffer buffer;
      http::request<http::string_body> req;
      error_code ec;
      http::read(s, buffer, req, ec);
      if (ec) return;
      if (seen) *seen = std::string(req.method_string()) + " " + std::string(req.target()) + " " + req.body() +
                        " host=" + std::string(req[http::field::host]);
      http::response<http::string_body> res{static_cast<http::status>(status), 11};
      res.set("X-Test", "yes");
      res.body() = body;
      res.prepare_payload();
      http::write(s, res, ec);
    };
    if (!tls) return serve(stream);
    asio::ssl::stream<beast::tcp_stream&> ssl(stream, *tls);
    error_code ec;
    ssl.handshake(asio::ssl::stream_base::server, ec);
    if (ec) return;
    serve(ssl);
    ssl.shutdown(ec);
  };
}

struct Identity {
  TempDir dir;
  tls::ServerIdentity identity;
  std::shared_ptr<asio::ssl::context> context;
  explicit Identity(std::vector<std::string> names) {
    auto made = tls::ensure_server_identity(dir.path, names);
    EXPECT_TRUE(made.ok()) << made.error().message;
    identity = *made;
    context = *tls::make_server_context(identity);
  }
};

bool have_ipv6_loopback() {
  asio::io_context io;
  error_code ec;
  tcp::acceptor a(io);
  a.open(tcp::v6(), ec);
  if (!ec) a.bind({asio::ip::make_address("::1"), 0}, ec);
  return !ec;
}

TEST(Url, Parse) {
  auto u = http_client::parse_url("https://Example.COM:8443/a/b?c=d");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/a/b?c=d");
  EXPECT_EQ(u->origin(), "https://example.com:8443");
  auto v6 = http_client::parse_url("http://[::1]");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(v6->port, 80);
  EXPECT_EQ(v6->target, "/");
  EXPECT_EQ(v6->authority(), "[::1]");
  for (const char* bad : {"", "example.com", "ftp://x/", "http://user@x/", "http://x/#f", "http://x:0/", "http://:80/"}) {
    EXPECT_FALSE(http_client::parse_url(bad).ok()) << bad;
  }
}

TEST(HttpClient, PlainPostWithBody) {
  std::string seen;
  OneShotServer server("127.0.0.1", answer(201, "{\"ok\":true}", &seen));
  auto res = http_client::request("POST", "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/x?y=1",
                                  {{"Content-Type", "application/json"}}, "{\"a\":1}", tls::ClientTrust::system());
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->status, 201u);
  EXPECT_EQ(res->body, "{\"ok\":true}");
  EXPECT_EQ(res->header("x-test"), "yes");
  EXPECT_EQ(seen, "POST /v1/x?y=1 {\"a\":1} host=127.0.0.1:" + std::to_string(server.port()));
}

TEST(HttpClient, Ipv6Literal) {
  ASSERT_TRUE(have_ipv6_loopback()) << "this test needs the IPv6 loopback (::1)";
  OneShotServer server("::1", answer(200, "six"));
  auto res = http_client::request("GET", "http://[::1]:" + std::to_string(server.port()) + "/", {}, "",
                                  tls::ClientTrust::system());
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->body, "six");
}

TEST(HttpClient, ConnectionRefusedIsOneLine) {
  std::uint16_t port;
  {
    asio::io_context io;
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto res = http_client::request("GET", "https://127.0.0.1:" + std::to_string(port) + "/", {}, "",
                                  tls::ClientTrust::system());
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().message, "cannot connect to https://127.0.0.1:" + std::to_string(port) + ": connection refused");
  EXPECT_EQ(res.error().code, Errc::unavailable);
}

TEST(HttpClient, UnknownHostName) {
  auto res = http_client::request("GET", "http://no-such-host.invalid/", {}, "", tls::ClientTrust::system(),
                                  {.timeout = 5s});
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("cannot connect to http://no-such-host.invalid"), std::string::npos)
      << res.error().message;
}

TEST(HttpClient, TimeoutWhenTheServerNeverAnswers) {
  OneShotServer server("127.0.0.1", [](beast::tcp_stream& s, std::shared_ptr<asio::ssl::context>) {
    char buf[512];
    error_code ec;
    while (!ec) s.socket().read_some(asio::buffer(buf), ec);  // until the client gives up
  });
  const auto start = std::chrono::steady_clock::now();
  auto res = http_client::request("GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/", {}, "",
                                  tls::ClientTrust::system(), {.timeout = 300ms});
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("timed out"), std::string::npos) << res.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(HttpClient, BodyLimit) {
  OneShotServer server("127.0.0.1", answer(200, std::string(2048, 'x')));
  auto res = http_client::request("GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/", {}, "",
                                  tls::ClientTrust::system(), {.body_limit = 1024});
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("over 1024 bytes"), std::string::npos) << res.error().message;
}

TEST(HttpClient, TlsPinnedCaVerifiesTheName) {
  Identity id({"localhost", "127.0.0.1"});
  OneShotServer server("127.0.0.1", answer(200, "pinned"), id.context);
  auto res = http_client::request("GET", "https://localhost:" + std::to_string(server.port()) + "/", {}, "",
                                  tls::ClientTrust::pinned(id.identity.ca_pem));
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->body, "pinned");
}

TEST(HttpClient, TlsUntrustedCaFailsWithTheReason) {
  Identity id({"127.0.0.1"});
  OneShotServer server("127.0.0.1", answer(200, "x"), id.context);
  const std::string origin = "https://127.0.0.1:" + std::to_string(server.port());
  auto res = http_client::request("GET", origin + "/", {}, "", tls::ClientTrust::system());
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().message.rfind("cannot connect to " + origin + ": TLS: certificate verify failed (", 0), 0u)
      << res.error().message;
  EXPECT_EQ(res.error().code, Errc::forbidden) << "trusting the server needs a person";
}

TEST(HttpClient, TlsNameMismatchFails) {
  Identity id({"other.example"});
  OneShotServer server("127.0.0.1", answer(200, "x"), id.context);
  auto res = http_client::request("GET", "https://127.0.0.1:" + std::to_string(server.port()) + "/", {}, "",
                                  tls::ClientTrust::pinned(id.identity.ca_pem));
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("certificate verify failed (IP address mismatch)"), std::string::npos)
      << res.error().message;
}

TEST(HttpClient, InsecureFetchesWithoutVerification) {
  Identity id({"other.example"});
  OneShotServer server("127.0.0.1", answer(200, "ca bytes"), id.context);
  auto res = http_client::request("GET", "https://127.0.0.1:" + std::to_string(server.port()) + "/v1/cacerts", {},
                                  "", tls::ClientTrust::insecure());
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->body, "ca bytes");
}

// Dials on a fresh io_context, exchanges one message when connected, and
// returns the error if the dial failed (the socket must not outlive its
// io_context, so it never leaves here).
std::optional<ws_client::DialError> dial(const std::string& url, ws_client::DialOptions options) {
  asio::io_context io;
  std::optional<ws_client::DialError> failure;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto r = co_await ws_client::dial_web_socket(io.get_executor(), url, options);
        done = true;
        if (!r) {
          failure = r.error();
          co_return;
        }
        auto ws = *r;
        const std::string ping = "ping";
        co_await ws->write(asio::buffer(ping), false);
        beast::flat_buffer buffer;
        auto ec = co_await ws->read(buffer);
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(beast::buffers_to_string(buffer.data()), "echo:ping");
        co_await ws->close({websocket::close_code::normal});
      },
      asio::detached);
  io.run();
  EXPECT_TRUE(done);
  return failure;
}

OneShotServer::Handler echo_ws(std::string* auth) {
  return [auth](beast::tcp_stream& stream, std::shared_ptr<asio::ssl::context> tls) {
    auto serve = [&](auto& s) {
      beast::flat_buffer buffer;
      http::request<http::string_body> req;
      error_code ec;
      http::read(s, buffer, req, ec);
      if (ec) return;
      if (auth) *auth = std::string(req[http::field::authorization]);
      websocket::stream<decltype(s)> ws(s);
      ws.accept(req, ec);
      if (ec) return;
      beast::flat_buffer in;
      ws.read(in, ec);
      if (ec) return;
      ws.text(true);
      ws.write(asio::buffer("echo:" + beast::buffers_to_string(in.data())), ec);
      in.consume(in.size());
      ws.read(in, ec);  // the client's close
    };
    if (!tls) return serve(stream);
    asio::ssl::stream<beast::tcp_stream&> ssl(stream, *tls);
    error_code ec;
    ssl.handshake(asio::ssl::stream_base::server, ec);
    if (!ec) serve(ssl);
  };
}

TEST(WsClient, PlainUpgradeSendsHeaders) {
  std::string auth;
  OneShotServer server("127.0.0.1", echo_ws(&auth));
  ws_client::DialOptions options;
  options.headers = {{"Authorization", "Basic abc"}};
  auto failure = dial("ws://127.0.0.1:" + std::to_string(server.port()) + "/v1/connect", options);
  ASSERT_FALSE(failure) << failure->message;
  EXPECT_EQ(auth, "Basic abc");
}

TEST(WsClient, TlsUpgradeWithPinnedCa) {
  Identity id({"127.0.0.1"});
  OneShotServer server("127.0.0.1", echo_ws(nullptr), id.context);
  ws_client::DialOptions options;
  options.tls = *tls::make_client_context(tls::ClientTrust::pinned(id.identity.ca_pem));
  auto failure = dial("https://127.0.0.1:" + std::to_string(server.port()) + "/v1/connect", options);
  ASSERT_FALSE(failure) << failure->message;
}

TEST(WsClient, RefusalCarriesStatusAndApiCode) {
  OneShotServer server("127.0.0.1",
                       answer(410, R"({"type":"error","status":410,"code":"HostRemoved","message":"host removed"})"));
  auto failure = dial("ws://127.0.0.1:" + std::to_string(server.port()) + "/v1/connect", {});
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->http_status, 410u);
  EXPECT_EQ(failure->api_code, "HostRemoved");
  EXPECT_EQ(failure->api_message, "host removed");
  EXPECT_EQ(failure->code, Errc::not_found);
  EXPECT_NE(failure->message.find("410 HostRemoved: host removed"), std::string::npos) << failure->message;
}

TEST(WsClient, TlsVerifyFailure) {
  Identity id({"127.0.0.1"});
  OneShotServer server("127.0.0.1", echo_ws(nullptr), id.context);
  ws_client::DialOptions options;
  options.tls = *tls::make_client_context(tls::ClientTrust::system());
  auto failure = dial("wss://127.0.0.1:" + std::to_string(server.port()) + "/v1/connect", options);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->http_status, 0u);
  EXPECT_EQ(failure->code, Errc::forbidden);
  EXPECT_NE(failure->message.find("TLS: certificate verify failed"), std::string::npos) << failure->message;
}

}  // namespace
}  // namespace paddock
