#include "agent/docker_client.hpp"

#include "agent/bootstrap.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace paddock::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kBusybox = "paddock-test/busybox:latest";

std::string random_suffix() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> dist(0, 0xffffff);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06x", dist(rd));
  return buf;
}

// A fresh short directory under /tmp (unix socket paths are short).
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pdk-t-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (p != nullptr) path = p;
  }
  ~TempDir() {
    if (!path.empty()) std::system(("rm -rf '" + path + "'").c_str());
  }
};

// -- unit: the event line splitter ------------------------------------------

std::vector<std::string> split_all(EventLineSplitter& s, const std::vector<std::string>& pieces,
                                   Status* status = nullptr) {
  std::vector<std::string> lines;
  for (const auto& piece : pieces) {
    auto st = s.feed(piece, [&](std::string_view l) { lines.emplace_back(l); });
    if (!st) {
      if (status != nullptr) *status = st;
      break;
    }
  }
  return lines;
}

TEST(EventLineSplitter, SplitsCompleteLines) {
  EventLineSplitter s;
  auto lines = split_all(s, {"{\"a\":1}\n{\"b\":2}\n"});
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(s.buffered(), 0u);
}

TEST(EventLineSplitter, JoinsLinesAcrossFeeds) {
  EventLineSplitter s;
  auto lines = split_all(s, {"{\"a\"", ":1}\n{\"b", "\":2", "}\n{\"c\":"});
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(s.buffered(), 5u);  // {"c": waits for its newline
}

TEST(EventLineSplitter, ByteAtATimeGivesTheSameLines) {
  std::string stream = "one\ntwo\r\n\n\nthree\n";
  EventLineSplitter s;
  std::vector<std::string> pieces;
  for (char c : stream) pieces.emplace_back(1, c);
  EXPECT_EQ(split_all(s, pieces), (std::vector<std::string>{"one", "two", "three"}));
}

TEST(EventLineSplitter, DropsEmptyLinesAndCarriageReturns) {
  EventLineSplitter s;
  EXPECT_EQ(split_all(s, {"\n\r\n\nx\r\n"}), (std::vector<std::string>{"x"}));
}

TEST(EventLineSplitter, LineAtTheLimitPasses) {
  EventLineSplitter s(8);
  EXPECT_EQ(split_all(s, {"1234", "5678\n"}), (std::vector<std::string>{"12345678"}));
}

TEST(EventLineSplitter, LineOverTheLimitFailsEvenInPieces) {
  EventLineSplitter s(8);
  Status st = Ok{};
  auto lines = split_all(s, {"ok\n1234", "56", "789"}, &st);
  EXPECT_EQ(lines, (std::vector<std::string>{"ok"}));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::invalid_input);
  EXPECT_NE(st.error().message.find("longer than 8 bytes"), std::string::npos);
}

TEST(EventLineSplitter, LineOverTheLimitInOneFeedFails) {
  EventLineSplitter s(4);
  Status st = Ok{};
  split_all(s, {"123456789\n"}, &st);
  EXPECT_FALSE(st.ok());
}

// -- unit: refs, URLs, DOCKER_HOST, versions --------------------------------

