// paddock-agent-swarm: plays thousands of agents against one paddock-server.
//
// Each simulated agent does what paddock-agent does on the wire
// (docs/agent-protocol.md): it registers once through the token's URL on a
// fresh TLS connection, dials /v1/connect with its host credential and an
// instance id, waits for the welcome, sends a snapshot (host facts, a few
// containers and an image), then keeps the connection with WebSocket pings
// every 5 s and a host report every --report-interval. A lost connection is
// redialed with the agent's own backoff (agent/backoff.hpp: full jitter,
// 1 s doubling to a 60 s cap, reset after a connection that lasted 60 s).
//
// Phases: register all (at most --register-concurrency at once), connect all
// (at most --connect-concurrency dials at once), then hold until SIGINT or
// SIGTERM. Lines meant for a driver script start with a keyword:
//   REGISTERED n seconds rate failures
//   CONNECTED n seconds rate failures
//   ALL_CONNECTED epoch_ms          every time the count reaches --agents
//   LOST epoch_ms connected         the first drop below --agents after that
//   STATUS epoch_ms connected dial_failures sessions_lost
// One thread, one io_context: the numbers measure the server, and the swarm
// stays well below one core at 10,000 agents once they are connected.

#include "agent/backoff.hpp"
#include "agent/messages.hpp"
#include "agent/registration.hpp"
#include "common/crypto.hpp"
#include "common/http_client.hpp"
#include "common/tls.hpp"
#include "common/web_socket.hpp"
#include "common/ws_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace paddock::bench {

namespace http = boost::beast::http;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

struct Options {
  std::string registration_url;
  std::string ca_file;
  int agents = 1000;
  int register_concurrency = 64;
  int connect_concurrency = 256;
  int containers = 5;
  int report_interval_s = 30;  // 0: no host reports
};

std::int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string hex_id(std::mt19937_64& rng, int chars) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(static_cast<std::size_t>(chars), '0');
  for (auto& c : s) c = kHex[rng() & 15];
  return s;
}

struct SimAgent {
  int index = 0;
  std::string hostname;
  std::string machine_id;
  std::string access_key, secret_key;
  std::string instance = crypto::random_token(16);
  std::vector<std::string> container_ids;
  std::string image_id;
  std::shared_ptr<WebSocket> ws;  // set while connected (welcome seen, snapshot sent)
};

class Swarm {
 public:
  Swarm(asio::io_context& io, Options options, std::shared_ptr<asio::ssl::context> tls, agent::RegistrationUrl url)
      : io_(io), options_(std::move(options)), tls_(std::move(tls)), url_(std::move(url)) {
    std::mt19937_64 rng(std::random_device{}());
    agents_.resize(static_cast<std::size_t>(options_.agents));
    for (int i = 0; i < options_.agents; ++i) {
      auto& a = agents_[static_cast<std::size_t>(i)];
      a.index = i;
      a.hostname = "swarm-" + std::to_string(i);
      a.machine_id = hex_id(rng, 32);
      for (int c = 0; c < options_.containers; ++c) a.container_ids.push_back(hex_id(rng, 64));
      a.image_id = "sha256:" + hex_id(rng, 64);
    }
    auto parsed = http_client::parse_url(url_.server_url);
    target_ = *parsed;
    // The server may live under a path prefix: keep it for the registration's target.
    path_prefix_ = url_.server_url.substr(target_.origin().size());
  }

  asio::awaitable<void> run() {
    // Register everyone.
    auto t0 = Clock::now();
    next_ = 0;
    co_await run_workers(options_.register_concurrency, &Swarm::register_worker);
    const double reg_s = seconds_since(t0);
    std::printf("REGISTERED %d %.3f %.1f %d\n", registered_, reg_s, registered_ / reg_s, register_failures_);
    std::fflush(stdout);
    if (registered_ < options_.agents) {
      std::fprintf(stderr, "only %d of %d agents registered; stopping\n", registered_, options_.agents);
      std::exit(1);
    }

    // Connect everyone; each agent then lives on by itself, reporting from its
    // first connection on as the agent does.
    asio::co_spawn(io_, reporter(), asio::detached);
    t0 = Clock::now();
    next_ = 0;
    co_await run_workers(options_.connect_concurrency, &Swarm::connect_worker);
    const double conn_s = seconds_since(t0);
    std::printf("CONNECTED %d %.3f %.1f %d\n", first_dials_, conn_s, first_dials_ / conn_s, dial_failures_);
    std::fflush(stdout);
    initial_done_ = true;
    if (connected_ == options_.agents) announce_all();

    asio::steady_timer tick(io_);
    for (;;) {
      tick.expires_after(1s);
      co_await tick.async_wait(kAwait);
      std::printf("STATUS %lld %d %d %d\n", static_cast<long long>(epoch_ms()), connected_, dial_failures_,
                  sessions_lost_);
      std::fflush(stdout);
    }
  }

