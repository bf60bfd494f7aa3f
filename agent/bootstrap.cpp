#include "agent/bootstrap.hpp"

#include "agent/docker_monitor.hpp"
#include "common/log.hpp"
#include "common/version.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>

namespace paddock::agent {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

bool is_hex_id(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string string_at(const json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// True when `path` is `dir` or lies under it (both absolute, normalised).
bool is_within(const std::filesystem::path& path, const std::filesystem::path& dir) {
  auto p = path.lexically_normal();
  auto d = dir.lexically_normal();
  auto dir_end = std::mismatch(d.begin(), d.end(), p.begin(), p.end()).first;
  return dir_end == d.end() || (std::next(dir_end) == d.end() && dir_end->empty());
}

ExitStatus refused(std::string message) { return ExitStatus{kExitRefused, std::move(message)}; }

}  // namespace

std::string own_container_id(std::string_view mountinfo) {
  // A line's fourth field is the mounted path inside its filesystem, e.g.
  // /var/lib/docker/containers/<id>/hostname.
  constexpr std::string_view marker = "/containers/";
  for (std::size_t at = mountinfo.find(marker); at != std::string_view::npos;
       at = mountinfo.find(marker, at + 1)) {
    auto id = mountinfo.substr(at + marker.size(), 64);
    auto after = at + marker.size() + 64;
    if (is_hex_id(id) && after < mountinfo.size() && mountinfo[after] == '/') return std::string(id);
  }
  return {};
}

Result<Ok, ExitStatus> check_bootstrap_container(const json& self, const Options& options) {
  if (string_at(self, "Name") == "/" + std::string(kAgentContainerName)) {
    return refused("the bootstrap container must not be named " + std::string(kAgentContainerName) +
                   ": that name is for the long-running agent it starts; run the issued command as it is");
  }
  const auto mounts = self.is_object() ? self.value("Mounts", json::array()) : json::array();
  for (const auto& mount : mounts) {
    const std::string destination = string_at(mount, "Destination");
    if (!destination.empty() && is_within(options.state_dir, destination)) return Ok{};
  }
  return refused("the state directory " + options.state_dir.string() +
                 " is not mounted from the host, so the identity would be lost with this container: run the "
                 "issued command with -v /var/lib/paddock:/var/lib/paddock");
}

Result<json, ExitStatus> agent_container_spec(const json& self, const Options& options, const State& state) {
  const json config = self.is_object() ? self.value("Config", json::object()) : json::object();
  const json host_config = self.is_object() ? self.value("HostConfig", json::object()) : json::object();
  const std::string image = string_at(config, "Image");
  if (image.empty()) return refused("Docker does not say which image this container runs");

  json cmd = json::array({"--state-dir", options.state_dir.string()});
  for (const auto& [key, value] : options.labels) cmd.insert(cmd.end(), {"--label", key + "=" + value});
  if (!options.hostname.empty()) cmd.insert(cmd.end(), {"--hostname", options.hostname});
  if (!options.agent_ip.empty()) cmd.insert(cmd.end(), {"--agent-ip", options.agent_ip});
  cmd.insert(cmd.end(), {"--report-interval", std::to_string(options.report_interval.count()) + "ms"});
  cmd.insert(cmd.end(), {"--log-level", options.log_level});

  json env = json::array({"PADDOCK_BOOTSTRAP=false"});
  if (!options.docker_host.empty()) env.push_back("DOCKER_HOST=" + options.docker_host);

  json hc = {
      {"NetworkMode", "host"},
      // The host's pid namespace: an exec whose user went away is ended by
      // signalling its process, which the agent must be able to see.
      {"PidMode", "host"},
      {"RestartPolicy", {{"Name", "unless-stopped"}}},
      {"Privileged", host_config.value("Privileged", false)},
  };
  for (const char* copied : {"Binds", "Mounts"}) {
    auto it = host_config.find(copied);
    if (it != host_config.end() && it->is_array() && !it->empty()) hc[copied] = *it;
  }
  if (auto it = host_config.find("LogConfig"); it != host_config.end() && it->is_object()) hc["LogConfig"] = *it;

  return json{
      {"Image", image},
      {"Cmd", cmd},
      {"Env", env},
      {"Labels",
       {{"io.paddock.role", "agent"},
        {"io.paddock.host-id", state.host_id},
        {"io.paddock.server", state.server_url},
        {"io.paddock.agent-version", std::string(kVersion)}}},
      {"HostConfig", hc},
  };
}

asio::awaitable<Result<std::string, ExitStatus>> start_agent_container(DockerClient& docker, json spec,
                                                                      std::string_view name_view) {
  const std::string name(name_view);
  const std::string aside = name + std::string(kReplacedSuffix);
  // Plain functions returning the awaitable: no lambda with captures that own
  // memory is created inside a co_await expression (GCC 12 destroys those twice).
  auto remove = [&docker](const std::string& ref) {
    return docker_call([&docker, ref](DockerClient::JsonHandler done) { docker.remove_container(ref, std::move(done)); });
  };
  auto rename = [&docker](const std::string& ref, const std::string& to) {
    return docker_call([&docker, ref, to](DockerClient::JsonHandler done) {
      docker.rename_container(ref, to, std::move(done));
    });
  };
  auto start = [&docker](const std::string& ref) {
    return docker_call([&docker, ref](DockerClient::JsonHandler done) { docker.start_container(ref, std::move(done)); });
  };
  auto inspect = [&docker](const std::string& ref) {
    return docker_call([&docker, ref](DockerClient::JsonHandler done) { docker.inspect_container(ref, std::move(done)); });
  };
  auto stop = [&docker](const std::string& ref) {
    return docker_call([&docker, ref](DockerClient::JsonHandler done) {
      docker.stop_container(ref, std::chrono::seconds(10), std::move(done));
    });
  };
  auto create = [&docker](const std::string& as, const json& body) {
    return docker_call([&docker, as, body](DockerClient::JsonHandler done) {
      docker.create_container(as, body, std::move(done));
    });
  };

  // One set aside by a run that stopped midway is no longer wanted: either
  // its successor runs or one is about to.
  if (auto gone = co_await remove(aside); !gone && gone.error().code != Errc::not_found) {
    co_return refused("cannot remove the old container " + aside + ": " + gone.error().message);
  }

  auto old = co_await inspect(name);
  if (!old && old.error().code != Errc::not_found) {
    co_return refused("cannot look for a running " + name + ": " + old.error().message);
  }
  const bool replacing = old.ok();
  bool old_was_running = false;
  if (replacing) {
    old_was_running = old->value("State", json::object()).value("Running", false);
    spdlog::info("replacing the running {} ({})", name, string_at(old->value("Config", json::object()), "Image"));
    auto stopped = co_await stop(name);
    if (!stopped) co_return refused("cannot stop the old " + name + ": " + stopped.error().message);
    if (auto moved = co_await rename(name, aside); !moved) {
      if (old_was_running) co_await start(name);
      co_return refused("cannot set the old " + name + " aside: " + moved.error().message);
    }
  }

  // Puts the old agent back as it was: nothing is lost when the new one fails.
  auto restore = [&]() -> asio::awaitable<void> {
    if (!replacing) co_return;
    if (auto back = co_await rename(aside, name); !back) {
      spdlog::error("cannot give the old agent its name back: {}", back.error().message);
      co_return;
    }
    if (old_was_running) co_await start(name);
  };

  auto created = co_await create(name, spec);
  if (!created) {
    co_await restore();
    co_return refused("cannot create the " + name + " container: " + created.error().message);
  }
  const std::string id = string_at(*created, "Id");
  if (!is_hex_id(id)) {
    co_await restore();
    co_return refused("Docker created " + name + " but gave no usable id");
  }
  if (auto started = co_await start(id); !started) {
    co_await remove(id);
    co_await restore();
    co_return refused("cannot start the " + name + " container: " + started.error().message);
  }
  if (replacing) {
    if (auto gone = co_await remove(aside); !gone) {
      spdlog::warn("the new agent runs, but the old container {} is left: {}", aside, gone.error().message);
    }
  }
  co_return id;
}

}  // namespace paddock::agent
