#include "agent/host_facts.hpp"

#include "agent/messages.hpp"
#include "agent/state.hpp"
#include "common/crypto.hpp"
#include "common/version.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace paddock::agent {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Reads at most `limit` bytes of a small system file.
std::optional<std::string> read_small_file(const std::filesystem::path& path, std::size_t limit = 1 << 20) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data(limit, '\0');
  in.read(data.data(), static_cast<std::streamsize>(limit));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data;
}

std::optional<std::uint64_t> to_u64(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

std::string json_string(const nlohmann::json& j, const char* key, std::size_t max = 256) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  auto s = it->get<std::string>();
  if (s.size() > max) s.resize(max);
  return s;
}

bool plausible_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

}  // namespace

std::optional<CpuTimes> parse_proc_stat(std::string_view text) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (line.substr(0, 4) == "cpu ") {
      std::istringstream in{std::string(line.substr(4))};
      std::uint64_t v[8] = {};
      int n = 0;
      std::string field;
      while (n < 8 && in >> field) {
        auto value = to_u64(field);
        if (!value) return std::nullopt;
        v[n++] = *value;
      }
      if (n < 4) return std::nullopt;
      CpuTimes t;
      t.idle = v[3] + v[4];
      for (int i = 0; i < n; ++i) t.total += v[i];
      return t;
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return std::nullopt;
}

double cpu_percent(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total || after.idle < before.idle) return 0;
  const double total = static_cast<double>(after.total - before.total);
  const double idle = static_cast<double>(after.idle - before.idle);
  const double busy = std::clamp((total - idle) / total * 100.0, 0.0, 100.0);
  return std::round(busy * 10.0) / 10.0;
}

std::optional<MemoryUsage> parse_meminfo(std::string_view text) {
  std::optional<std::uint64_t> total, available, free, buffers, cached;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      const auto key = line.substr(0, colon);
      std::string_view rest = trim(line.substr(colon + 1));
      if (rest.size() > 3 && rest.substr(rest.size() - 3) == " kB") rest = trim(rest.substr(0, rest.size() - 3));
      auto kb = to_u64(rest);
      if (kb && *kb < (std::uint64_t{1} << 50)) {
        const std::uint64_t bytes = *kb * 1024;
        if (key == "MemTotal") total = bytes;
        else if (key == "MemAvailable") available = bytes;
        else if (key == "MemFree") free = bytes;
        else if (key == "Buffers") buffers = bytes;
        else if (key == "Cached") cached = bytes;
      }
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  if (!total) return std::nullopt;
  std::uint64_t avail = 0;
  if (available) {
    avail = *available;
  } else if (free) {
    avail = *free + buffers.value_or(0) + cached.value_or(0);
  } else {
    return std::nullopt;
  }
  MemoryUsage m;
  m.total = *total;
  m.used = avail >= *total ? 0 : *total - avail;
  return m;
}

std::string parse_os_release(std::string_view text) {
  std::map<std::string, std::string, std::less<>> values;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    const auto eq = line.find('=');
    if (!line.empty() && line.front() != '#' && eq != std::string_view::npos) {
      std::string_view raw = line.substr(eq + 1);
      std::string value;
      if (!raw.empty() && (raw.front() == '"' || raw.front() == '\'')) {
        const char quote = raw.front();
        for (std::size_t i = 1; i < raw.size() && raw[i] != quote; ++i) {
          if (raw[i] == '\\' && quote == '"' && i + 1 < raw.size()) ++i;
          value += raw[i];
        }
      } else {
        value = std::string(raw);
      }
      values[std::string(line.substr(0, eq))] = value.substr(0, 256);
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  if (auto it = values.find("PRETTY_NAME"); it != values.end() && !it->second.empty()) return it->second;
  std::string out = values.count("NAME") ? values["NAME"] : std::string();
  if (values.count("VERSION") && !values["VERSION"].empty()) out += (out.empty() ? "" : " ") + values["VERSION"];
  return out;
}

std::optional<std::string> read_machine_id(const std::filesystem::path& path) {
  auto data = read_small_file(path, 4096);
  if (!data) return std::nullopt;
  std::string_view text = *data;
  text = trim(text.substr(0, text.find('\n')));
  if (!plausible_id(text)) return std::nullopt;
  return std::string(text);
}

Result<std::string> machine_id(const std::filesystem::path& state_dir) {
  auto read_or_create = [](const std::filesystem::path& path) -> Result<std::string> {
    if (auto id = read_machine_id(path)) return *id;
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      return fail(Errc::invalid_input, path.string() + " does not hold a machine id; delete it to make a new one");
    }
    // A directory made here is the state directory, or like it: private.
    if (!path.parent_path().empty() && std::filesystem::create_directories(path.parent_path(), ec)) {
      ::chmod(path.parent_path().c_str(), 0700);
    }
    const std::string id = crypto::hex_encode(crypto::random_bytes(16));
    if (auto st = write_file_atomic(path, id + "\n", 0644); !st) return st.error();
    return id;
  };
  if (const char* env = std::getenv("PADDOCK_MACHINE_ID_FILE"); env != nullptr && *env != '\0') {
    return read_or_create(env);
  }
  for (const char* system_file : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    if (auto id = read_machine_id(system_file)) return *id;
  }
  return read_or_create(state_dir / "machine-id");
}