TEST(ContainerRef, AcceptsIdsPrefixesAndNames) {
  EXPECT_TRUE(is_valid_container_ref(std::string(64, 'a')));
  EXPECT_TRUE(
      is_valid_container_ref("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(is_valid_container_ref("3f4e"));
  EXPECT_TRUE(is_valid_container_ref("web"));
  EXPECT_TRUE(is_valid_container_ref("my_app.web-1"));
  EXPECT_TRUE(is_valid_container_ref("A"));
  EXPECT_TRUE(is_valid_container_ref(std::string(128, 'x')));
}

TEST(ContainerRef, RejectsAnythingElse) {
  for (std::string bad :
       std::vector<std::string>{"", "/web", "../etc", "a/b", "-rm", ".hidden", "_x", "a b", "a?b",
                                "a%2F", "a#b", "a\nb", "caf\xc3\xa9", "a\\b", "a:b"}) {
    EXPECT_FALSE(is_valid_container_ref(bad)) << bad;
  }
  EXPECT_FALSE(is_valid_container_ref(std::string(129, 'x')));
  EXPECT_FALSE(is_valid_container_ref(std::string_view("a\0b", 3)));
}

TEST(UrlEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(url_encode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(url_encode("a b/c?d&e=f%"), "a%20b%2Fc%3Fd%26e%3Df%25");
  EXPECT_EQ(url_encode("{\"type\":[\"container\"]}"), "%7B%22type%22%3A%5B%22container%22%5D%7D");
  EXPECT_EQ(url_encode(std::string_view("\0\xff", 2)), "%00%FF");
}

TEST(DockerHost, AcceptsUnixSockets) {
  auto ep = parse_docker_host("unix:///var/run/docker.sock");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->socket_path, "/var/run/docker.sock");
  auto def = parse_docker_host("");
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->socket_path, "/var/run/docker.sock");
}

TEST(DockerHost, RejectsEverythingElseClearly) {
  for (std::string bad :
       std::vector<std::string>{"tcp://127.0.0.1:2375", "npipe:////./pipe/docker_engine", "unix://",
                                "unix://relative/path", "/var/run/docker.sock", "ssh://host",
                                "unix:///" + std::string(200, 'x')}) {
    auto ep = parse_docker_host(bad);
    ASSERT_FALSE(ep.ok()) << bad;
    EXPECT_EQ(ep.error().code, Errc::invalid_input);
    EXPECT_FALSE(ep.error().message.empty());
  }
  EXPECT_NE(parse_docker_host("tcp://h:2375").error().message.find("only unix://"),
            std::string::npos);
}

TEST(ApiVersion, ComparesNumerically) {
  EXPECT_LT(compare_api_versions("1.9", "1.41"), 0);
  EXPECT_GT(compare_api_versions("1.41", "1.24"), 0);
  EXPECT_EQ(compare_api_versions("1.41", "1.41"), 0);
  EXPECT_EQ(compare_api_versions("1.41", "1.41.0"), 0);
  EXPECT_LT(compare_api_versions("1.43", "2.0"), 0);
  EXPECT_EQ(compare_api_versions("x", "0"), 0);
}

// -- a loop on its own thread, and calls turned into futures ------------------

class Loop {
 public:
  Loop() : guard_(ioc_.get_executor()), thread_([this] { ioc_.run(); }) {}
  ~Loop() {
    guard_.reset();
    thread_.join();
  }
  boost::asio::any_io_executor executor() { return ioc_.get_executor(); }
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// Starts a call and waits (with a timeout) for its handler on the loop.
template <class Start>
Result<json> call(Loop& loop, Start start, std::chrono::milliseconds timeout = 15s) {
  auto promise = std::make_shared<std::promise<Result<json>>>();
  auto future = promise->get_future();
  auto on_loop = std::make_shared<std::atomic<bool>>(false);
  start([promise, on_loop, &loop](Result<json> r) {
    on_loop->store(loop.on_loop_thread());
    promise->set_value(std::move(r));
  });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return Error{Errc::internal, "test: the handler did not run within the timeout"};
  }
  auto r = future.get();
  EXPECT_TRUE(on_loop->load()) << "the handler ran off the caller's executor";
  return r;
}

// Collects an event stream's callbacks from the loop thread. Shared: the
// handlers may run after a test body returns (when TearDown stops the client).
struct EventLog : std::enable_shared_from_this<EventLog> {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::pair<json, Clock::time_point>> events;
  bool connected = false;
  std::optional<Status> end;

  DockerClient::EventHandler on_event() {
    return [self = shared_from_this()](json e) {
      std::lock_guard lock(self->m);
      self->events.emplace_back(std::move(e), Clock::now());
      self->cv.notify_all();
    };
  }
  DockerClient::EndHandler on_end() {
    return [self = shared_from_this()](Status s) {
      std::lock_guard lock(self->m);
      self->end = std::move(s);
      self->cv.notify_all();
    };
  }
  std::function<void()> on_connected() {
    return [self = shared_from_this()] {
      std::lock_guard lock(self->m);
      self->connected = true;
      self->cv.notify_all();
    };
  }
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, timeout, [&] { return pred(); });
  }
};

// -- a fake Docker on a unix socket, to inject what a real one won't send ---

class FakeDocker {
 public:
  struct Reply {
    std::vector<std::string> writes;  // sent one after another
    bool hold = false;                // keep the connection open afterwards
  };
  using Handler = std::function<Reply(const std::string& target)>;

