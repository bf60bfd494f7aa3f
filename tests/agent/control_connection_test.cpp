// The control connection against a scripted WebSocket server on loopback,
// on the same single-threaded io_context (no threads, no sleeps): refusals
// before the upgrade, close codes during a session, reconnects, and a
// server that never says welcome.

#include "agent/control_connection.hpp"

#include "common/crypto.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace paddock::agent {
namespace {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

// What the fake server does with the n-th connection.
struct Step {
  unsigned refuse_status = 0;  // answer the upgrade with this status and an API error body
  std::string refuse_code;
  bool welcome = true;
  std::optional<std::uint16_t> close_code;  // after the welcome; none: stay open
};

class FakeServer {
 public:
  FakeServer(asio::io_context& io, std::vector<Step> steps)
      : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), steps_(std::move(steps)) {
    asio::co_spawn(io_, accept_loop(), asio::detached);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  void close() {
    error_code ignored;
    acceptor_.close(ignored);
    for (auto& ws : open_) ws->next_layer().close();
  }

  std::size_t connections = 0;
  std::vector<std::string> authorizations;
  std::vector<std::string> targets;

 private:
  using Ws = websocket::stream<beast::tcp_stream>;

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      const Step step = connections < steps_.size() ? steps_[connections] : Step{};
      ++connections;
      asio::co_spawn(io_, serve(beast::tcp_stream(std::move(socket)), step), asio::detached);
    }
  }

  asio::awaitable<void> serve(beast::tcp_stream stream, Step step) {
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    auto [rec, n] = co_await http::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (rec) co_return;
    authorizations.emplace_back(req[http::field::authorization]);
    targets.emplace_back(req.target());
    if (step.refuse_status != 0) {
      http::response<http::string_body> res{static_cast<http::status>(step.refuse_status), 11};
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"type":"error","code":")" + step.refuse_code + R"(","message":"scripted"})";
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
      co_return;
    }
    auto ws = std::make_shared<Ws>(std::move(stream));
    auto [aec] = co_await ws->async_accept(req, asio::as_tuple(asio::use_awaitable));
    if (aec) co_return;
    open_.push_back(ws);
    if (step.welcome) {
      const std::string welcome = R"({"type":"welcome","hostId":"1h1","jwks":{"keys":[]}})";
      co_await ws->async_write(asio::buffer(welcome), asio::as_tuple(asio::use_awaitable));
    }
    if (step.close_code) {
      co_await ws->async_close(websocket::close_reason(static_cast<websocket::close_code>(*step.close_code), "scripted"),
                               asio::as_tuple(asio::use_awaitable));
      co_return;
    }
    beast::flat_buffer in;
    for (;;) {
      auto [ec, m] = co_await ws->async_read(in, asio::as_tuple(asio::use_awaitable));
      (void)m;
      if (ec) co_return;
      in.consume(in.size());
    }
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::vector<Step> steps_;
  std::vector<std::shared_ptr<Ws>> open_;
};

struct Outcome {
  std::optional<ExitStatus> fatal;
  int sessions = 0;
  std::vector<nlohmann::json> jwks;
};

// Runs a connection against `server` until `done` says so (checked after
// every callback), a fatal refusal, or 20 s.
Outcome run_connection(asio::io_context& io, FakeServer& server, const std::function<bool(const Outcome&)>& done,
                   std::chrono::seconds welcome_timeout = 10s) {
  Outcome run;
  ControlConnection::Config config;
  config.server_url = server.url();
  config.credential = {"agent-ak", "s3cret"};
  config.retry_base = 10ms;
  config.retry_cap = 50ms;
  config.welcome_timeout = welcome_timeout;
  config.conflict_patience = 300ms;
  std::unique_ptr<ControlConnection> connection;
  asio::steady_timer guard(io, 20s);
  auto finish = [&] {
    connection->stop();
    server.close();
    guard.cancel();
  };
  ControlConnection::Callbacks callbacks;
  callbacks.on_session = [&] {
    ++run.sessions;
    if (done(run)) finish();
  };
  callbacks.on_jwks = [&](const nlohmann::json& j) { run.jwks.push_back(j); };
  callbacks.on_fatal = [&](ExitStatus e) {
    run.fatal = e;
    finish();
  };
  connection = std::make_unique<ControlConnection>(io.get_executor(), config, callbacks);
  guard.async_wait([&](error_code ec) {
    if (!ec) {
      ADD_FAILURE() << "timed out";
      finish();
    }
  });
  connection->start();
  io.run();
  return run;
}

