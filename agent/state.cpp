#include "agent/state.hpp"

#include "common/crypto.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace paddock::agent {

namespace {

constexpr std::size_t kMaxStateBytes = std::size_t{1} << 20;

std::string errno_text(int e) { return std::strerror(e); }

// sha256 over the canonical dump (sorted keys, no whitespace) without the
// checksum itself.
std::string checksum_of(nlohmann::json json) {
  json.erase("checksum");
  return crypto::sha256_hex(json.dump());
}

Result<std::string> string_field(const nlohmann::json& j, const char* name, bool may_be_empty) {
  auto it = j.find(name);
  if (it == j.end()) return fail(Errc::invalid_input, std::string("\"") + name + "\" is missing");
  if (!it->is_string()) return fail(Errc::invalid_input, std::string("\"") + name + "\" is not a string");
  auto value = it->get<std::string>();
  if (!may_be_empty && value.empty()) return fail(Errc::invalid_input, std::string("\"") + name + "\" is empty");
  return value;
}

}  // namespace

std::filesystem::path state_path(const std::filesystem::path& state_dir) { return state_dir / "state.json"; }

nlohmann::json state_to_json(const State& s) {
  nlohmann::json j = {
      {"version", kStateVersion},
      {"serverUrl", s.server_url},
      {"caPem", s.ca_pem},
      {"hostId", s.host_id},
      {"hostUuid", s.host_uuid},
      {"credential", {{"accessKey", s.credential.access_key}, {"secretKey", s.credential.secret_key}}},
      {"jwks", s.jwks},
      {"machineId", s.machine_id},
  };
  j["checksum"] = checksum_of(j);
  return j;
}

Result<State> state_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail(Errc::invalid_input, "not a JSON object");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer()) {
    return fail(Errc::invalid_input, "\"version\" is missing");
  }
  if (version->get<std::int64_t>() != kStateVersion) {
    return fail(Errc::invalid_input, "version " + version->dump() + " is not one this agent knows");
  }
  auto sum = string_field(j, "checksum", false);
  if (!sum) return sum.error();
  if (!crypto::constant_time_equals(*sum, checksum_of(j))) {
    return fail(Errc::invalid_input, "its checksum does not match its content (edited or damaged)");
  }
  State s;
  struct Field {
    const char* name;
    std::string* out;
    bool may_be_empty;
  };
  for (const Field& f : {Field{"serverUrl", &s.server_url, false}, Field{"caPem", &s.ca_pem, true},
                         Field{"hostId", &s.host_id, false}, Field{"hostUuid", &s.host_uuid, true},
                         Field{"machineId", &s.machine_id, false}}) {
    auto v = string_field(j, f.name, f.may_be_empty);
    if (!v) return v.error();
    *f.out = std::move(*v);
  }
  auto cred = j.find("credential");
  if (cred == j.end() || !cred->is_object()) return fail(Errc::invalid_input, "\"credential\" is missing");
  auto ak = string_field(*cred, "accessKey", false);
  if (!ak) return ak.error();
  auto sk = string_field(*cred, "secretKey", false);
  if (!sk) return sk.error();
  s.credential = {std::move(*ak), std::move(*sk)};
  auto jwks = j.find("jwks");
  if (jwks == j.end() || !jwks->is_object()) return fail(Errc::invalid_input, "\"jwks\" is missing");
  s.jwks = *jwks;
  return s;
}

Result<std::optional<State>> load_state(const std::filesystem::path& state_dir) {
  const auto path = state_path(state_dir);
  const std::string where = "the state file " + path.string();
  const std::string fix = "; restore it or delete it and register again with the server's command";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<State>{};
    return fail(Errc::io, "cannot read " + where + ": " + errno_text(errno));
  }
  std::string data;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return fail(Errc::io, "cannot read " + where + ": " + errno_text(e));
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > kMaxStateBytes) {
      ::close(fd);
      return fail(Errc::invalid_input, where + " is over 1 MiB: not a state file" + fix);
    }
  }
  ::close(fd);
  if (data.empty()) return fail(Errc::invalid_input, where + " is empty" + fix);
  auto json = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return fail(Errc::invalid_input, where + " is not valid JSON (truncated?)" + fix);
  auto state = state_from_json(json);
  if (!state) return fail(Errc::invalid_input, where + " is unusable: " + state.error().message + fix);
  return std::optional<State>(std::move(*state));
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode) {
  const auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  std::string tmp = path.string() + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return fail(Errc::io, "cannot create a file in " + dir.string() + ": " + errno_text(errno));
  auto cleanup = [&](const std::string& what) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(Errc::io, "cannot write " + path.string() + ": " + what + ": " + errno_text(e));
  };
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return cleanup("chmod");
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup("fsync");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::io, "cannot write " + path.string() + ": close: " + errno_text(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::io, "cannot replace " + path.string() + ": " + errno_text(e));
  }
  // The rename is durable only once the directory is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Ok{};
}

Status save_state(const std::filesystem::path& state_dir, const State& state) {
  std::error_code ec;
  if (std::filesystem::create_directories(state_dir, ec)) ::chmod(state_dir.c_str(), 0700);
  if (ec) return fail(Errc::io, "cannot create " + state_dir.string() + ": " + ec.message());
  return write_file_atomic(state_path(state_dir), state_to_json(state).dump(2) + "\n", 0600);
}

}  // namespace paddock::agent