DockerFacts docker_facts_from(const nlohmann::json& version, const nlohmann::json& info) {
  DockerFacts d;
  d.version = json_string(version, "Version", 64);
  d.api_version = json_string(version, "ApiVersion", 16);
  d.name = json_string(info, "Name", 253);
  d.os = json_string(info, "OperatingSystem");
  d.root_dir = json_string(info, "DockerRootDir", 4096);
  return d;
}

nlohmann::json host_to_json(const HostFacts& f, const DockerFacts& docker) {
  auto text_or_null = [](const std::string& s) {
    return s.empty() ? nlohmann::json() : nlohmann::json(clean_text(s, 255));
  };
  std::vector<std::string> addresses(f.ip_addresses.begin(),
                                     f.ip_addresses.begin() + static_cast<std::ptrdiff_t>(
                                                                  std::min<std::size_t>(f.ip_addresses.size(), 256)));
  // agent.md calls it `name`; the server's report reader takes `hostname`.
  return {
      {"name", text_or_null(f.name)},
      {"hostname", text_or_null(f.name)},
      {"agentVersion", kVersion},
      {"dockerVersion", text_or_null(docker.version)},
      {"dockerApiVersion", text_or_null(docker.api_version)},
      {"dockerState", docker.reachable ? "ok" : "unreachable"},
      {"os", text_or_null(f.os)},
      {"kernel", text_or_null(f.kernel)},
      {"arch", text_or_null(f.arch)},
      {"cpuCount", f.cpu_count},
      {"cpuPercent", f.cpu_percent},
      {"memoryTotal", f.memory_total},
      {"memoryUsed", f.memory_used},
      {"diskTotal", f.disk_total},
      {"diskUsed", f.disk_used},
      {"labels", clean_labels(nlohmann::json(f.labels))},
      {"agentIp", text_or_null(f.agent_ip)},
      {"ipAddresses", addresses},
  };
}

std::vector<std::string> interface_addresses() {
  std::vector<std::string> v4, v6;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) != 0 || (i->ifa_flags & IFF_UP) == 0) continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      sockaddr_in in4{};
      std::memcpy(&in4, i->ifa_addr, sizeof in4);
      if (::inet_ntop(AF_INET, &in4.sin_addr, text, sizeof text)) v4.emplace_back(text);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      sockaddr_in6 in6{};
      std::memcpy(&in6, i->ifa_addr, sizeof in6);
      if (IN6_IS_ADDR_LINKLOCAL(&in6.sin6_addr) || IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr)) continue;
      if (::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text)) v6.emplace_back(text);
    }
  }
  ::freeifaddrs(list);
  std::vector<std::string> out;
  for (auto* group : {&v4, &v6}) {
    for (auto& a : *group) {
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    }
  }
  return out;
}

HostFactsCollector::HostFactsCollector(Config config) : config_(std::move(config)) {
  if (auto stat = read_small_file(config_.proc_dir / "stat")) last_cpu_ = parse_proc_stat(*stat);
}

HostFacts HostFactsCollector::collect(const DockerFacts& docker) {
  HostFacts f;
  f.name = config_.hostname;
  if (f.name.empty()) f.name = docker.name;
  if (f.name.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) f.name = buf;
  }
  utsname uts{};
  if (::uname(&uts) == 0) {
    f.kernel = uts.release;
    f.arch = uts.machine;
  }
  f.os = docker.os;
  if (f.os.empty()) {
    if (auto text = read_small_file(config_.os_release, 64 * 1024)) f.os = parse_os_release(*text);
  }
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  f.cpu_count = cpus > 0 ? static_cast<int>(cpus) : 1;
  if (auto stat = read_small_file(config_.proc_dir / "stat")) {
    if (auto now = parse_proc_stat(*stat)) {
      // Samples taken moments apart (a snapshot right after a report) say
      // nothing: keep the last figure until enough ticks have passed.
      if (!last_cpu_ || now->total < last_cpu_->total) {
        last_cpu_ = now;
      } else if (now->total - last_cpu_->total >= kMinCpuTicks) {
        last_percent_ = cpu_percent(*last_cpu_, *now);
        last_cpu_ = now;
      }
    }
  }
  f.cpu_percent = last_percent_;
  if (auto text = read_small_file(config_.proc_dir / "meminfo")) {
    if (auto mem = parse_meminfo(*text)) {
      f.memory_total = mem->total;
      f.memory_used = mem->used;
    }
  }
  // Docker's root when this process can see it (not inside the agent's
  // container), else the root file system.
  std::filesystem::path disk = "/";
  std::error_code ec;
  if (!docker.root_dir.empty() && std::filesystem::is_directory(docker.root_dir, ec)) disk = docker.root_dir;
  struct statvfs vfs{};
  if (::statvfs(disk.c_str(), &vfs) == 0) {
    f.disk_total = static_cast<std::uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    const auto free_bytes = static_cast<std::uint64_t>(vfs.f_bfree) * vfs.f_frsize;
    f.disk_used = f.disk_total >= free_bytes ? f.disk_total - free_bytes : 0;
  }
  f.ip_addresses = interface_addresses();
  f.agent_ip = config_.agent_ip;
  if (f.agent_ip.empty() && !f.ip_addresses.empty()) f.agent_ip = f.ip_addresses.front();
  f.labels = config_.labels;
  return f;
}

}  // namespace paddock::agent
