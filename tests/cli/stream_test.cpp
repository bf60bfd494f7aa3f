#include "cli/stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <gtest/gtest.h>

#include <deque>

namespace paddock::cli::stream {
namespace {

std::string bin(char channel, std::string_view payload) { return std::string(1, channel) + std::string(payload); }

TEST(Frames, DecodeChannels) {
  const std::string out = bin(1, "hello\n");
  auto f = decode(out, false);
  EXPECT_EQ(f.kind, Frame::Kind::output);
  EXPECT_EQ(f.channel, Channel::stdout_);
  EXPECT_EQ(f.payload, "hello\n");

  const std::string err = bin(2, "oops");
  EXPECT_EQ(decode(err, false).channel, Channel::stderr_);

  const std::string status = bin(3, R"({"status":"Success"})");
  auto s = decode(status, false);
  EXPECT_EQ(s.kind, Frame::Kind::status);
  EXPECT_EQ(s.payload, R"({"status":"Success"})");

  EXPECT_EQ(decode("", false).kind, Frame::Kind::ignored);
  EXPECT_EQ(decode(bin(0, "x"), false).kind, Frame::Kind::ignored);   // stdin never comes back
  EXPECT_EQ(decode(bin(4, "{}"), false).kind, Frame::Kind::ignored);  // nor does resize
  EXPECT_EQ(decode(bin(9, "?"), false).kind, Frame::Kind::ignored);   // a future channel
  EXPECT_EQ(decode(std::string(1, '\xff'), false).kind, Frame::Kind::ignored);

  auto text = decode(R"({"cpuPercent":1})", true);
  EXPECT_EQ(text.kind, Frame::Kind::text);
  EXPECT_EQ(text.payload, R"({"cpuPercent":1})");
  // A text message that happens to start with \x01 is still text.
  EXPECT_EQ(decode(bin(1, "x"), true).kind, Frame::Kind::text);

  // Binary payloads are kept byte for byte.
  const std::string raw = bin(1, std::string("\0\x1b[2J\xff", 6));
  EXPECT_EQ(decode(raw, false).payload.size(), 6u);
}

TEST(Frames, Encode) {
  EXPECT_EQ(encode(Channel::stdin_, "ls\n"), bin(0, "ls\n"));
  EXPECT_EQ(encode(Channel::stdin_, ""), std::string(1, '\0'));
  const std::string r = resize_message(120, 40);
  ASSERT_EQ(r[0], '\x04');
  EXPECT_EQ(nlohmann::json::parse(r.substr(1)), (nlohmann::json{{"width", 120}, {"height", 40}}));
}

TEST(Frames, Status) {
  auto ok = parse_status(R"({"status":"Success"})");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->success);
  EXPECT_FALSE(ok->exit_code);

  auto code = parse_status(R"({"status":"Failure","exitCode":3})");
  ASSERT_TRUE(code);
  EXPECT_FALSE(code->success);
  EXPECT_EQ(code->exit_code, 3);

  auto why = parse_status(R"({"status":"Failure","message":"container not found\u001b[31m"})");
  ASSERT_TRUE(why);
  EXPECT_EQ(why->message, "container not found?[31m");

  auto huge = parse_status(R"({"status":"Failure","exitCode":100000})");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->exit_code, 1);

  EXPECT_FALSE(parse_status("not json"));
  EXPECT_FALSE(parse_status(R"({"exitCode":3})"));
  EXPECT_FALSE(parse_status("[]"));
}

TEST(Frames, HostAccess) {
  auto a = parse_host_access({{"type", "hostAccess"}, {"url", "wss://s:8443/v1/stream"}, {"token", "T"}});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->url, "wss://s:8443/v1/stream");
  EXPECT_EQ(a->token, "T");
  EXPECT_FALSE(parse_host_access({{"type", "host"}, {"url", "wss://s"}, {"token", "T"}}));
  EXPECT_FALSE(parse_host_access({{"type", "hostAccess"}, {"url", "file:///etc/passwd"}, {"token", "T"}}));
  EXPECT_FALSE(parse_host_access({{"type", "hostAccess"}, {"url", "wss://s"}}));
}

// An in-memory WebSocket: reads come from a script, writes are recorded.
class ScriptedSocket final : public WebSocket {
 public:
  ScriptedSocket(asio::any_io_executor ex, std::deque<std::pair<std::string, bool>> script)
      : ex_(std::move(ex)), script_(std::move(script)) {}

