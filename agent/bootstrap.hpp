#pragma once
// Bootstrap: what the issued `docker run … paddock/agent:<v> <url>` does.
// That short-lived container registers (or finds its stored identity), then
// hands over to a long-running container named `paddock-agent`, started
// through the Docker API from the same image with the same mounts, on the
// host's network and restarted by Docker. An older `paddock-agent` is
// replaced, which makes running the command again the upgrade path.

#include "agent/docker_client.hpp"
#include "agent/exit_status.hpp"
#include "agent/options.hpp"
#include "agent/state.hpp"
#include "common/result.hpp"

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace paddock::agent {

inline constexpr std::string_view kAgentContainerName = "paddock-agent";
// Where the container being replaced waits until its successor runs: the
// name with this suffix.
inline constexpr std::string_view kReplacedSuffix = "-replaced";

// The id of the container this process runs in, read from
// /proc/self/mountinfo (Docker bind-mounts /etc/hostname and friends from
// <data-root>/containers/<id>/), or empty outside a Docker container.
std::string own_container_id(std::string_view mountinfo);

// Checks, before anything is registered, that the bootstrap container can
// hand over: the state directory is a mount the long-running container can
// share. `self` is Docker's inspect of the bootstrap container.
Result<Ok, ExitStatus> check_bootstrap_container(const nlohmann::json& self, const Options& options);

// The body of POST /containers/create for the long-running agent: the
// bootstrap container's image, mounts, privileges and log settings; the
// host's network; restart unless stopped; the options it was given (never
// the registration URL: the state holds the identity); labels naming the
// host and server.
Result<nlohmann::json, ExitStatus> agent_container_spec(const nlohmann::json& self, const Options& options,
                                                        const State& state);

// Starts the long-running agent from `spec`, replacing a `paddock-agent`
// that exists. The old one is stopped and set aside first, so two agents
// never hold the same identity at once, and it comes back if the new one
// cannot be started. Answers the new container's id. (`name` must outlive
// the call.)
boost::asio::awaitable<Result<std::string, ExitStatus>> start_agent_container(
    DockerClient& docker, nlohmann::json spec, std::string_view name = kAgentContainerName);

}  // namespace paddock::agent
