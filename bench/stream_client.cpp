// The client side of the stream benchmarks (bench/stream_bench.py drives it).
// It measures a stream through the tunnel (user → server /v1/stream ←
// agent → Docker) and the same operation on Docker's own API over its unix
// socket, with the same blocking, single-threaded code on both sides, so
// their ratio is the tunnel's cost and not the client's.
//
//   stream_client tunnel-logs URL TOKEN CA_FILE
//   stream_client docker-logs SOCKET PATH
//   stream_client exec-open AUTH CA_FILE ACTION_URL SOCKET CONTAINER ROUNDS
//   stream_client exec-echo AUTH CA_FILE ACTION_URL SOCKET CONTAINER ROUNDS
//
// URL/TOKEN: a hostAccess answer. AUTH: the Authorization header's value.
// ACTION_URL: a container's self link (…?action=execute is appended).
// Every mode prints one JSON object on stdout.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::uint8_t kStdin = 0;
constexpr std::uint8_t kStdout = 1;
constexpr std::uint8_t kStatus = 3;
constexpr std::uint8_t kResize = 4;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

struct Url {
  std::string scheme, host, port, target;
};

Url parse_url(const std::string& text) {
  Url u;
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string::npos) throw std::runtime_error("not a URL: " + text);
  u.scheme = text.substr(0, scheme_end);
  const auto rest = text.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = authority.rfind(':');
  u.host = authority.substr(0, colon);
  u.port = colon == std::string::npos ? (u.scheme == "wss" || u.scheme == "https" ? "443" : "80")
                                      : authority.substr(colon + 1);
  return u;
}

// -- the server's side: HTTPS and WSS, a fresh connection each -------------

class ServerClient {
 public:
  explicit ServerClient(const std::string& ca_file) : tls_(ssl::context::tls_client) {
    tls_.load_verify_file(ca_file);
    tls_.set_verify_mode(ssl::verify_peer);
  }

  asio::io_context& io() { return io_; }

  // Connects with TCP_NODELAY and finishes the TLS handshake.
  std::unique_ptr<ssl::stream<tcp::socket>> connect(const Url& u) {
    auto s = std::make_unique<ssl::stream<tcp::socket>>(io_, tls_);
    tcp::resolver resolver(io_);
    asio::connect(s->next_layer(), resolver.resolve(u.host, u.port));
    s->next_layer().set_option(tcp::no_delay(true));
    s->handshake(ssl::stream_base::client);
    return s;
  }

  // POST `body` to `url`: the reply's JSON body.
  json post(const std::string& url, const std::string& auth, const json& body) {
    const Url u = parse_url(url);
    auto s = connect(u);
    http::request<http::string_body> req{http::verb::post, u.target, 11};
    req.set(http::field::host, u.host + ":" + u.port);
    req.set(http::field::authorization, auth);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::connection, "close");
    req.body() = body.dump();
    req.prepare_payload();
    http::write(*s, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(*s, buffer, res);
    boost::system::error_code ignored;
    s->shutdown(ignored);
    if (res.result_int() >= 300) {
      throw std::runtime_error("POST " + url + ": HTTP " + std::to_string(res.result_int()) + " " + res.body());
    }
    return json::parse(res.body());
  }

  using Ws = websocket::stream<ssl::stream<tcp::socket>>;

  std::unique_ptr<Ws> open_stream(const std::string& url, const std::string& token) {
    const Url u = parse_url(url);
    auto s = connect(u);
    auto ws = std::make_unique<Ws>(std::move(*s));
    ws->auto_fragment(false);
    ws->read_message_max(16 * 1024 * 1024);
    ws->binary(true);
    ws->set_option(websocket::stream_base::decorator(
        [token](websocket::request_type& req) { req.set(http::field::authorization, "Bearer " + token); }));
    ws->handshake(u.host + ":" + u.port, u.target);
    return ws;
  }

 private:
  asio::io_context io_;
  ssl::context tls_;
};

