#include "server/server.hpp"

#include "common/jwt.hpp"
#include "common/tls.hpp"
#include "common/version.hpp"
#include "server/agent_endpoints.hpp"
#include "server/agent_hub.hpp"
#include "server/api.hpp"
#include "server/bootstrap.hpp"
#include "server/database.hpp"
#include "server/events.hpp"
#include "server/heap_trimmer.hpp"
#include "server/http_server.hpp"
#include "server/metrics.hpp"
#include "server/resource_types.hpp"
#include "server/server_context.hpp"
#include "server/socket_quota.hpp"
#include "server/stream_broker.hpp"
#include "server/stream_endpoints.hpp"
#include "server/stream_tokens.hpp"
#include "server/system_routes.hpp"
#include "server/token_worker.hpp"
#include "server/web_ui.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <iostream>
#include <thread>

namespace paddock::server {

struct Server::Impl {
  Config config;
  // Before `io`: coroutine frames still in the loop when it is destroyed
  // give their slots back.
  SocketQuota sockets;
  boost::asio::io_context io;
  std::unique_ptr<db::Database> db;
  std::optional<jwt::KeyRing> keys;
  EventBus events;
  Metrics metrics;
  AgentHub agents;
  StreamBroker streams;
  ServerContext context;
  std::unique_ptr<Api> api;
  std::unique_ptr<WebUi> web_ui;
  std::unique_ptr<TokenWorker> tokens;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<HeapTrimmer> heap_trimmer;

  explicit Impl(Config c) : config(std::move(c)), sockets(config.max_websockets_per_account) {}

  Status open();
  std::vector<std::string> certificate_names() const;
};

std::vector<std::string> Server::Impl::certificate_names() const {
  std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
  boost::system::error_code ec;
  auto host = boost::asio::ip::host_name(ec);
  if (!ec && !host.empty()) names.push_back(host);
  if (config.listen_host != "0.0.0.0" && config.listen_host != "::") names.push_back(config.listen_host);
  if (!config.advertise_url.empty()) {
    if (auto url = boost::urls::parse_absolute_uri(config.advertise_url)) {
      std::string h = url->host();
      if (!h.empty()) names.push_back(h);
    }
  }
  names.insert(names.end(), config.tls_names.begin(), config.tls_names.end());
  return names;
}

Status Server::Impl::open() {
  std::error_code fs_error;
  std::filesystem::create_directories(config.data_dir, fs_error);
  if (fs_error) return fail(Errc::io, "cannot create " + config.data_dir.string() + ": " + fs_error.message());
  ::chmod(config.data_dir.c_str(), 0700);

  auto database = db::Database::open(config.data_dir / "paddock.db");
  if (!database) return database.error();
  db = std::move(*database);
  if (auto st = bootstrap(*db, config); !st) return st;
  auto secrets = load_secrets_key(config.data_dir);
  if (!secrets) return secrets.error();
  auto ring = jwt::KeyRing::open(config.data_dir / "jwt-keys");
  if (!ring) return ring.error();
  keys.emplace(std::move(*ring));

  context.config = &config;
  context.db = db.get();
  context.events = &events;
  context.keys = &*keys;
  context.agents = &agents;
  context.streams = &streams;
  context.sockets = &sockets;
  context.secrets_key = *secrets;

  std::shared_ptr<boost::asio::ssl::context> tls_context;
  if (config.tls) {
    auto identity = config.tls_cert.empty() ? tls::ensure_server_identity(config.data_dir / "tls", certificate_names())
                                            : tls::load_operator_identity(config.tls_cert, config.tls_key);
    if (!identity) return identity.error();
    context.ca_pem = identity->ca_pem;
    if (!identity->ca_pem.empty()) context.ca_checksum = tls::ca_checksum(identity->ca_pem);
    auto ssl = tls::make_server_context(*identity);
    if (!ssl) return ssl.error();
    tls_context = *ssl;
  }

  api = std::make_unique<Api>(context, metrics);
  tokens = std::make_unique<TokenWorker>(io, context, *api);
  api->add_type(make_account_type());
  api->add_type(make_project_type(
      {"projectMembers", "apiKeys", "registrationTokens", "hosts", "containers", "images"}));
  api->add_type(make_project_member_type());
  api->add_type(make_api_key_type());
  api->add_type(make_registration_token_type([this] { tokens->kick(); }));
  api->add_type(make_host_type());
  api->add_type(make_container_type());
  api->add_type(make_image_type());
  add_system_routes(*api, context);
  for (auto& def : stream_schema_types()) api->add_schema_type(std::move(def));
  add_agent_routes(*api, context, agents, metrics);
  add_stream_routes(*api, context, metrics);
  web_ui = std::make_unique<WebUi>(config.web_dir);
  api->set_web_ui(web_ui.get());
  if (auto st = reset_host_connections(*db); !st) return st;

  HttpServerOptions options;
  options.host = config.listen_host;
  options.port = config.listen_port;
  options.tls = tls_context;
  options.max_connections = static_cast<std::size_t>(config.max_connections);
  http = std::make_unique<HttpServer>(io, options, *api);
  heap_trimmer = std::make_unique<HeapTrimmer>(io, [this] { return http->accepted_connections(); });
  return Ok{};
}

Server::Server(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Server::~Server() = default;

int Server::run() {
  Impl& s = *impl_;
  if (auto st = s.open(); !st) {
    std::cerr << "paddock-server: " << st.error().message << "\n";
    return 1;
  }
  auto port = s.http->start();
  if (!port) {
    std::cerr << "paddock-server: " << port.error().message << "\n";
    return 1;
  }
  s.tokens->start();
  s.heap_trimmer->start();
  const std::string scheme = s.config.tls ? "https" : "http";
  spdlog::info("paddock-server {} listening on {}://{}:{} (data in {})", kVersion, scheme,
               s.config.listen_host.find(':') != std::string::npos ? "[" + s.config.listen_host + "]"
                                                                   : s.config.listen_host,
               *port, s.config.data_dir.string());
  if (!s.context.ca_checksum.empty()) spdlog::info("CA checksum {}", s.context.ca_checksum);

  boost::asio::signal_set signals(s.io, SIGTERM, SIGINT);
  signals.async_wait([&s](boost::system::error_code ec, int signal) {
    if (ec) return;
    spdlog::info("received {}, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    s.tokens->stop();
    s.heap_trimmer->stop();
    s.http->stop(std::chrono::seconds(10), [&s] { s.io.stop(); });
  });

  unsigned threads = s.config.threads ? s.config.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&s] { s.io.run(); });
  s.io.run();
  for (auto& t : pool) t.join();
  s.http.reset();
  s.db.reset();  // closes the store: the WAL is checkpointed
  spdlog::info("stopped");
  return 0;
}

}  // namespace paddock::server