  asio::any_io_executor get_executor() override { return ex_; }
  asio::awaitable<error_code> read(beast::flat_buffer& buffer) override {
    if (script_.empty()) co_return websocket::error::closed;
    auto [message, text] = script_.front();
    script_.pop_front();
    text_ = text;
    auto space = buffer.prepare(message.size());
    asio::buffer_copy(space, asio::buffer(message));
    buffer.commit(message.size());
    co_return error_code{};
  }
  bool got_text() const override { return text_; }
  asio::awaitable<error_code> write(asio::const_buffer data, bool binary) override {
    written.emplace_back(std::string(static_cast<const char*>(data.data()), data.size()), binary);
    co_return error_code{};
  }
  asio::awaitable<error_code> write_batch(std::span<const OutgoingMessage> messages) override {
    for (const auto& m : messages) written.emplace_back(m.data, m.binary);
    co_return error_code{};
  }
  asio::awaitable<error_code> close(websocket::close_reason) override {
    closed = true;
    co_return error_code{};
  }
  void close_soon(websocket::close_reason) override { closed = true; }
  void abort() override { closed = true; }
  void set_read_limit(std::size_t) override {}
  void set_idle_timeout(std::chrono::seconds, bool) override {}
  websocket::close_reason reason() const override { return {websocket::close_code::going_away, "server shutdown"}; }
  bool is_open() const override { return !closed; }

  std::vector<std::pair<std::string, bool>> written;
  bool closed = false;

 private:
  asio::any_io_executor ex_;
  std::deque<std::pair<std::string, bool>> script_;
  bool text_ = false;
};

End run_reader(std::shared_ptr<ScriptedSocket> ws, Handlers handlers, asio::io_context& io) {
  Reader reader(ws, std::move(handlers));
  std::optional<End> end;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { end = co_await reader.run(); }, asio::detached);
  io.run();
  return end.value();
}

TEST(Reader, DemultiplexesUntilTheStatus) {
  asio::io_context io;
  auto ws = std::make_shared<ScriptedSocket>(
      io.get_executor(), std::deque<std::pair<std::string, bool>>{{bin(1, "out1 "), false},
                                                                  {bin(2, "err1"), false},
                                                                  {bin(1, "out2"), false},
                                                                  {bin(3, R"({"status":"Failure","exitCode":3})"), false},
                                                                  {bin(1, "after the status"), false}});
  std::string out, err;
  Handlers h;
  h.on_stdout = [&](std::string_view d) { out += d; return true; };
  h.on_stderr = [&](std::string_view d) { err += d; return true; };
  auto end = run_reader(ws, h, io);
  EXPECT_EQ(end.how, End::How::status);
  EXPECT_FALSE(end.status.success);
  EXPECT_EQ(end.status.exit_code, 3);
  EXPECT_EQ(out, "out1 out2");
  EXPECT_EQ(err, "err1");
  EXPECT_TRUE(ws->closed) << "the client answers the close after the status";
}

TEST(Reader, ACloseWithoutStatusIsReported) {
  asio::io_context io;
  auto ws = std::make_shared<ScriptedSocket>(io.get_executor(),
                                             std::deque<std::pair<std::string, bool>>{{bin(1, "partial"), false}});
  auto end = run_reader(ws, {}, io);
  EXPECT_EQ(end.how, End::How::closed);
  EXPECT_EQ(end.detail, "the server closed the stream without a status (code 1001: server shutdown)");
}

TEST(Reader, TextHandlerCanStopAfterOneSample) {
  asio::io_context io;
  auto ws = std::make_shared<ScriptedSocket>(
      io.get_executor(), std::deque<std::pair<std::string, bool>>{{R"({"cpuPercent":1.5})", true},
                                                                  {R"({"cpuPercent":2.5})", true}});
  std::vector<std::string> samples;
  Handlers h;
  h.on_text = [&](std::string_view t) {
    samples.emplace_back(t);
    return false;
  };
  auto end = run_reader(ws, h, io);
  EXPECT_EQ(end.how, End::How::stopped);
  EXPECT_EQ(samples, std::vector<std::string>{R"({"cpuPercent":1.5})"});
  EXPECT_TRUE(ws->closed);
}

TEST(Reader, BrokenStdoutStops) {
  asio::io_context io;
  auto ws = std::make_shared<ScriptedSocket>(
      io.get_executor(), std::deque<std::pair<std::string, bool>>{{bin(1, "a"), false}, {bin(1, "b"), false}});
  int calls = 0;
  Handlers h;
  h.on_stdout = [&](std::string_view) {
    ++calls;
    return false;
  };
  auto end = run_reader(ws, h, io);
  EXPECT_EQ(end.how, End::How::stopped);
  EXPECT_EQ(calls, 1);
}

TEST(Reader, GarbledStatusIsAnError) {
  asio::io_context io;
  auto ws = std::make_shared<ScriptedSocket>(io.get_executor(),
                                             std::deque<std::pair<std::string, bool>>{{bin(3, "{"), false}});
  auto end = run_reader(ws, {}, io);
  EXPECT_EQ(end.how, End::How::closed);
  EXPECT_EQ(end.detail, "the stream ended with a status that is not one");
}

}  // namespace
}  // namespace paddock::cli::stream