  explicit FakeDocker(Handler handler) : handler_(std::move(handler)) {
    socket_path_ = dir_.path + "/d.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0) {
      ADD_FAILURE() << "fake docker: cannot listen on " << socket_path_;
    }
    if (::pipe(stop_pipe_.data()) != 0) ADD_FAILURE() << "pipe";
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~FakeDocker() {
    char c = 'x';
    (void)!::write(stop_pipe_[1], &c, 1);
    accept_thread_.join();
    for (auto& t : conn_threads_) t.join();
    ::close(fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }
  std::string host() const { return "unix://" + socket_path_; }
  std::vector<std::string> targets() {
    std::lock_guard lock(m_);
    return targets_;
  }

  static std::string http(int status, std::string_view body, std::string_view reason = "X") {
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + std::string(body);
  }
  static constexpr const char* kStreamHead =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
  static std::string version_body(std::string api = "1.45") {
    return R"({"ApiVersion":")" + api + R"(","MinAPIVersion":"1.24","Version":"99.0"})";
  }

 private:
  bool stopped(int timeout_ms) {
    pollfd p{stop_pipe_[0], POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }
  void accept_loop() {
    for (;;) {
      std::array<pollfd, 2> fds{{{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[1].revents != 0) return;
      int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      conn_threads_.emplace_back([this, conn] { serve(conn); });
    }
  }
  void serve(int conn) {
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      pollfd p[2] = {{conn, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      ::poll(p, 2, -1);
      if (p[1].revents != 0) break;
      auto n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
    }
    auto sp1 = request.find(' ');
    auto sp2 = request.find(' ', sp1 + 1);
    std::string target = sp1 == std::string::npos ? "" : request.substr(sp1 + 1, sp2 - sp1 - 1);
    {
      std::lock_guard lock(m_);
      targets_.push_back(target);
    }
    Reply reply = handler_(target);
    for (const auto& w : reply.writes) {
      if (::send(conn, w.data(), w.size(), MSG_NOSIGNAL) < 0) break;
    }
    if (reply.hold) stopped(-1);
    ::close(conn);
  }

  TempDir dir_;
  std::string socket_path_;
  int fd_ = -1;
  std::array<int, 2> stop_pipe_{-1, -1};
  Handler handler_;
  std::mutex m_;
  std::vector<std::string> targets_;
  std::thread accept_thread_;
  std::vector<std::thread> conn_threads_;  // touched by the accept thread only, until joined
};

std::unique_ptr<DockerClient> make_client(Loop& loop, const std::string& host,
                                          DockerClientOptions options = {}) {
  auto client = DockerClient::create(loop.executor(), host, options);
  EXPECT_TRUE(client.ok()) << (client.ok() ? "" : client.error().message);
  return client.ok() ? std::move(*client) : nullptr;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// -- against a fake Docker ----------------------------------------------

TEST(DockerClientFake, NegotiatesDownToTheNewestVersionWeSpeak) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body("1.45"))}};
    return {{FakeDocker::http(200, R"({"ok":true})")}};
  });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto r = call(loop, [&](auto h) { client->info(h); });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(client->api_version(), kMaxDockerApiVersion);
  auto targets = fake.targets();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0], "/version");
  EXPECT_EQ(targets[1], "/v" + std::string(kMaxDockerApiVersion) + "/info");
}

TEST(DockerClientFake, RefusesADockerTooOld) {
  FakeDocker fake([](const std::string&) -> FakeDocker::Reply {
    return {{FakeDocker::http(200, R"({"ApiVersion":"1.12"})")}};
  });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto r = call(loop, [&](auto h) { client->info(h); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_TRUE(contains(r.error().message, "1.12")) << r.error().message;
}

TEST(DockerClientFake, DockerErrorsBecomeClearMessages) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body())}};
    if (contains(target, "/containers/gone/")) {
      return {{FakeDocker::http(404, "{\"message\":\"No such container: gone\"}\n")}};
    }
    return {{FakeDocker::http(500, "plain text\x01 trouble")}};
  });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto r = call(loop, [&](auto h) { client->inspect_container("gone", h); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_EQ(r.error().message,
            "Docker refused GET /containers/gone/json: No such container: gone (HTTP 404)");
  auto r2 = call(loop, [&](auto h) { client->info(h); });
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code, Errc::unavailable);
  EXPECT_EQ(r2.error().message, "Docker refused GET /info: plain text  trouble (HTTP 500)");
}

TEST(DockerClientFake, BadRepliesAreErrorsNotCrashes) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body())}};
    if (contains(target, "/info")) return {{FakeDocker::http(200, "{not json")}};
    if (contains(target, "/images/")) return {{FakeDocker::http(200, std::string(100000, '['))}};
    if (contains(target, "/containers/json"))
      return {{FakeDocker::http(200, R"({"not":"an array"})")}};
    return {{FakeDocker::http(200, std::string(4096, ' ') + "{}")}};  // too big
  });
  Loop loop;
  DockerClientOptions options;
  options.max_body_bytes = 4096;
  auto client = make_client(loop, fake.host(), options);
  auto info = call(loop, [&](auto h) { client->info(h); });
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Errc::invalid_input);
  EXPECT_TRUE(contains(info.error().message, "not valid JSON")) << info.error().message;

  auto images = call(loop, [&](auto h) { client->list_images(h); });
  ASSERT_FALSE(images.ok());
  EXPECT_EQ(images.error().code, Errc::invalid_input);

  auto containers = call(loop, [&](auto h) { client->list_containers(h); });
  ASSERT_FALSE(containers.ok());
  EXPECT_TRUE(contains(containers.error().message, "not a JSON array"));

  auto big = call(loop, [&](auto h) { client->inspect_container("abc", h); });
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Errc::invalid_input);
  EXPECT_TRUE(contains(big.error().message, "exceeds 4096 bytes")) << big.error().message;
}

