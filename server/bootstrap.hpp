#pragma once
// First-start set-up of the data directory: the secrets key, the admin
// account with its API key (DIR/admin-key.json), and the Default project.

#include "common/result.hpp"
#include "server/config.hpp"
#include "server/database.hpp"

#include <filesystem>
#include <string>

namespace paddock::server {

// Reads DIR/secrets.key, making it (32 random bytes, 0600) on first start.
Result<std::string> load_secrets_key(const std::filesystem::path& dir);

// Creates what a first start needs; idempotent on later starts. A preset
// admin key (PADDOCK_ADMIN_*) is added if the store does not have it yet.
Status bootstrap(db::Database& db, const Config& config);

// Writes `content` to `path` atomically (temp file, fsync, rename) with `mode`.
Status write_file_atomic(const std::filesystem::path& path, const std::string& content, unsigned mode);

}  // namespace paddock::server