 private:
  using Worker = asio::awaitable<void> (Swarm::*)();

  // Runs `count` copies of a worker and returns when all have finished.
  asio::awaitable<void> run_workers(int count, Worker worker) {
    int running = count;
    asio::steady_timer done(io_, asio::steady_timer::time_point::max());
    for (int i = 0; i < count; ++i) {
      auto body = [this, worker, &running, &done]() -> asio::awaitable<void> {
        co_await (this->*worker)();
        if (--running == 0) done.cancel();
      };
      asio::co_spawn(io_, body, asio::detached);
    }
    co_await done.async_wait(kAwait);
  }

  asio::awaitable<void> register_worker() {
    for (;;) {
      const int i = next_++;
      if (i >= options_.agents) break;
      auto& a = agents_[static_cast<std::size_t>(i)];
      // A registration that fails is retried a few times, as a person would re-run the command.
      for (int attempt = 0; attempt < 5; ++attempt) {
        const bool ok = co_await register_one(a);
        if (ok) {
          ++registered_;
          break;
        }
        ++register_failures_;
        asio::steady_timer pause(io_, 200ms);
        co_await pause.async_wait(kAwait);
      }
    }
  }

  // POST <registrationUrl> on a fresh connection (TLS unless the server runs
  // with --no-tls), as paddock-agent does.
  asio::awaitable<bool> register_one(SimAgent& a) {
    const auto deadline = Clock::now() + 30s;
    auto tcp = co_await http_client::connect_tcp(io_.get_executor(), target_, deadline);
    if (!tcp) {
      note_error("register: " + tcp.error().message);
      co_return false;
    }
    if (!target_.tls()) {
      beast::tcp_stream plain(std::move(*tcp));
      plain.expires_at(deadline);
      const bool ok = co_await exchange(plain, a);
      co_return ok;
    }
    beast::ssl_stream<beast::tcp_stream> stream(std::move(*tcp), *tls_);
    if (auto st = tls::prepare_client_stream(stream, target_.host); !st) co_return false;
    beast::get_lowest_layer(stream).expires_at(deadline);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kAwait);
    if (hec) {
      note_error("register: TLS: " + hec.message());
      co_return false;
    }
    const bool ok = co_await exchange(stream, a);
    co_return ok;
  }

  template <class Stream>
  asio::awaitable<bool> exchange(Stream& stream, SimAgent& a) {
    agent::RegistrationFacts facts;
    facts.hostname = a.hostname;
    facts.machine_id = a.machine_id;
    http::request<http::string_body> req(http::verb::post, path_prefix_ + "/v1/scripts/" + url_.token, 11);
    req.set(http::field::host, target_.authority());
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json");
    req.body() = agent::encode_message(agent::registration_body(facts));
    req.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, req, kAwait);
    (void)wn;
    if (wec) {
      note_error("register: write: " + wec.message());
      co_return false;
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    auto [rec, rn] = co_await http::async_read(stream, buffer, res, kAwait);
    (void)rn;
    error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(asio::socket_base::shutdown_both, ignored);
    beast::get_lowest_layer(stream).close();
    if (rec) {
      note_error("register: read: " + rec.message());
      co_return false;
    }
    http_client::Response response;
    response.status = res.result_int();
    response.body = std::move(res.body());
    auto state = agent::registration_result(response, url_, std::string(), a.machine_id);
    if (!state) {
      note_error("register: " + state.error().message);
      co_return false;
    }
    a.access_key = state->credential.access_key;
    a.secret_key = state->credential.secret_key;
    co_return true;
  }

  asio::awaitable<void> connect_worker() {
    for (;;) {
      const int i = next_++;
      if (i >= options_.agents) break;
      auto& a = agents_[static_cast<std::size_t>(i)];
      auto ws = co_await connect_once(a);
      if (ws) ++first_dials_;
      auto life = [this, &a, ws]() -> asio::awaitable<void> { co_await live(a, ws); };
      asio::co_spawn(io_, life, asio::detached);
    }
  }

  // Dial, wait for the welcome, send the snapshot. nullptr on any failure.
  asio::awaitable<std::shared_ptr<WebSocket>> connect_once(SimAgent& a) {
    ws_client::DialOptions options;
    options.headers = {{"Authorization", "Basic " + crypto::base64_encode(a.access_key + ":" + a.secret_key)},
                       {"X-Paddock-Agent-Instance", a.instance}};
    options.tls = tls_;
    options.timeout = 10s;
    options.read_limit = agent::kMaxMessageBytes;
    const std::string url = url_.server_url + "/v1/connect";
    auto dialed = co_await ws_client::dial_web_socket(io_.get_executor(), url, options);
    if (!dialed) {
      ++dial_failures_;
      note_error("connect: " + dialed.error().message);
      co_return nullptr;
    }
    std::shared_ptr<WebSocket> ws = std::move(*dialed);
    ws->set_read_limit(agent::kMaxMessageBytes);
    ws->set_idle_timeout(10s, /*keep_alive_pings=*/true);  // a ping every 5 s, as the agent
    asio::steady_timer watchdog(io_, 10s);
    auto guard = [ws, &watchdog]() -> asio::awaitable<void> {
      auto [ec] = co_await watchdog.async_wait(kAwait);
      if (!ec) ws->abort();
    };
    asio::co_spawn(io_, guard, asio::detached);
    beast::flat_buffer buffer;
    bool welcomed = false;
    for (;;) {
      auto ec = co_await ws->read(buffer);
      if (ec) break;
      auto message = agent::parse_server_message(beast::buffers_to_string(buffer.data()));
      buffer.consume(buffer.size());
      if (message && message->type == agent::ServerMessage::Type::welcome) {
        welcomed = true;
        break;
      }
    }
    watchdog.cancel();
    if (!welcomed) {
      ++dial_failures_;
      ws->abort();
      co_return nullptr;
    }
    const std::string snapshot = snapshot_text(a);
    auto wec = co_await ws->write(asio::buffer(snapshot), false);
    if (wec) {
      ++dial_failures_;
      ws->abort();
      co_return nullptr;
    }
    co_return ws;
  }

  // One agent's life after its first dial: hold the session, redial with backoff.
  asio::awaitable<void> live(SimAgent& a, std::shared_ptr<WebSocket> ws) {
    agent::Backoff backoff(1000ms, 60000ms);
    asio::steady_timer wait(io_);
    for (;;) {
      if (ws) {
        a.ws = ws;
        ++connected_;
        if (connected_ == options_.agents && initial_done_) announce_all();
        const auto since = Clock::now();
        beast::flat_buffer buffer;
        for (;;) {
          auto ec = co_await ws->read(buffer);
          buffer.consume(buffer.size());
          if (ec) break;
        }
        ws->abort();
        a.ws.reset();
        ws.reset();
        if (connected_ == options_.agents && !lost_announced_) {
          lost_announced_ = true;
          std::printf("LOST %lld %d\n", static_cast<long long>(epoch_ms()), connected_ - 1);
          std::fflush(stdout);
        }
        --connected_;
        ++sessions_lost_;
        if (Clock::now() - since >= 60s) backoff.reset();
      }
      wait.expires_after(backoff.next());
      co_await wait.async_wait(kAwait);
      ws = co_await connect_once(a);
    }
  }

  void announce_all() {
    lost_announced_ = false;
    std::printf("ALL_CONNECTED %lld\n", static_cast<long long>(epoch_ms()));
    std::fflush(stdout);
  }

  // Host reports, spread evenly: each second a slice of the agents reports.
  asio::awaitable<void> reporter() {
    if (options_.report_interval_s <= 0) co_return;
    asio::steady_timer tick(io_);
    std::mt19937_64 rng(std::random_device{}());
    for (long second = 0;; ++second) {
      tick.expires_after(1s);
      co_await tick.async_wait(kAwait);
      const long slot = second % options_.report_interval_s;
      for (auto& a : agents_) {
        if (a.index % options_.report_interval_s != slot || !a.ws) continue;
        json host = host_facts(a);
        host["cpuPercent"] = static_cast<double>(rng() % 10000) / 100.0;
        host["memoryUsed"] = 4'000'000'000 + static_cast<std::int64_t>(rng() % 1'000'000'000);
        a.ws->send(agent::encode_message(agent::host_message(host)), false);
      }
    }
  }

  json host_facts(const SimAgent& a) const {
    return {{"hostname", a.hostname},       {"agentVersion", "0.1.0"},  {"dockerVersion", "24.0.7"},
            {"dockerApiVersion", "1.43"},   {"os", "Debian GNU/Linux 12 (bookworm)"},
            {"kernel", "6.1.0-28-amd64"},   {"arch", "x86_64"},         {"cpuCount", 4},
            {"memoryTotal", 8'000'000'000}, {"memoryUsed", 4'000'000'000}, {"diskTotal", 100'000'000'000},
            {"diskUsed", 20'000'000'000},   {"dockerState", "ok"},      {"cpuPercent", 3.5},
            {"ipAddresses", {"10.1.0." + std::to_string(a.index % 250 + 1)}}};
  }

  std::string snapshot_text(const SimAgent& a) const {
    json containers = json::array();
    int n = 0;
    for (const auto& id : a.container_ids) {
      containers.push_back({{"dockerId", id},
                            {"name", "app-" + std::to_string(n++)},
                            {"image", "nginx:1.25"},
                            {"command", "nginx -g 'daemon off;'"},
                            {"state", "running"},
                            {"status", "Up 3 hours"},
                            {"created", "2026-11-22T07:00:00Z"},
                            {"labels", {{"com.example.role", "web"}}},
                            {"ports", json::array({"0.0.0.0:8080->80/tcp"})}});
    }
    json images = json::array({{{"dockerId", a.image_id},
                                {"tags", {"nginx:1.25"}},
                                {"size", 187'000'000},
                                {"created", "2026-10-01T00:00:00Z"}}});
    // A handful of containers: always one message.
    return std::move(agent::encode_snapshot(host_facts(a), containers, images).front());
  }

  void note_error(const std::string& what) {
    // The first few failures name themselves; the counters say the rest.
    if (errors_shown_ < 10) {
      ++errors_shown_;
      std::fprintf(stderr, "%s\n", what.c_str());
    }
  }

  asio::io_context& io_;
  Options options_;
  std::shared_ptr<asio::ssl::context> tls_;
  agent::RegistrationUrl url_;
  http_client::Url target_;
  std::string path_prefix_;
  std::vector<SimAgent> agents_;
  int next_ = 0;
  int registered_ = 0, register_failures_ = 0;
  int connected_ = 0, dial_failures_ = 0, sessions_lost_ = 0;
  int first_dials_ = 0;  // agents whose first dial (of the connect phase) succeeded
  int errors_shown_ = 0;
  bool initial_done_ = false;
  bool lost_announced_ = false;
};

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --url REGISTRATION_URL [--ca-file CA.pem] [--agents N] [--register-concurrency N]\n"
               "          [--connect-concurrency N] [--containers N] [--report-interval SECONDS]\n",
               argv0);
  return 2;
}

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage(argv[0]);
    const std::string value = argv[++i];
    if (arg == "--url") o.registration_url = value;
    else if (arg == "--ca-file") o.ca_file = value;
    else if (arg == "--agents") o.agents = std::atoi(value.c_str());
    else if (arg == "--register-concurrency") o.register_concurrency = std::atoi(value.c_str());
    else if (arg == "--connect-concurrency") o.connect_concurrency = std::atoi(value.c_str());
    else if (arg == "--containers") o.containers = std::atoi(value.c_str());
    else if (arg == "--report-interval") o.report_interval_s = std::atoi(value.c_str());
    else return usage(argv[0]);
  }
  if (o.registration_url.empty() || o.agents <= 0 || o.register_concurrency <= 0 ||
      o.connect_concurrency <= 0 || o.containers < 0) {
    return usage(argv[0]);
  }
  auto url = agent::parse_registration_url(o.registration_url);
  if (!url) {
    std::fprintf(stderr, "%s\n", url.error().message.c_str());
    return 2;
  }
  // Without --ca-file (a plain-HTTP server) the context is never used.
  std::ifstream ca(o.ca_file);
  std::stringstream pem;
  pem << ca.rdbuf();
  auto tls = tls::make_client_context(o.ca_file.empty() ? tls::ClientTrust::system()
                                                        : tls::ClientTrust::pinned(pem.str()));
  if ((!o.ca_file.empty() && !ca) || !tls) {
    std::fprintf(stderr, "cannot use %s as the server's CA\n", o.ca_file.c_str());
    return 2;
  }
  // One descriptor per agent, plus a margin.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (nofile.rlim_cur < static_cast<rlim_t>(o.agents) + 64) {
    std::fprintf(stderr, "warning: the descriptor limit (%llu) is below the agent count\n",
                 static_cast<unsigned long long>(nofile.rlim_cur));
  }

  asio::io_context io(1);
  Swarm swarm(io, o, *tls, std::move(*url));
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](error_code, int) { io.stop(); });
  auto body = [&swarm]() -> asio::awaitable<void> { co_await swarm.run(); };
  asio::co_spawn(io, body, [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "swarm failed: %s\n", ex.what());
      std::exit(1);
    }
  });
  io.run();
  return 0;
}

}  // namespace paddock::bench

int main(int argc, char** argv) { return paddock::bench::main(argc, argv); }
