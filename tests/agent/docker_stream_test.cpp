#include "agent/docker_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

// GCC 12 flags Asio's coroutine frames as freed by a mismatched operator
// delete when it inlines them: a false positive (GCC PR 109224, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace paddock::agent {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A fake Docker on a unix socket: for each connection, reads one request
// header (and a Content-Length body) and hands the socket to `script`.
class FakeDocker {
 public:
  using Script = std::function<void(int fd, const std::string& request)>;

  explicit FakeDocker(Script script) : script_(std::move(script)) {
    char tmpl[] = "/tmp/pdk-ds-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/docker.sock";
    listener_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_, 16), 0);
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeDocker() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
    for (auto& t : handlers_) t.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  DockerTarget target() const { return DockerTarget{path_, "1.41"}; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  static void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

 private:
  void serve() {
    for (;;) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      if (stopping_) {
        ::close(fd);
        return;
      }
      handlers_.emplace_back([this, fd] {
        std::string request;
        char buf[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
          const auto n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          request.append(buf, static_cast<std::size_t>(n));
        }
        const auto cl = request.find("Content-Length: ");
        if (cl != std::string::npos) {
          const std::size_t want = std::strtoul(request.c_str() + cl + 16, nullptr, 10);
          while (request.size() - (request.find("\r\n\r\n") + 4) < want) {
            const auto n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            request.append(buf, static_cast<std::size_t>(n));
          }
        }
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(request);
        }
        script_(fd, request);
        ::close(fd);
      });
    }
  }

  Script script_;
  std::string dir_, path_;
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::vector<std::thread> handlers_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

// Runs `body` as a coroutine to its end (or fails after 10 s).
void run(const std::function<asio::awaitable<void>(asio::any_io_executor)>& body) {
  asio::io_context io;
  bool done = false;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> {
        co_await body(io.get_executor());
        done = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run_for(10s);
  EXPECT_TRUE(done) << "the coroutine did not finish";
}

asio::awaitable<std::string> read_all(DockerBodyStream& s) {
  std::string out;
  std::vector<char> chunk(7);  // small on purpose: many reads per piece
  for (;;) {
    auto n = co_await s.read_some(chunk.data(), chunk.size());
    EXPECT_TRUE(n.ok()) << (n.ok() ? "" : n.error().message);
    if (!n || *n == 0) break;
    out.append(chunk.data(), *n);
  }
  co_return out;
}

TEST(DockerStream, PlainRequestWithVersionPrefixAndJsonBody) {
  FakeDocker docker([](int fd, const std::string&) {
    FakeDocker::write_all(fd, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                              "{\"Id\":\"ab\"}");
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
    const nlohmann::json body = {{"Cmd", {"sh"}}};
    auto reply = co_await docker_request(ex, target, "POST", "/containers/x/exec", body);
    EXPECT_TRUE(reply.ok());
    if (!reply) co_return;
    EXPECT_EQ(reply->status, 201u);
    EXPECT_EQ(reply->json()->at("Id"), "ab");
  });
  ASSERT_EQ(docker.requests().size(), 1u);
  const auto req = docker.requests()[0];
  EXPECT_EQ(req.rfind("POST /v1.41/containers/x/exec HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("{\"Cmd\":[\"sh\"]}"), std::string::npos) << req;
  EXPECT_NE(req.find("Content-Type: application/json"), std::string::npos) << req;
}

TEST(DockerStream, ChunkedBodyArrivesAsWrittenThenEnds) {
  FakeDocker docker([](int fd, const std::string&) {
    FakeDocker::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (const char* piece : {"5\r\nhello\r\n", "1", "0\r\n0123456789abcdef\r\n", "6\r\n wor", "ld\r\n", "0\r\n\r\n"}) {
      FakeDocker::write_all(fd, piece);
      std::this_thread::sleep_for(5ms);  // separate reads on the other side
    }
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
    DockerBodyStream s(ex);
    DockerReply refusal;
    auto opened = co_await s.open(target, "GET", "/containers/x/logs?follow=1", &refusal);
    EXPECT_TRUE(opened.ok());
    auto all = co_await read_all(s);
    EXPECT_EQ(all, "hello0123456789abcdef world");
  });
}

TEST(DockerStream, BodyUntilEofAndSizedBody) {
  for (const std::string& reply : {std::string("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nline 1\nline 2\n"),
                                  std::string("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nline 1\nline 2\n")}) {
    FakeDocker docker([&](int fd, const std::string&) { FakeDocker::write_all(fd, reply); });
    run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
      DockerBodyStream s(ex);
      auto opened = co_await s.open(target, "GET", "/x", nullptr);
      EXPECT_TRUE(opened.ok());
      auto all = co_await read_all(s);
      EXPECT_EQ(all, "line 1\nline 2\n");
    });
  }
}

