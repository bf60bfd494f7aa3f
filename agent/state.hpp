#pragma once
// The agent's identity on disk: <state-dir>/state.json, mode 0600, written
// atomically (temp file, fsync, rename, fsync of the directory) and loaded
// strictly: a truncated, tampered, foreign or incomplete file is refused with
// one line, never half-used. A checksum over the canonical content catches
// edits that still parse as JSON.

#include "common/result.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace paddock::agent {

struct Credential {
  std::string access_key;
  std::string secret_key;

  bool operator==(const Credential&) const = default;
};

struct State {
  std::string server_url;  // origin of the server, e.g. https://server:8443
  std::string ca_pem;      // the pinned CA; empty: the system trust store
  std::string host_id;     // "1h5"
  std::string host_uuid;
  Credential credential;
  nlohmann::json jwks = nlohmann::json::object();  // the server's token keys {"keys": [...]}
  std::string machine_id;

  bool operator==(const State&) const = default;
};

inline constexpr int kStateVersion = 1;

// The file's JSON (with "version" and "checksum") and back. from_json
// checks every field's presence and type and the checksum.
nlohmann::json state_to_json(const State& state);
Result<State> state_from_json(const nlohmann::json& json);

std::filesystem::path state_path(const std::filesystem::path& state_dir);

// std::nullopt when there is no state file; an error when there is one that
// cannot be used (unreadable, not JSON, truncated, tampered, incomplete).
Result<std::optional<State>> load_state(const std::filesystem::path& state_dir);

// Creates the directory (0700) if needed and replaces state.json atomically.
Status save_state(const std::filesystem::path& state_dir, const State& state);

// Writes `content` to `path` atomically with `mode` (temp, fsync, rename,
// fsync dir).
Status write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode);

}  // namespace paddock::agent
