#pragma once
// What agents report, checked: registration facts, host reports, containers
// and images. Agents are untrusted peers: every field is type-checked and
// bounded, unknown fields are dropped.

#include "server/api_error.hpp"
#include "server/database.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>

namespace paddock::server {

// The body of POST <registrationUrl>: hostname and machineId required.
ApiResult<nlohmann::json> registration_facts(const nlohmann::json& body);

// A host report ({"host": …} of snapshot and host messages): only the
// fields agent.md lists, each of its type; nullopt when malformed.
std::optional<nlohmann::json> host_report(const nlohmann::json& host);
// A container or image as the agent reports it, as a row ready to store
// (without ids); nullopt when malformed.
std::optional<nlohmann::json> container_report(const nlohmann::json& container);
std::optional<nlohmann::json> image_report(const nlohmann::json& image);

// Stores reported host facts (registration or report) on host `id`.
void apply_host_facts(db::Connection& c, std::int64_t id, const nlohmann::json& facts);

bool is_docker_id(const nlohmann::json& v);

}  // namespace paddock::server