void send_message(ServerClient::Ws& ws, std::uint8_t channel, std::string_view payload) {
  std::string m(1, static_cast<char>(channel));
  m.append(payload);
  ws.write(asio::buffer(m));
}

// -- Docker's side: HTTP on its unix socket, a fresh connection each -------

class DockerClient {
 public:
  explicit DockerClient(std::string socket_path) : path_(std::move(socket_path)) {}

  unix_socket::socket connect() {
    unix_socket::socket s(io_);
    s.connect(unix_socket::endpoint(path_));
    return s;
  }

  static http::request<http::string_body> request(http::verb verb, const std::string& target, const json& body) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "docker");
    if (!body.is_null()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body.dump();
    }
    req.prepare_payload();
    return req;
  }

  json post(const std::string& target, const json& body) {
    auto s = connect();
    auto req = request(http::verb::post, target, body);
    req.set(http::field::connection, "close");
    http::write(s, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(s, buffer, res);
    if (res.result_int() >= 300) {
      throw std::runtime_error("POST " + target + ": HTTP " + std::to_string(res.result_int()) + " " + res.body());
    }
    return res.body().empty() ? json() : json::parse(res.body());
  }

  // An exec started on a hijacked connection; `leftover` holds what came with the header.
  unix_socket::socket start_exec(const std::string& container, const json& cmd, bool tty, std::string& leftover) {
    const json created = post("/containers/" + container + "/exec", {{"AttachStdin", tty},
                                                                      {"AttachStdout", true},
                                                                      {"AttachStderr", true},
                                                                      {"Tty", tty},
                                                                      {"Cmd", cmd}});
    const std::string id = created.at("Id");
    auto s = connect();
    auto req = request(http::verb::post, "/exec/" + id + "/start", {{"Detach", false}, {"Tty", tty}});
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::upgrade, "tcp");
    http::write(s, req);
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    http::read_header(s, buffer, parser);
    if (parser.get().result_int() != 101 && parser.get().result_int() != 200) {
      throw std::runtime_error("exec start: HTTP " + std::to_string(parser.get().result_int()));
    }
    leftover = beast::buffers_to_string(buffer.data());
    return s;
  }

 private:
  asio::io_context io_;
  std::string path_;
};

// -- modes ---------------------------------------------------------------

int tunnel_logs(const std::string& url, const std::string& token, const std::string& ca) {
  ServerClient server(ca);
  const auto t0 = Clock::now();
  const double cpu0 = cpu_seconds();
  auto ws = server.open_stream(url, token);
  beast::flat_buffer buffer;
  std::uint64_t bytes = 0, messages = 0;
  std::string status;
  for (;;) {
    boost::system::error_code ec;
    ws->read(buffer, ec);
    if (ec == websocket::error::closed) break;
    if (ec) {
      throw std::runtime_error(ec.message() + " after " + std::to_string(messages) + " messages" +
                               (status.empty() ? "" : ", the status " + status));
    }
    const auto data = buffer.data();
    const auto* p = static_cast<const char*>(data.data());
    if (data.size() > 0 && static_cast<std::uint8_t>(p[0]) == kStatus) {
      status.assign(p + 1, data.size() - 1);
    } else if (data.size() > 0) {
      bytes += data.size() - 1;
      ++messages;
    }
    buffer.consume(buffer.size());
  }
  const double elapsed = seconds_since(t0);
  std::cout << json{{"bytes", bytes},
                    {"messages", messages},
                    {"seconds", elapsed},
                    {"cpu", cpu_seconds() - cpu0},
                    {"status", status}}
                   .dump()
            << "\n";
  return 0;
}

