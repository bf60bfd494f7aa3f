#include "server/bootstrap.hpp"

#include "common/crypto.hpp"
#include "common/time_util.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace paddock::server {

Status write_file_atomic(const std::filesystem::path& path, const std::string& content, unsigned mode) {
  const auto tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return fail(Errc::io, "cannot write " + path.string() + ": " + std::strerror(errno));
  ::fchmod(fd, mode);
  std::size_t done = 0;
  while (done < content.size()) {
    auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return fail(Errc::io, "cannot write " + path.string() + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(Errc::io, "cannot write " + path.string() + ": " + std::strerror(errno));
  }
  // The rename itself must reach the disk too.
  int dir = ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Ok{};
}

Result<std::string> load_secrets_key(const std::filesystem::path& dir) {
  const auto path = dir / "secrets.key";
  if (std::filesystem::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    auto key = crypto::base64_decode(buf.str());
    if (!in || !key || key->size() != 32) return fail(Errc::invalid_input, path.string() + " is damaged");
    return *key;
  }
  std::string key = crypto::random_bytes(32);
  if (auto st = write_file_atomic(path, crypto::base64_encode(key), 0600); !st) return st.error();
  return key;
}

namespace {

std::int64_t insert_key(db::Connection& c, std::int64_t account, const std::string& access, const std::string& secret) {
  const std::string salt = crypto::random_token(16);
  c.exec("INSERT INTO api_keys (uuid, name, accountId, publicValue, secretSalt, secretHash, created) "
         "VALUES (?, 'admin', ?, ?, ?, ?, ?)",
         {crypto::hex_encode(crypto::random_bytes(16)), account, access, salt, crypto::hash_secret(salt, secret),
          time_util::now_ms()});
  return c.last_insert_id();
}

}  // namespace

Status bootstrap(db::Database& db, const Config& config) {
  const auto key_file = config.data_dir / "admin-key.json";
  std::string new_access, new_secret;
  auto done = db.write([&](db::Connection& c) {
    const auto now = time_util::now_ms();
    auto admin = c.query_one("SELECT id FROM accounts WHERE kind = 'admin' ORDER BY id LIMIT 1");
    std::int64_t admin_id;
    if (admin.is_null()) {
      c.exec("INSERT INTO accounts (uuid, name, kind, created) VALUES (?, 'admin', 'admin', ?)",
             {crypto::hex_encode(crypto::random_bytes(16)), now});
      admin_id = c.last_insert_id();
      new_access = config.admin_access_key.empty() ? crypto::random_token(12) : config.admin_access_key;
      new_secret = config.admin_secret_key.empty() ? crypto::random_token(32) : config.admin_secret_key;
      insert_key(c, admin_id, new_access, new_secret);
    } else {
      admin_id = admin["id"].get<std::int64_t>();
      if (!config.admin_access_key.empty() &&
          c.query_one("SELECT id FROM api_keys WHERE publicValue = ?", {config.admin_access_key}).is_null()) {
        new_access = config.admin_access_key;
        new_secret = config.admin_secret_key;
        insert_key(c, admin_id, new_access, new_secret);
      }
    }
    if (!new_access.empty()) {
      // Written before the commit: a crash in between leaves a key file for
      // a key that does not exist yet, which the next start replaces.
      nlohmann::json key = {{"accessKey", new_access}, {"secretKey", new_secret}};
      if (auto st = write_file_atomic(key_file, key.dump(2) + "\n", 0600); !st) throw db::Abort(st.error());
    }
    if (c.query_one("SELECT id FROM projects LIMIT 1").is_null()) {
      c.exec("INSERT INTO projects (uuid, name, description, created) VALUES (?, 'Default', 'The default project', ?)",
             {crypto::hex_encode(crypto::random_bytes(16)), now});
      c.exec("INSERT INTO project_members (uuid, projectId, accountId, role, created) VALUES (?, ?, ?, 'owner', ?)",
             {crypto::hex_encode(crypto::random_bytes(16)), c.last_insert_id(), admin_id, now});
    }
  });
  if (!done) return done.error();
  if (!new_access.empty()) spdlog::info("admin API key written to {}", key_file.string());
  return Ok{};
}

}  // namespace paddock::server