TEST(DockerClientFake, ASilentDockerTimesOut) {
  FakeDocker fake([](const std::string&) -> FakeDocker::Reply { return {{}, /*hold=*/true}; });
  Loop loop;
  DockerClientOptions options;
  options.request_timeout = 300ms;
  auto client = make_client(loop, fake.host(), options);
  auto t0 = Clock::now();
  auto r = call(loop, [&](auto h) { client->info(h); });
  EXPECT_LT(Clock::now() - t0, 3s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_TRUE(contains(r.error().message, "did not answer")) << r.error().message;
}

TEST(DockerClientFake, StopAbortsACallInFlightAndFailsLaterOnes) {
  FakeDocker fake([](const std::string&) -> FakeDocker::Reply { return {{}, /*hold=*/true}; });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto promise = std::make_shared<std::promise<Result<json>>>();
  auto future = promise->get_future();
  client->info([promise](Result<json> r) { promise->set_value(std::move(r)); });
  while (fake.targets().empty()) std::this_thread::sleep_for(5ms);  // the call reached "Docker"
  auto t0 = Clock::now();
  client->stop();
  EXPECT_LT(Clock::now() - t0, 1500ms);
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto r = future.get();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, "stopped")) << r.error().message;
  auto later = call(loop, [&](auto h) { client->info(h); });
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(later.error().code, Errc::unavailable);
}

TEST(DockerClientFake, EventsAreSplitParsedAndABadLineEndsTheStream) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body())}};
    return {{FakeDocker::kStreamHead, "{\"Type\":\"container\",\"Action\":\"st",
             "art\"}\n{\"n\":2}", "\n\n{\"n\":3}\n", "{broken\n", "{\"n\":4}\n"},
            /*hold=*/true};
  });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto log = std::make_shared<EventLog>();
  DockerEventsOptions options;
  options.filters = json{{"type", json::array({"container"})}};
  options.since = 1700000000;
  options.on_connected = log->on_connected();
  client->events(log->on_event(), log->on_end(), options);
  ASSERT_TRUE(log->wait([&] { return log->end.has_value(); }, 5s));
  std::lock_guard lock(log->m);
  EXPECT_TRUE(log->connected);
  ASSERT_EQ(log->events.size(), 3u);
  EXPECT_EQ(log->events[0].first["Action"], "start");
  EXPECT_EQ(log->events[2].first["n"], 3);
  ASSERT_FALSE(log->end->ok());
  EXPECT_EQ(log->end->error().code, Errc::invalid_input);
  auto targets = fake.targets();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[1],
            "/v1.43/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D"
            "&since=1700000000");
}

TEST(DockerClientFake, AnOverlongEventLineEndsTheStream) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body())}};
    return {{FakeDocker::kStreamHead, "{\"n\":1}\n", std::string(3000, ' ')}, /*hold=*/true};
  });
  Loop loop;
  DockerClientOptions options;
  options.max_event_line_bytes = 1024;
  auto client = make_client(loop, fake.host(), options);
  auto log = std::make_shared<EventLog>();
  client->events(log->on_event(), log->on_end());
  ASSERT_TRUE(log->wait([&] { return log->end.has_value(); }, 5s));
  std::lock_guard lock(log->m);
  EXPECT_EQ(log->events.size(), 1u);
  ASSERT_FALSE(log->end->ok());
  EXPECT_TRUE(contains(log->end->error().message, "longer than 1024")) << log->end->error().message;
}

TEST(DockerClientFake, AClosedEventStreamIsAnErrorToResyncOn) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body())}};
    return {{FakeDocker::kStreamHead, "{\"n\":1}\n"}};
  });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto log = std::make_shared<EventLog>();
  client->events(log->on_event(), log->on_end());
  ASSERT_TRUE(log->wait([&] { return log->end.has_value(); }, 5s));
  {
    std::lock_guard lock(log->m);
    EXPECT_EQ(log->events.size(), 1u);
    ASSERT_FALSE(log->end->ok());
    EXPECT_EQ(log->end->error().code, Errc::unavailable);
    EXPECT_TRUE(contains(log->end->error().message, "ended the event stream"));
  }
  // The caller resyncs by starting again.
  auto again = std::make_shared<EventLog>();
  client->events(again->on_event(), again->on_end());
  EXPECT_TRUE(again->wait([&] { return again->end.has_value(); }, 5s));
}