int docker_logs(const std::string& socket_path, const std::string& target) {
  DockerClient docker(socket_path);
  const auto t0 = Clock::now();
  const double cpu0 = cpu_seconds();
  auto s = docker.connect();
  auto req = DockerClient::request(http::verb::get, target, nullptr);
  req.set(http::field::connection, "close");
  http::write(s, req);
  std::vector<char> chunk(256 * 1024);
  std::uint64_t bytes = 0;
  for (;;) {
    boost::system::error_code ec;
    const auto n = s.read_some(asio::buffer(chunk), ec);
    bytes += n;
    if (ec == asio::error::eof) break;
    if (ec) throw boost::system::system_error(ec);
  }
  std::cout << json{{"bytes", bytes}, {"seconds", seconds_since(t0)}, {"cpu", cpu_seconds() - cpu0}}.dump() << "\n";
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0.0;
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Time from the request to the first output of `echo x`, alternating the
// tunnel (action POST, /v1/stream upgrade, exec in the agent) and Docker's
// API (exec create, exec start on a hijacked connection).
int exec_open(const std::string& auth, const std::string& ca,
              const std::string& action_url, const std::string& socket_path, const std::string& container,
              int rounds) {
  ServerClient server(ca);
  DockerClient docker(socket_path);
  const json cmd = json::array({"echo", "x"});
  std::vector<double> tunnel_first, tunnel_action, tunnel_upgrade, tunnel_done, direct_first, direct_done;
  for (int i = 0; i < rounds; ++i) {
    {
      const auto t0 = Clock::now();
      const json access = server.post(action_url + "?action=execute", auth, {{"command", cmd}, {"tty", false}});
      const double t_action = seconds_since(t0);
      auto ws = server.open_stream(access.at("url"), access.at("token"));
      const double t_upgrade = seconds_since(t0);
      beast::flat_buffer buffer;
      double t_first = 0;
      std::string out;
      for (;;) {
        boost::system::error_code ec;
        ws->read(buffer, ec);
        if (ec) break;
        const std::string m = beast::buffers_to_string(buffer.data());
        buffer.consume(buffer.size());
        if (!m.empty() && static_cast<std::uint8_t>(m[0]) == kStdout) {
          out += m.substr(1);
          if (t_first == 0 && out.find('x') != std::string::npos) t_first = seconds_since(t0);
        }
      }
      if (t_first == 0) throw std::runtime_error("no output through the tunnel");
      tunnel_action.push_back(t_action * 1e3);
      tunnel_upgrade.push_back(t_upgrade * 1e3);
      tunnel_first.push_back(t_first * 1e3);
      tunnel_done.push_back(seconds_since(t0) * 1e3);
    }
    {
      const auto t0 = Clock::now();
      std::string out;
      auto s = docker.start_exec(container, cmd, false, out);
      double t_first = out.find('x') != std::string::npos ? seconds_since(t0) : 0;
      char chunk[4096];
      for (;;) {
        boost::system::error_code ec;
        const auto n = s.read_some(asio::buffer(chunk), ec);
        out.append(chunk, n);
        if (t_first == 0 && out.find('x') != std::string::npos) t_first = seconds_since(t0);
        if (ec) break;
      }
      if (t_first == 0) throw std::runtime_error("no output from Docker");
      direct_first.push_back(t_first * 1e3);
      direct_done.push_back(seconds_since(t0) * 1e3);
    }
  }
  std::cout << json{{"rounds", rounds},
                    {"tunnel_first_ms", {{"p50", median(tunnel_first)}, {"p90", percentile(tunnel_first, 0.9)}}},
                    {"tunnel_action_ms", median(tunnel_action)},
                    {"tunnel_upgrade_ms", median(tunnel_upgrade)},
                    {"tunnel_done_ms", median(tunnel_done)},
                    {"direct_first_ms", {{"p50", median(direct_first)}, {"p90", percentile(direct_first, 0.9)}}},
                    {"direct_done_ms", median(direct_done)}}
                   .dump()
            << "\n";
  return 0;
}

// Keystroke echo of a TTY: one byte in, its echo out, alternating the tunnel
// and a direct attach to Docker's hijacked exec connection. The keys
// alternate 'a' (echo "a") and DEL (echo "\b \b"), so the terminal's line
// never fills.
int exec_echo(const std::string& auth, const std::string& ca,
              const std::string& action_url, const std::string& socket_path, const std::string& container,
              int rounds) {
  ServerClient server(ca);
  DockerClient docker(socket_path);
  const json cmd = json::array({"cat"});
  const json access = server.post(action_url + "?action=execute", auth, {{"command", cmd}, {"tty", true}});
  auto ws = server.open_stream(access.at("url"), access.at("token"));
  send_message(*ws, kResize, R"({"width":80,"height":24})");
  std::string leftover;
  auto direct = docker.start_exec(container, cmd, true, leftover);

  beast::flat_buffer buffer;
  auto tunnel_round = [&](char key, std::size_t expect) {
    send_message(*ws, kStdin, std::string_view(&key, 1));
    std::size_t got = 0;
    while (got < expect) {
      ws->read(buffer);
      const std::string m = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      if (m.empty()) continue;
      if (static_cast<std::uint8_t>(m[0]) == kStatus) throw std::runtime_error("the exec ended: " + m.substr(1));
      if (static_cast<std::uint8_t>(m[0]) == kStdout) got += m.size() - 1;
    }
  };
  auto direct_round = [&](char key, std::size_t expect) {
    asio::write(direct, asio::buffer(&key, 1));
    std::size_t got = leftover.size();
    leftover.clear();
    char chunk[256];
    while (got < expect) got += direct.read_some(asio::buffer(chunk));
  };
  const char keys[2] = {'a', '\x7f'};
  const std::size_t echoes[2] = {1, 3};
  // Warm-up: the first keys wait for the exec to start on both sides.
  for (int i = 0; i < 50; ++i) {
    tunnel_round(keys[i % 2], echoes[i % 2]);
    direct_round(keys[i % 2], echoes[i % 2]);
  }
  std::vector<double> tunnel, direct_us;
  for (int i = 0; i < rounds; ++i) {
    const int k = i % 2;
    auto t0 = Clock::now();
    tunnel_round(keys[k], echoes[k]);
    tunnel.push_back(seconds_since(t0) * 1e6);
    t0 = Clock::now();
    direct_round(keys[k], echoes[k]);
    direct_us.push_back(seconds_since(t0) * 1e6);
  }
  std::vector<double> added(tunnel.size());
  for (std::size_t i = 0; i < tunnel.size(); ++i) added[i] = tunnel[i] - direct_us[i];
  auto summary = [](const std::vector<double>& v) {
    return json{{"p50", percentile(v, 0.5)}, {"p90", percentile(v, 0.9)}, {"p99", percentile(v, 0.99)}};
  };
  std::cout << json{{"rounds", rounds},
                    {"tunnel_us", summary(tunnel)},
                    {"direct_us", summary(direct_us)},
                    {"added_us", summary(added)}}
                   .dump()
            << "\n";
  boost::system::error_code ignored;
  ws->close(websocket::close_code::normal, ignored);
  return 0;
}

int usage() {
  std::cerr << "usage: stream_client tunnel-logs URL TOKEN CA_FILE\n"
               "       stream_client docker-logs SOCKET PATH\n"
               "       stream_client exec-open|exec-echo AUTH CA_FILE ACTION_URL SOCKET CONTAINER ROUNDS\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "tunnel-logs") return tunnel_logs(args[1], args[2], args[3]);
    if (args.size() == 3 && args[0] == "docker-logs") return docker_logs(args[1], args[2]);
    if (args.size() == 7 && (args[0] == "exec-open" || args[0] == "exec-echo")) {
      const int rounds = std::atoi(args[6].c_str());
      auto run = args[0] == "exec-open" ? exec_open : exec_echo;
      return run(args[1], args[2], args[3], args[4], args[5], rounds);
    }
  } catch (const std::exception& e) {
    std::cerr << "stream_client: " << e.what() << "\n";
    return 1;
  }
  return usage();
}
