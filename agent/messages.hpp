#pragma once
// The control connection's messages (docs/agent-protocol.md): Docker's
// replies turned into the protocol's container and image objects, the
// agent's messages, and the server's messages parsed strictly.

#include "common/result.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace paddock::agent {

// The server refuses messages over this size; the agent never sends one.
inline constexpr std::size_t kMaxMessageBytes = std::size_t{4} << 20;

// `text` as the server accepts it: valid UTF-8 (bad bytes become U+FFFD),
// no control characters but tab/newline/CR (others become a space), and at
// most `max_bytes`, cut on a character boundary.
std::string clean_text(std::string_view text, std::size_t max_bytes);

// Text that may hold a registration URL, fit to show or report: each
// "/v1/scripts/<token>" becomes "/v1/scripts/…" and a URL's "user:password@"
// becomes "…@". (The bootstrap container's command holds the URL.)
std::string redact_registration_secrets(std::string_view text);

// A string → string map of at most 256 entries with clean keys (<= 255
// bytes) and values (<= 4096 bytes); other entries are dropped.
nlohmann::json clean_labels(const nlohmann::json& labels);

// An item of GET /containers/json (untrusted) as a protocol `container`:
// dockerId, name, image, command, state, status, created (RFC 3339), labels,
// ports ("0.0.0.0:8080->80/tcp" or "80/tcp"). std::nullopt without a valid Id
// (64 lowercase hex); a state Docker does not document becomes "dead".
std::optional<nlohmann::json> container_from_docker(const nlohmann::json& item);

// An item of GET /images/json (untrusted) as a protocol `image`: dockerId,
// tags (without "<none>:<none>"), size, created. std::nullopt without a valid
// Id ("sha256:" + 64 hex, or 64 hex).
std::optional<nlohmann::json> image_from_docker(const nlohmann::json& item);

// True when two protocol containers differ in more than the `status` text
// ("Up 5 minutes" changes by itself; resending every container for it would
// be noise).
bool container_changed(const nlohmann::json& before, const nlohmann::json& after);

nlohmann::json snapshot_message(const nlohmann::json& host, const nlohmann::json& containers,
                                const nlohmann::json& images);
nlohmann::json host_message(const nlohmann::json& host);
nlohmann::json container_message(const nlohmann::json& container);
nlohmann::json container_removed_message(std::string_view docker_id);
nlohmann::json image_message(const nlohmann::json& image);
nlohmann::json image_removed_message(std::string_view docker_id);

// A message from the server. Unknown types are kept so they can be ignored.
struct ServerMessage {
  enum class Type { welcome, open, other };
  Type type = Type::other;
  std::string type_name;
  std::string host_id;        // welcome
  nlohmann::json jwks;        // welcome ({"keys": [...]}) or null
  std::string token;          // open
};
Result<ServerMessage> parse_server_message(std::string_view text);

// JSON text of a message; invalid UTF-8 from Docker becomes U+FFFD.
std::string encode_message(const nlohmann::json& message);

// The snapshot's encoding, shrunk to fit kMaxMessageBytes when a host has
// very many containers: container labels go first (they are the bulk). If
// it still does not fit, the host, each container and each image as a
// message of its own: the server then adds and updates, but cannot tell
// what is gone until a snapshot fits again.
std::vector<std::string> encode_snapshot(const nlohmann::json& host, const nlohmann::json& containers,
                                         const nlohmann::json& images);

}  // namespace paddock::agent
