#pragma once
// What the agent reports about its machine: identity (hostname, OS, kernel,
// addresses) and resource usage, read from /proc and the system. The parsers
// take the files' text so they can be tested on samples.

#include "common/result.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace paddock::agent {

// Aggregate CPU jiffies from the first "cpu " line of /proc/stat.
struct CpuTimes {
  std::uint64_t idle = 0;   // idle + iowait
  std::uint64_t total = 0;  // user nice system idle iowait irq softirq steal
};
std::optional<CpuTimes> parse_proc_stat(std::string_view text);

// Busy share between two samples in percent, 0-100 (0 when no time passed).
double cpu_percent(const CpuTimes& before, const CpuTimes& after);

// Bytes, from /proc/meminfo's kB figures. "used" is MemTotal - MemAvailable
// (MemFree + Buffers + Cached on kernels without MemAvailable).
struct MemoryUsage {
  std::uint64_t total = 0;
  std::uint64_t used = 0;
};
std::optional<MemoryUsage> parse_meminfo(std::string_view text);

// PRETTY_NAME (else NAME VERSION) from /etc/os-release, unquoted.
std::string parse_os_release(std::string_view text);

// Reads a machine id from a file: the first line, trimmed; std::nullopt when
// the file is missing, empty or not a plausible id (printable, <= 128 bytes).
std::optional<std::string> read_machine_id(const std::filesystem::path& path);

// The machine's stable id: $PADDOCK_MACHINE_ID_FILE if set (created with a
// random id when missing, so tests can simulate machines), else
// /etc/machine-id, else /var/lib/dbus/machine-id, else a random id kept in
// <state_dir>/machine-id so a re-run finds it again.
Result<std::string> machine_id(const std::filesystem::path& state_dir);

// What Docker says about itself, for the host object.
struct DockerFacts {
  bool reachable = false;
  std::string version;      // /version Version
  std::string api_version;  // /version ApiVersion
  std::string name;         // /info Name: the host's name even inside a container
  std::string os;           // /info OperatingSystem
  std::string root_dir;     // /info DockerRootDir
};
// Fills from /version and /info replies (either may be null); untrusted.
DockerFacts docker_facts_from(const nlohmann::json& version, const nlohmann::json& info);

struct HostFacts {
  std::string name;
  std::string os;
  std::string kernel;
  std::string arch;
  int cpu_count = 0;
  double cpu_percent = 0;
  std::uint64_t memory_total = 0, memory_used = 0;
  std::uint64_t disk_total = 0, disk_used = 0;
  std::vector<std::string> ip_addresses;
  std::string agent_ip;
  std::map<std::string, std::string> labels;
};

// The host object of the protocol (agent.md field names) with Docker's part.
nlohmann::json host_to_json(const HostFacts& facts, const DockerFacts& docker);

// Non-loopback interface addresses (IPv4 first, then IPv6 without
// link-local), as text.
std::vector<std::string> interface_addresses();

// Samples the machine. Keeps the last /proc/stat sample so cpuPercent is the
// busy share since the previous collect() (or the figure before, when fewer
// than kMinCpuTicks jiffies passed since). Not thread-safe.
class HostFactsCollector {
 public:
  static constexpr std::uint64_t kMinCpuTicks = 50;  // USER_HZ is 100: half a CPU-second

  struct Config {
    std::string hostname;   // --hostname; empty: Docker's name, else gethostname()
    std::string agent_ip;   // --agent-ip; empty: the first non-loopback address
    std::map<std::string, std::string> labels;
    std::filesystem::path proc_dir = "/proc";
    std::filesystem::path os_release = "/etc/os-release";
  };
  explicit HostFactsCollector(Config config);

  HostFacts collect(const DockerFacts& docker);

 private:
  Config config_;
  std::optional<CpuTimes> last_cpu_;
  double last_percent_ = 0;
};

}  // namespace paddock::agent
