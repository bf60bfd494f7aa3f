#include "agent/agent.hpp"

#include "agent/bootstrap.hpp"
#include "agent/control_connection.hpp"
#include "agent/docker_client.hpp"
#include "agent/docker_monitor.hpp"
#include "agent/host_facts.hpp"
#include "agent/messages.hpp"
#include "agent/registration.hpp"
#include "agent/state.hpp"
#include "agent/stream_tunnel.hpp"
#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/tls.hpp"
#include "common/version.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace paddock::agent {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

// A container's restart policy name from Docker's inspect reply; empty when
// it has none or the reply is not as expected.
std::string restart_policy_of(const json& container) {
  if (!container.is_object()) return {};
  auto config = container.find("HostConfig");
  if (config == container.end() || !config->is_object()) return {};
  auto policy = config->find("RestartPolicy");
  if (policy == config->end() || !policy->is_object()) return {};
  auto name = policy->find("Name");
  return name != policy->end() && name->is_string() ? name->get<std::string>() : std::string();
}

class Agent {
 public:
  explicit Agent(const Options& options)
      : options_(options), signals_(io_, SIGINT, SIGTERM), report_wake_(io_.get_executor()) {}

  ExitStatus run() {
    signals_.async_wait([this](error_code ec, int signal) {
      if (ec) return;
      const char* name = signal == SIGINT ? "SIGINT" : "SIGTERM";
      // Cut short, the hand-over could leave the host with no agent at all:
      // the old container stopped, the new one not yet started.
      if (handing_over_) {
        spdlog::info("{}: stopping once the new agent container has taken over", name);
        return;
      }
      spdlog::info("{}: stopping", name);
      finish({kExitOk, ""});
    });
    asio::co_spawn(io_, start(), [this](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        finish({kExitFailure, std::string("unexpected failure: ") + ex.what()});
      }
    });
    io_.run();
    return exit_.value_or(ExitStatus{});
  }

 private:
  void finish(ExitStatus status) {
    if (status.code == kExitRefused && docker_ && !options_.bootstrap && !stopping_ && !restarts_paused_) {
      restarts_paused_ = true;
      asio::co_spawn(io_, pause_restarts(std::move(status)), asio::detached);
      return;
    }
    if (!exit_) exit_ = std::move(status);
    if (stopping_) return;
    stopping_ = true;
    signals_.cancel();
    report_wake_.notify();
    if (connection_) connection_->stop();
    if (tunnels_) tunnels_->stop();
    if (monitor_) {
      monitor_->stop();
    } else if (docker_) {
      docker_->stop();
    }
  }

  asio::awaitable<void> start() {
    auto loaded = load_state(options_.state_dir);
    if (!loaded) co_return finish({kExitRefused, loaded.error().message});
    std::optional<State> stored = std::move(*loaded);

    auto plan = plan_run(stored, options_.registration_url, options_.state_dir.string());
    if (plan.action == Plan::Action::refuse) co_return finish(plan.refusal);

    auto docker = DockerClient::create(io_.get_executor(), options_.docker_host);
    if (!docker) co_return finish({kExitRefused, "DOCKER_HOST: " + docker.error().message});
    docker_ = std::move(*docker);

    HostFactsCollector::Config facts_config;
    facts_config.hostname = options_.hostname;
    facts_config.agent_ip = options_.agent_ip;
    facts_config.labels = options_.labels;
    collector_ = std::make_unique<HostFactsCollector>(facts_config);

    auto machine = machine_id(options_.state_dir);
    if (!machine) co_return finish({kExitFailure, "cannot find or make a machine id: " + machine.error().message});

    // A bootstrap checks it can hand over before it uses up a token.
    json self;
    if (options_.bootstrap) {
      auto inspected = co_await inspect_own_container();
      if (!inspected) co_return finish(inspected.error());
      self = std::move(*inspected);
      if (auto ok = check_bootstrap_container(self, options_); !ok) co_return finish(ok.error());
    }

    const bool registering = plan.action == Plan::Action::register_host;
    if (registering) {
      auto state = co_await register_this_host(*plan.url, *machine);
      if (!state) co_return finish(state.error());
      // Saved even when a signal came meanwhile: the server counted the use.
      if (auto st = save_state(options_.state_dir, *state); !st) {
        co_return finish({kExitFailure, "registered, but " + st.error().message});
      }
      spdlog::info("registered with {} as host {}; state saved in {}", state->server_url, state->host_id,
                   state_path(options_.state_dir).string());
      state_ = std::move(*state);
    } else {
      state_ = std::move(*stored);
      if (!options_.registration_url.empty()) {
        spdlog::info("already registered with {} as host {}: not registering again", state_.server_url,
                     state_.host_id);
      }
      if (!options_.ca_checksum.empty() && !state_.ca_pem.empty() &&
          crypto::sha256_hex(state_.ca_pem) != options_.ca_checksum) {
        spdlog::warn("the CA pinned in the state does not match --ca-checksum; keeping the pinned one");
      }
      if (*machine != state_.machine_id) {
        spdlog::warn("the state was made on another machine (machine id {}, this one is {}); if it was copied, "
                     "the server refuses one of the two",
                     state_.machine_id, *machine);
      }
    }
    if (stopping_) co_return;
    if (options_.bootstrap) co_return co_await hand_over(self, registering);
    start_services();
  }

  // The id of the Docker container this process runs in; empty outside one.
  static std::string own_container() {
    std::ifstream file("/proc/self/mountinfo");
    std::stringstream mountinfo;
    mountinfo << file.rdbuf();
    return own_container_id(mountinfo.str());
  }

  std::filesystem::path paused_policy_file() const { return options_.state_dir / "restart-policy"; }

  // Refused for good (removed, deactivated, a copied identity): exit 2. In a
  // container Docker would start the agent again into the same refusal, for
  // ever, so first its restart policy becomes "no", the old one kept in the
  // state directory; the next session the server welcomes puts it back.
  asio::awaitable<void> pause_restarts(ExitStatus status) {
    const std::string id = own_container();
    std::string policy;
    if (!id.empty()) {
      auto self = co_await docker_call([this, &id](DockerClient::JsonHandler done) {
        docker_->inspect_container(id, std::move(done));
      });
      if (self) policy = restart_policy_of(*self);
    }
    if (!policy.empty() && policy != "no") {
      std::ofstream(paused_policy_file()) << policy << "\n";
      auto updated = co_await docker_call([this, &id](DockerClient::JsonHandler done) {
        docker_->set_restart_policy(id, "no", std::move(done));
      });
      if (updated) {
        spdlog::info("Docker will not restart this container (its restart policy was {}); once that is dealt "
                     "with, start it again with: docker start {}",
                     policy, id.substr(0, 12));
      } else {
        spdlog::warn("cannot stop Docker from restarting this container: {}", updated.error().message);
      }
    }
    finish(std::move(status));
  }

  // Welcomed again after a refusal: the container's restart policy as it was.
  asio::awaitable<void> restore_restarts() {
    std::string policy;
    std::ifstream(paused_policy_file()) >> policy;
    if (policy.empty()) co_return;
    const std::string id = own_container();
    if (!id.empty() && (policy == "always" || policy == "unless-stopped" || policy == "on-failure")) {
      auto updated = co_await docker_call([this, &id, &policy](DockerClient::JsonHandler done) {
        docker_->set_restart_policy(id, policy, std::move(done));
      });
      if (!updated) {
        spdlog::warn("cannot give this container its restart policy {} back: {}", policy, updated.error().message);
        co_return;
      }
      spdlog::info("this container's restart policy is {} again", policy);
    }
    std::error_code ignored;
    std::filesystem::remove(paused_policy_file(), ignored);
  }

  // The container this bootstrap runs in, as Docker sees it.
  asio::awaitable<Result<json, ExitStatus>> inspect_own_container() {
    const std::string id = own_container();
    if (id.empty()) {
      co_return ExitStatus{kExitRefused,
                           "--bootstrap (PADDOCK_BOOTSTRAP) is for the agent image started by docker run; "
                           "this process is not in a Docker container: run paddock-agent without it"};
    }
    auto self = co_await docker_call([this, &id](DockerClient::JsonHandler done) {
      docker_->inspect_container(id, std::move(done));
    });
    if (!self) co_return ExitStatus{kExitRefused, "cannot inspect this container through Docker: " + self.error().message};
    co_return std::move(*self);
  }

  // Starts the long-running agent container and says, in one line, which
  // host this is.
  asio::awaitable<void> hand_over(const json& self, bool registered_now) {
    handing_over_ = true;  // it ends in finish(), whatever happens
    auto spec = agent_container_spec(self, options_, state_);
    if (!spec) co_return finish(spec.error());
    auto started = co_await start_agent_container(*docker_, std::move(*spec));
    if (!started) co_return finish(started.error());
    const std::string name = (co_await host_facts()).name;
    std::cout << (registered_now ? "registered this host" : "this host is already registered") << " as \"" << name
              << "\" (" << state_.host_id << ") with " << state_.server_url << "; paddock-agent " << kVersion
              << " runs in the container " << kAgentContainerName << " (" << started->substr(0, 12) << ")"
              << std::endl;
    finish({kExitOk, ""});
  }

  // The host's facts; Docker knows the host's real name even when the agent
  // runs in a container.
  asio::awaitable<HostFacts> host_facts() {
    DockerFacts docker_facts;
    auto info = co_await docker_call([this](DockerClient::JsonHandler done) { docker_->info(std::move(done)); });
    if (info) docker_facts = docker_facts_from(nullptr, *info);
    co_return collector_->collect(docker_facts);
  }

  asio::awaitable<Result<State, ExitStatus>> register_this_host(const RegistrationUrl& url,
                                                               const std::string& machine) {
    const HostFacts facts = co_await host_facts();

    tls::ClientTrust trust = tls::ClientTrust::system();
    std::string ca_pem;
    if (!options_.ca_checksum.empty()) {
      auto ca = co_await fetch_pinned_ca(url.server_url, options_.ca_checksum);
      if (!ca) co_return ca.error();
      ca_pem = std::move(*ca);
      trust = tls::ClientTrust::pinned(ca_pem);
    }
    RegistrationFacts reg;
    reg.hostname = facts.name;
    reg.machine_id = machine;
    reg.labels = options_.labels;
    reg.agent_ip = facts.agent_ip;
    co_return co_await register_host(url, std::move(trust), std::move(ca_pem), std::move(reg),
                                     [this] { return stopping_; });
  }

  void start_services() {
    std::shared_ptr<asio::ssl::context> tls_context;
    auto server = http_client::parse_url(state_.server_url);
    if (!server) return finish({kExitRefused, "the state's server URL is unusable: " + server.error().message});
    if (server->tls()) {
      auto made = tls::make_client_context(state_.ca_pem.empty() ? tls::ClientTrust::system()
                                                                 : tls::ClientTrust::pinned(state_.ca_pem));
      if (!made) return finish({kExitRefused, "the state's pinned CA is unusable: " + made.error().message});
      tls_context = std::move(*made);
    }

    DockerMonitor::Callbacks docker_callbacks;
    docker_callbacks.on_change = [this](const json& message) {
      if (connection_->in_session() && !snapshot_pending_) connection_->send(encode_message(message));
    };
    docker_callbacks.on_synced = [this] {
      if (!connection_->in_session()) return;
      snapshot_pending_ = false;
      auto parts = encode_snapshot(host_json(), monitor_->containers(), monitor_->images());
      if (parts.size() > 1) {
        spdlog::warn("the snapshot of {} containers and {} images is over {} MiB: sent as {} messages, so the server "
                     "cannot see what was removed meanwhile",
                     monitor_->containers().size(), monitor_->images().size(), kMaxMessageBytes >> 20, parts.size());
      }
      for (auto& part : parts) connection_->send(std::move(part));
    };
    docker_callbacks.on_unreachable = [this] {
      if (connection_->in_session()) connection_->send(encode_message(host_message(host_json())));
    };
    monitor_ = std::make_unique<DockerMonitor>(io_.get_executor(), docker_, std::move(docker_callbacks));

    ControlConnection::Config config;
    config.server_url = state_.server_url;
    config.credential = state_.credential;
    config.tls = tls_context;
    ControlConnection::Callbacks callbacks;
    callbacks.on_session = [this] {
      if (!restarts_checked_) {
        restarts_checked_ = true;
        asio::co_spawn(io_, restore_restarts(), asio::detached);
      }
      // Every session starts with the full picture. While Docker is down
      // only the host is sent: an empty snapshot would wipe the server's view.
      snapshot_pending_ = true;
      if (monitor_->synced()) {
        monitor_->request_sync();
      } else if (monitor_->known()) {
        connection_->send(encode_message(host_message(host_json())));
      }
    };
    callbacks.on_jwks = [this](const json& jwks) {
      if (jwks == state_.jwks) return;
      state_.jwks = jwks;
      if (auto st = save_state(options_.state_dir, state_); !st) {
        spdlog::warn("cannot store the server's new token keys: {}", st.error().message);
      } else {
        spdlog::info("stored the server's token keys");
      }
    };
    callbacks.on_fatal = [this](ExitStatus status) { finish(std::move(status)); };
    StreamTunnels::Config tunnels;
    tunnels.server_url = state_.server_url;
    tunnels.host_id = state_.host_id;
    tunnels.tls = std::move(tls_context);
    tunnels.docker_socket = docker_->endpoint().socket_path;
    tunnels.docker_api_version = [docker = docker_] { return docker->api_version(); };
    tunnels.jwks = [this] { return state_.jwks; };
    tunnels_ = std::make_unique<StreamTunnels>(io_.get_executor(), std::move(tunnels));
    callbacks.on_open = [this](std::string token) { tunnels_->open(token); };
    connection_ = std::make_unique<ControlConnection>(io_.get_executor(), std::move(config), std::move(callbacks));

    spdlog::info("paddock-agent {} for host {} on {}; Docker at {}", kVersion, state_.host_id, state_.server_url,
                 docker_->endpoint().socket_path);
    monitor_->start();
    connection_->start();
    asio::co_spawn(io_, report_loop(), asio::detached);
  }

  json host_json() { return host_to_json(collector_->collect(monitor_->facts()), monitor_->facts()); }

  asio::awaitable<void> report_loop() {
    while (!stopping_) {
      co_await report_wake_.wait_for(options_.report_interval);
      if (stopping_) break;
      if (connection_->in_session() && monitor_->known()) {
        connection_->send(encode_message(host_message(host_json())));
      }
    }
  }

  Options options_;
  asio::io_context io_;
  asio::signal_set signals_;
  AsyncEvent report_wake_;
  std::optional<ExitStatus> exit_;
  bool stopping_ = false;
  bool handing_over_ = false;  // a bootstrap replacing the agent container
  bool restarts_paused_ = false;   // refused: Docker's restarts are being stopped
  bool restarts_checked_ = false;  // welcomed: a paused restart policy is put back
  bool snapshot_pending_ = false;
  State state_;
  std::shared_ptr<DockerClient> docker_;
  std::unique_ptr<HostFactsCollector> collector_;
  std::unique_ptr<DockerMonitor> monitor_;
  std::unique_ptr<ControlConnection> connection_;
  std::unique_ptr<StreamTunnels> tunnels_;
};

}  // namespace

ExitStatus run_agent(const Options& options) {
  auto status = Agent(options).run();
  if (status.code != kExitOk && !status.message.empty()) spdlog::error("{}", status.message);
  return status;
}

}  // namespace paddock::agent