TEST(DockerStream, ErrorStatusIsARefusalWithDockersMessage) {
  FakeDocker docker([](int fd, const std::string&) {
    FakeDocker::write_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 46\r\n\r\n"
                              "{\"message\":\"No such container: 0123456789ab\"}\n");
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
    DockerBodyStream s(ex);
    DockerReply refusal;
    auto opened = co_await s.open(target, "GET", "/containers/x/logs", &refusal);
    EXPECT_FALSE(opened.ok());
    EXPECT_EQ(refusal.status, 404u);
    EXPECT_EQ(refusal.message(), "No such container: 0123456789ab");
    if (!opened) {
      EXPECT_EQ(opened.error().code, Errc::not_found);
    }
  });
}

TEST(DockerStream, CloseCancelsAPendingRead) {
  std::atomic<bool> release{false};
  FakeDocker docker([&](int fd, const std::string&) {
    FakeDocker::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    while (!release) std::this_thread::sleep_for(5ms);  // a quiet followed log
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
    DockerBodyStream s(ex);
    auto opened = co_await s.open(target, "GET", "/x", nullptr);
    EXPECT_TRUE(opened.ok());
    asio::steady_timer timer(ex, 50ms);
    timer.async_wait([&s](boost::system::error_code) { s.close(); });
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<char> chunk(64);
    auto n = co_await s.read_some(chunk.data(), chunk.size());
    EXPECT_FALSE(n.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  });
  release = true;
}

TEST(DockerStream, HijackKeepsBytesThatCameWithTheHeaderAndCarriesStdin) {
  FakeDocker docker([](int fd, const std::string&) {
    // The upgrade answer and the first output in one write.
    FakeDocker::write_all(fd, std::string("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                                          "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n") +
                                  "$ ");
    // Echo stdin until the client shuts its sending side.
    char buf[256];
    for (;;) {
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      FakeDocker::write_all(fd, std::string_view(buf, static_cast<std::size_t>(n)));
    }
    FakeDocker::write_all(fd, "bye");
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
    DockerHijack h(ex);
    DockerReply refusal;
    const std::string id(64, 'e');
    auto started = co_await h.start(target, id, true, &refusal);
    EXPECT_TRUE(started.ok());
    std::vector<char> chunk(64);
    auto n = co_await h.read_some(chunk.data(), chunk.size());
    EXPECT_TRUE(n.ok());
    EXPECT_EQ(std::string(chunk.data(), n.ok() ? *n : 0), "$ ");
    auto w = co_await h.write("echo hi\n");
    EXPECT_TRUE(w.ok());
    h.shutdown_send();
    std::string rest;
    for (;;) {
      auto m = co_await h.read_some(chunk.data(), chunk.size());
      EXPECT_TRUE(m.ok());
      if (!m || *m == 0) break;
      rest.append(chunk.data(), *m);
    }
    EXPECT_EQ(rest, "echo hi\nbye");
  });
  ASSERT_EQ(docker.requests().size(), 1u);
  const auto req = docker.requests()[0];
  EXPECT_EQ(req.rfind("POST /v1.41/exec/" + std::string(64, 'e') + "/start HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("Upgrade: tcp"), std::string::npos);
  EXPECT_NE(req.find("Connection: Upgrade"), std::string::npos);
  EXPECT_NE(req.find("\"Tty\":true"), std::string::npos);
}

TEST(DockerStream, HijackRefusal) {
  FakeDocker docker([](int fd, const std::string&) {
    FakeDocker::write_all(fd,
                          "HTTP/1.1 409 Conflict\r\nContent-Length: 37\r\n\r\n"
                          "{\"message\":\"Container x is paused\"}\r\n");
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget target = docker.target();
    DockerHijack h(ex);
    DockerReply refusal;
    const std::string id(64, 'e');
    auto started = co_await h.start(target, id, false, &refusal);
    EXPECT_FALSE(started.ok());
    EXPECT_EQ(refusal.status, 409u);
    EXPECT_EQ(refusal.message(), "Container x is paused");
  });
}

TEST(DockerStream, NoDockerIsUnavailable) {
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const DockerTarget nowhere{"/tmp/pdk-no-such-dir/docker.sock", "1.41"};
    auto reply = co_await docker_request(ex, nowhere, "GET", "/_ping");
    EXPECT_FALSE(reply.ok());
    if (!reply) {
      EXPECT_EQ(reply.error().code, Errc::unavailable);
    }
  });
}

}  // namespace
}  // namespace paddock::agent