TEST(DockerClientFake, OneEventStreamAtATime) {
  FakeDocker fake([](const std::string& target) -> FakeDocker::Reply {
    if (target == "/version") return {{FakeDocker::http(200, FakeDocker::version_body())}};
    return {{FakeDocker::kStreamHead}, /*hold=*/true};
  });
  Loop loop;
  auto client = make_client(loop, fake.host());
  auto first = std::make_shared<EventLog>();
  DockerEventsOptions options;
  options.on_connected = first->on_connected();
  client->events(first->on_event(), first->on_end(), options);
  ASSERT_TRUE(first->wait([&] { return first->connected; }, 5s));
  auto second = std::make_shared<EventLog>();
  client->events(second->on_event(), second->on_end());
  ASSERT_TRUE(second->wait([&] { return second->end.has_value(); }, 5s));
  EXPECT_EQ(second->end->error().code, Errc::conflict);
  auto t0 = Clock::now();
  client->stop_events();
  EXPECT_LT(Clock::now() - t0, 1500ms);
  ASSERT_TRUE(first->wait([&] { return first->end.has_value(); }, 5s));
  EXPECT_TRUE(first->end->ok());
}

// -- Docker unreachable -----------------------------------------------------

TEST(DockerClientUnreachable, MissingSocketIsUnavailableAtOnce) {
  TempDir dir;
  Loop loop;
  std::string path = dir.path + "/nothing.sock";
  auto client = make_client(loop, "unix://" + path);
  auto t0 = Clock::now();
  auto r = call(loop, [&](auto h) { client->list_containers(h); });
  EXPECT_LT(Clock::now() - t0, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_EQ(r.error().message, "cannot reach Docker at " + path + ": No such file or directory");

  auto log = std::make_shared<EventLog>();
  client->events(log->on_event(), log->on_end());
  ASSERT_TRUE(log->wait([&] { return log->end.has_value(); }, 5s));
  ASSERT_FALSE(log->end->ok());
  EXPECT_EQ(log->end->error().code, Errc::unavailable);
  EXPECT_TRUE(contains(log->end->error().message, "cannot reach Docker at " + path));
}

TEST(DockerClientUnreachable, SocketWithoutListenerIsConnectionRefused) {
  TempDir dir;
  std::string path = dir.path + "/dead.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);  // no listen()
  Loop loop;
  auto client = make_client(loop, "unix://" + path);
  auto r = call(loop, [&](auto h) { client->info(h); });
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_EQ(r.error().message, "cannot reach Docker at " + path + ": Connection refused");
}

TEST(DockerClientUnreachable, CallsNeverRunTheirHandlerInline) {
  TempDir dir;
  boost::asio::io_context ioc;  // not running: nothing may complete yet
  auto client = DockerClient::create(ioc.get_executor(), "unix://" + dir.path + "/x.sock");
  ASSERT_TRUE(client.ok());
  int done = 0;
  (*client)->inspect_container("../bad", [&](Result<json> r) {
    EXPECT_EQ(r.error().code, Errc::invalid_input);
    ++done;
  });
  (*client)->info([&](Result<json> r) {
    EXPECT_FALSE(r.ok());
    ++done;
  });
  EXPECT_EQ(done, 0);
  ioc.run_for(5s);  // returns once both are handled: calls count as work
  EXPECT_EQ(done, 2);
}

TEST(DockerClient, CreateRejectsNonUnixHosts) {
  boost::asio::io_context ioc;
  auto client = DockerClient::create(ioc.get_executor(), "tcp://127.0.0.1:2375");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code, Errc::invalid_input);
}

// -- against a real, private dockerd (tests/support/dockerd.py) --------------

struct Command {
  int status = -1;
  std::string output;
};