TEST(ControlConnection, WelcomeStartsASessionWithBasicAuth) {
  asio::io_context io;
  FakeServer server(io, {Step{}});
  auto run = run_connection(io, server, [](const Outcome& r) { return r.sessions == 1; });
  EXPECT_EQ(run.sessions, 1);
  EXPECT_FALSE(run.fatal);
  ASSERT_EQ(server.authorizations.size(), 1u);
  EXPECT_EQ(server.authorizations[0], "Basic " + crypto::base64_encode("agent-ak:s3cret"));
  EXPECT_EQ(server.targets[0], "/v1/connect");
  ASSERT_EQ(run.jwks.size(), 1u);
  EXPECT_EQ(run.jwks[0], (nlohmann::json{{"keys", nlohmann::json::array()}}));
}

TEST(ControlConnection, LostConnectionIsDialedAgain) {
  asio::io_context io;
  Step going_away;
  going_away.close_code = 1001;
  FakeServer server(io, {going_away, going_away, Step{}});
  auto run = run_connection(io, server, [](const Outcome& r) { return r.sessions == 3; });
  EXPECT_EQ(run.sessions, 3);
  EXPECT_EQ(server.connections, 3u);
}

TEST(ControlConnection, UnauthorizedIsRetried) {
  asio::io_context io;
  Step unauthorized;
  unauthorized.refuse_status = 401;
  unauthorized.refuse_code = "Unauthorized";
  FakeServer server(io, {unauthorized, unauthorized, Step{}});
  auto run = run_connection(io, server, [](const Outcome& r) { return r.sessions == 1; });
  EXPECT_EQ(run.sessions, 1);
  EXPECT_EQ(server.connections, 3u);
}

TEST(ControlConnection, RefusalsBeforeTheUpgradeAreFatal) {
  for (auto [status, code, text] : std::vector<std::tuple<unsigned, std::string, std::string>>{
           {410, "HostRemoved", "register it again with a new command"},
           {403, "HostDeactivated", "deactivated"},
           {409, "HostConflict", "was the state copied?"}}) {
    asio::io_context io;
    Step refuse;
    refuse.refuse_status = status;
    refuse.refuse_code = code;
    FakeServer server(io, {refuse, refuse, refuse});
    auto run = run_connection(io, server, [](const Outcome&) { return true; });
    ASSERT_TRUE(run.fatal) << code;
    EXPECT_EQ(run.fatal->code, 2);
    EXPECT_NE(run.fatal->message.find(text), std::string::npos) << run.fatal->message;
    EXPECT_EQ(run.sessions, 0);
    if (status == 409) {
      // Retried for conflict_patience first: a dead connection of this agent may still hold the identity.
      EXPECT_GE(server.connections, 1u);
    } else {
      EXPECT_EQ(server.connections, 1u) << "never dialed again";
    }
  }
}

TEST(ControlConnection, CloseCodesDuringASessionAreFatal) {
  for (auto [close, text] : std::vector<std::pair<std::uint16_t, std::string>>{
           {4410, "removed"}, {4403, "deactivated"}, {4409, "another machine"}}) {
    asio::io_context io;
    Step step;
    step.close_code = close;
    FakeServer server(io, {step, Step{}});
    auto run = run_connection(io, server, [](const Outcome&) { return false; });
    ASSERT_TRUE(run.fatal) << close;
    EXPECT_EQ(run.fatal->code, 2);
    EXPECT_NE(run.fatal->message.find(text), std::string::npos) << run.fatal->message;
    EXPECT_EQ(server.connections, 1u);
  }
}

TEST(ControlConnection, NoWelcomeMeansReconnect) {
  asio::io_context io;
  Step silent;
  silent.welcome = false;
  FakeServer server(io, {silent, Step{}});
  auto run = run_connection(io, server, [](const Outcome& r) { return r.sessions == 1; }, 1s);
  EXPECT_EQ(run.sessions, 1);
  EXPECT_EQ(server.connections, 2u);
}

TEST(ControlConnection, StopWhileTheServerIsDownEndsPromptly) {
  asio::io_context io;
  std::uint16_t port;
  {
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  ControlConnection::Config config;
  config.server_url = "http://127.0.0.1:" + std::to_string(port);
  config.credential = {"a", "b"};
  ControlConnection connection(io.get_executor(), config, {});
  connection.start();
  asio::steady_timer later(io, 300ms);
  later.async_wait([&](error_code) { connection.stop(); });
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_FALSE(connection.in_session());
}

}  // namespace
}  // namespace paddock::agent