class DockerLive : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* host = std::getenv("PADDOCK_TEST_DOCKER_HOST");
    if (host == nullptr || *host == '\0') {
      FAIL() << "PADDOCK_TEST_DOCKER_HOST is not set. These tests need a private dockerd: run them "
                "through ctest (fixture 'docker', tests/docker_fixture.cmake) or start one with\n"
                "  export PADDOCK_TEST_DOCKER_HOST=$(python3 tests/support/dockerd.py start "
                "/tmp/pdk-dev --busybox-image paddock-test/busybox:latest)\n"
                "and stop it with: python3 tests/support/dockerd.py stop /tmp/pdk-dev";
    }
    host_ = host;
    auto ping = docker("version --format '{{.Server.APIVersion}}'");
    ASSERT_EQ(ping.status, 0) << "no dockerd answers at " << host_ << ": " << ping.output;
    server_api_ = ping.output.substr(0, ping.output.find_first_of("\r\n"));
    auto image = docker(std::string("image inspect --format '{{.Id}}' ") + kBusybox);
    ASSERT_EQ(image.status, 0) << "image " << kBusybox << " is missing at " << host_
                               << " (start dockerd.py with --busybox-image " << kBusybox << ")";
    client_ = make_client(loop_, host_);
    ASSERT_NE(client_, nullptr);
  }

  void TearDown() override {
    if (client_) client_->stop();
    for (const auto& id : cleanup_) docker("rm -f " + id);
  }

  Command docker(const std::string& args) {
    std::string cmd = "env -u DOCKER_CONTEXT docker -H '" + host_ + "' " + args + " 2>&1";
    Command c;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return c;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) c.output.append(buf, n);
    int st = ::pclose(p);
    c.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return c;
  }

  // Creates a container (not started) and returns its full id.
  std::string create_container(const std::string& name) {
    auto c = docker("create --network none --name " + name + " " + kBusybox + " sleep 300");
    EXPECT_EQ(c.status, 0) << c.output;
    std::string id = c.output.substr(0, c.output.find_first_of("\r\n"));
    EXPECT_EQ(id.size(), 64u) << c.output;
    cleanup_.push_back(id);
    return id;
  }

  Loop loop_;
  std::string host_;
  std::string server_api_;
  std::unique_ptr<DockerClient> client_;
  std::vector<std::string> cleanup_;
};

TEST_F(DockerLive, NegotiatesTheApiVersion) {
  auto v = call(loop_, [&](auto h) { client_->version(h); });
  ASSERT_TRUE(v.ok()) << v.error().message;
  std::string expected = compare_api_versions(server_api_, kMaxDockerApiVersion) < 0
                             ? server_api_
                             : std::string(kMaxDockerApiVersion);
  EXPECT_EQ(client_->api_version(), expected);
  EXPECT_EQ((*v)["ApiVersion"], server_api_);
  EXPECT_TRUE((*v)["Version"].is_string());
}

TEST_F(DockerLive, InfoDescribesThePrivateDaemon) {
  auto info = call(loop_, [&](auto h) { client_->info(h); });
  ASSERT_TRUE(info.ok()) << info.error().message;
  for (const char* field :
       {"ID", "Containers", "Images", "ServerVersion", "OperatingSystem", "KernelVersion",
        "Architecture", "NCPU", "MemTotal", "Driver", "DockerRootDir"}) {
    EXPECT_TRUE(info->contains(field)) << field;
  }
  EXPECT_GT((*info)["NCPU"].get<int>(), 0);
  // The data root sits beside the socket: this is the test's dockerd, not the system one.
  std::string sock = host_.substr(std::string("unix://").size());
  std::string dir = sock.substr(0, sock.rfind('/'));
  EXPECT_EQ((*info)["DockerRootDir"].get<std::string>().rfind(dir, 0), 0u)
      << (*info)["DockerRootDir"] << " is not under " << dir;
}

TEST_F(DockerLive, ContainerMadeByTheCliIsListedAndInspected) {
  std::string name = "pdk-list-" + random_suffix();
  std::string id = create_container(name);

  auto list = call(loop_, [&](auto h) { client_->list_containers(h); });
  ASSERT_TRUE(list.ok()) << list.error().message;
  const json* found = nullptr;
  for (const auto& c : *list) {
    if (c.value("Id", "") == id) found = &c;
  }
  ASSERT_NE(found, nullptr) << "container " << id << " not in " << list->dump();
  EXPECT_EQ((*found)["Names"], json::array({"/" + name}));
  EXPECT_EQ((*found)["Image"], kBusybox);
  EXPECT_EQ((*found)["State"], "created");

  for (std::string ref : {id, name, id.substr(0, 12)}) {
    auto inspect = call(loop_, [&](auto h) { client_->inspect_container(ref, h); });
    ASSERT_TRUE(inspect.ok()) << ref << ": " << inspect.error().message;
    EXPECT_EQ((*inspect)["Id"], id);
    EXPECT_EQ((*inspect)["Name"], "/" + name);
    EXPECT_EQ((*inspect)["Config"]["Cmd"], json::array({"sleep", "300"}));
  }

  auto missing =
      call(loop_, [&](auto h) { client_->inspect_container("pdk-no-such-" + random_suffix(), h); });
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_TRUE(contains(missing.error().message, "No such container")) << missing.error().message;
}

TEST_F(DockerLive, ContainerLifecycleThroughTheApi) {
  const std::string name = "pdk-life-" + random_suffix();
  const json spec = {{"Image", kBusybox},
                     {"Cmd", {"sleep", "300"}},
                     {"Labels", {{"io.paddock.test", "yes"}}},
                     {"HostConfig", {{"NetworkMode", "none"}, {"RestartPolicy", {{"Name", "unless-stopped"}}}}}};
  auto created = call(loop_, [&](auto h) { client_->create_container(name, spec, h); });
  ASSERT_TRUE(created.ok()) << created.error().message;
  const std::string id = (*created)["Id"];
  cleanup_.push_back(id);

  auto taken = call(loop_, [&](auto h) { client_->create_container(name, spec, h); });
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, Errc::conflict) << taken.error().message;

  auto started = call(loop_, [&](auto h) { client_->start_container(id, h); });
  ASSERT_TRUE(started.ok()) << started.error().message;
  EXPECT_TRUE(started->is_null());
  auto again = call(loop_, [&](auto h) { client_->start_container(id, h); });  // 304: already running
  EXPECT_TRUE(again.ok()) << again.error().message;
  auto running = call(loop_, [&](auto h) { client_->inspect_container(name, h); });
  ASSERT_TRUE(running.ok()) << running.error().message;
  EXPECT_EQ((*running)["State"]["Running"], true);
  EXPECT_EQ((*running)["Config"]["Labels"]["io.paddock.test"], "yes");
  EXPECT_EQ((*running)["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");

  auto stopped = call(loop_, [&](auto h) { client_->stop_container(id, std::chrono::seconds(1), h); }, 30s);
  ASSERT_TRUE(stopped.ok()) << stopped.error().message;
  const std::string renamed = name + "-old";
  auto moved = call(loop_, [&](auto h) { client_->rename_container(name, renamed, h); });
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  auto by_new_name = call(loop_, [&](auto h) { client_->inspect_container(renamed, h); });
  ASSERT_TRUE(by_new_name.ok()) << by_new_name.error().message;
  EXPECT_EQ((*by_new_name)["State"]["Running"], false);

  auto removed = call(loop_, [&](auto h) { client_->remove_container(renamed, h); });
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  auto gone = call(loop_, [&](auto h) { client_->inspect_container(id, h); });
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, Errc::not_found);
  auto twice = call(loop_, [&](auto h) { client_->remove_container(id, h); });
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, Errc::not_found);

  // A name that is not a container reference never reaches a Docker URL.
  auto bad = call(loop_, [&](auto h) { client_->create_container("../containers/x", spec, h); });
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_input);
}

// The bootstrap's hand-over: start the agent container, then replace it, in
// this test's dockerd under a name of its own.
TEST_F(DockerLive, AgentContainerIsStartedThenReplacedKeepingOneName) {
  const std::string name = "pdk-agent-" + random_suffix();
  const json spec = {{"Image", kBusybox},
                     {"Cmd", {"sleep", "300"}},
                     {"HostConfig", {{"NetworkMode", "none"}, {"RestartPolicy", {{"Name", "unless-stopped"}}}}}};
  auto start = [&]() -> Result<std::string, ExitStatus> {
    std::promise<Result<std::string, ExitStatus>> done;
    auto future = done.get_future();
    auto run = [&]() -> boost::asio::awaitable<void> {
      auto started = co_await start_agent_container(*client_, spec, name);
      done.set_value(std::move(started));
    };
    boost::asio::co_spawn(loop_.executor(), run, boost::asio::detached);
    EXPECT_EQ(future.wait_for(60s), std::future_status::ready);
    return future.get();
  };

  auto first = start();
  ASSERT_TRUE(first.ok()) << first.error().message;
  cleanup_.push_back(*first);
  auto second = start();
  ASSERT_TRUE(second.ok()) << second.error().message;
  cleanup_.push_back(*second);
  EXPECT_NE(*first, *second);

  auto running = docker("ps -a --filter name=" + name + " --format '{{.ID}} {{.Names}} {{.State}}'");
  EXPECT_EQ(running.output, second->substr(0, 12) + " " + name + " running\n") << "the old one is gone";
  auto old = docker("inspect " + *first);
  EXPECT_NE(old.status, 0) << old.output;

  // A spec Docker refuses leaves the running agent as it was.
  json bad = spec;
  bad["Image"] = "pdk-no-such-image:" + random_suffix();
  auto refused = start();
  ASSERT_TRUE(refused.ok());  // (the same spec: a third replacement works)
  cleanup_.push_back(*refused);
  std::promise<Result<std::string, ExitStatus>> done;
  auto future = done.get_future();
  auto run_bad = [&]() -> boost::asio::awaitable<void> {
    auto started = co_await start_agent_container(*client_, bad, name);
    done.set_value(std::move(started));
  };
  boost::asio::co_spawn(loop_.executor(), run_bad, boost::asio::detached);
  ASSERT_EQ(future.wait_for(60s), std::future_status::ready);
  auto failed = future.get();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, kExitRefused);
  EXPECT_TRUE(contains(failed.error().message, "cannot create")) << failed.error().message;
  auto after = docker("ps -a --filter name=" + name + " --format '{{.ID}} {{.State}}'");
  EXPECT_EQ(after.output, refused->substr(0, 12) + " running\n") << "the old agent is back, running";
}

TEST_F(DockerLive, ImagesIncludeTheBusyboxImage) {
  auto images = call(loop_, [&](auto h) { client_->list_images(h); });
  ASSERT_TRUE(images.ok()) << images.error().message;
  bool found = false;
  for (const auto& image : *images) {
    for (const auto& tag : image.value("RepoTags", json::array())) {
      if (tag == kBusybox) found = true;
    }
  }
  EXPECT_TRUE(found) << images->dump();
}

TEST_F(DockerLive, ContainerStartEventArrivesWithinASecond) {
  std::string id = create_container("pdk-ev-" + random_suffix());
  auto log = std::make_shared<EventLog>();
  DockerEventsOptions options;
  options.filters = json{{"type", json::array({"container"})}, {"container", json::array({id})}};
  options.on_connected = log->on_connected();
  client_->events(log->on_event(), log->on_end(), options);
  ASSERT_TRUE(log->wait([&] { return log->connected; }, 10s)) << "the event stream did not connect";

  auto started = docker("start " + id);
  ASSERT_EQ(started.status, 0) << started.output;
  // From the start's completion: how long Docker itself takes to start a
  // container on a loaded machine is not the event stream's delay.
  auto t0 = Clock::now();
  auto is_start = [&](const json& e) {
    return e.value("Action", "") == "start" && e.value("id", "") == id;
  };
  bool seen = log->wait(
      [&] {
        for (const auto& [e, t] : log->events) {
          if (is_start(e)) return true;
        }
        return false;
      },
      5s);
  ASSERT_TRUE(seen) << "no start event for " << id;
  std::lock_guard lock(log->m);
  for (const auto& [e, t] : log->events) {
    if (!is_start(e)) continue;
    RecordProperty(
        "start_event_ms",
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(t - t0).count()));
    EXPECT_LT(t - t0, 1s) << "the start event took "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(t - t0).count()
                          << " ms";
    EXPECT_EQ(e["Type"], "container");
    EXPECT_EQ(e["Actor"]["ID"], id);
  }
  EXPECT_FALSE(log->end.has_value()) << "the stream ended: " << log->end->error().message;
}

TEST_F(DockerLive, StoppingTheEventStreamReturnsPromptly) {
  auto log = std::make_shared<EventLog>();
  DockerEventsOptions options;
  options.on_connected = log->on_connected();
  client_->events(log->on_event(), log->on_end(), options);
  ASSERT_TRUE(log->wait([&] { return log->connected; }, 10s));
  auto t0 = Clock::now();
  client_->stop_events();
  auto took = Clock::now() - t0;
  RecordProperty(
      "stop_events_us",
      static_cast<int>(std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
  EXPECT_LT(took, 1100ms);
  ASSERT_TRUE(log->wait([&] { return log->end.has_value(); }, 5s));
  EXPECT_TRUE(log->end->ok()) << log->end->error().message;

  // A new stream can start after a stop, and stop() of the whole client ends it too.
  auto again = std::make_shared<EventLog>();
  DockerEventsOptions options2;
  options2.on_connected = again->on_connected();
  client_->events(again->on_event(), again->on_end(), options2);
  ASSERT_TRUE(again->wait([&] { return again->connected; }, 10s));
  t0 = Clock::now();
  client_->stop();
  EXPECT_LT(Clock::now() - t0, 1100ms);
  ASSERT_TRUE(again->wait([&] { return again->end.has_value(); }, 5s));
  EXPECT_TRUE(again->end->ok());
}

TEST_F(DockerLive, ManyConcurrentCallsAllComplete) {
  constexpr int kCalls = 20;
  std::mutex m;
  std::condition_variable cv;
  int ok = 0;
  int failed = 0;
  for (int i = 0; i < kCalls; ++i) {
    auto done = [&](Result<json> r) {
      std::lock_guard lock(m);
      (r.ok() ? ok : failed)++;
      cv.notify_all();
    };
    if (i % 2 == 0) {
      client_->list_containers(done);
    } else {
      client_->info(done);
    }
  }
  std::unique_lock lock(m);
  ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return ok + failed == kCalls; }));
  EXPECT_EQ(ok, kCalls);
}

}  // namespace
}  // namespace paddock::agent
