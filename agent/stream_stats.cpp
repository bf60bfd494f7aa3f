#include "agent/stream_stats.hpp"

#include "common/time_util.hpp"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>

namespace paddock::agent {

using nlohmann::json;

namespace {

const json* at(const json& j, std::initializer_list<const char*> path) {
  const json* node = &j;
  for (const char* key : path) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

// A non-negative count; anything else is 0.
std::uint64_t count(const json* v) {
  if (v == nullptr) return 0;
  if (v->is_number_unsigned()) return v->get<std::uint64_t>();
  if (v->is_number_integer()) {
    const auto i = v->get<std::int64_t>();
    return i > 0 ? static_cast<std::uint64_t>(i) : 0;
  }
  if (v->is_number_float()) {
    const double d = v->get<double>();
    return d > 0 && d < 1.8e19 ? static_cast<std::uint64_t>(d) : 0;
  }
  return 0;
}

std::uint64_t count(const json& j, std::initializer_list<const char*> path) { return count(at(j, path)); }

// The sample's "read" time in epoch ms; nothing for Go's zero time.
std::optional<std::int64_t> read_time(const json& sample) {
  const json* read = at(sample, {"read"});
  if (read == nullptr || !read->is_string()) return std::nullopt;
  auto ms = time_util::parse_rfc3339(read->get_ref<const std::string&>());
  if (!ms || *ms <= 0) return std::nullopt;
  return ms;
}

std::uint64_t online_cpus(const json& sample) {
  if (auto n = count(sample, {"cpu_stats", "online_cpus"}); n > 0) return n;
  const json* per_cpu = at(sample, {"cpu_stats", "cpu_usage", "percpu_usage"});
  if (per_cpu != nullptr && per_cpu->is_array() && !per_cpu->empty()) return per_cpu->size();
  return 0;
}

double cpu_percent(const json& sample, std::uint64_t cpus) {
  const std::uint64_t cpu = count(sample, {"cpu_stats", "cpu_usage", "total_usage"});
  const std::uint64_t pre_cpu = count(sample, {"precpu_stats", "cpu_usage", "total_usage"});
  const std::uint64_t system = count(sample, {"cpu_stats", "system_cpu_usage"});
  const std::uint64_t pre_system = count(sample, {"precpu_stats", "system_cpu_usage"});
  // Without a previous reading the "delta" would be the whole uptime.
  if (pre_system == 0 || system <= pre_system || cpu <= pre_cpu) return 0.0;
  const double percent = static_cast<double>(cpu - pre_cpu) / static_cast<double>(system - pre_system) *
                         static_cast<double>(cpus == 0 ? 1 : cpus) * 100.0;
  if (!std::isfinite(percent) || percent < 0) return 0.0;
  return std::round(percent * 100.0) / 100.0;
}

std::uint64_t memory_usage(const json& sample) {
  const std::uint64_t usage = count(sample, {"memory_stats", "usage"});
  std::uint64_t reclaimable = 0;
  if (const json* v = at(sample, {"memory_stats", "stats", "total_inactive_file"})) {
    reclaimable = count(v);  // cgroup v1
  } else if (const json* w = at(sample, {"memory_stats", "stats", "inactive_file"})) {
    reclaimable = count(w);  // cgroup v2
  } else {
    reclaimable = count(sample, {"memory_stats", "stats", "cache"});
  }
  return reclaimable < usage ? usage - reclaimable : usage;
}

void block_io(const json& sample, std::uint64_t& read, std::uint64_t& write) {
  read = write = 0;
  const json* entries = at(sample, {"blkio_stats", "io_service_bytes_recursive"});
  if (entries == nullptr || !entries->is_array()) return;
  for (const auto& e : *entries) {
    const json* op = at(e, {"op"});
    if (op == nullptr || !op->is_string()) continue;
    const auto& name = op->get_ref<const std::string&>();
    // cgroup v1 says "Read"/"Write", v2 "read"/"write".
    if (name == "Read" || name == "read") read += count(at(e, {"value"}));
    if (name == "Write" || name == "write") write += count(at(e, {"value"}));
  }
}

}  // namespace

json normalize_stats(const json& sample, std::string_view container, std::int64_t now_ms) {
  const std::uint64_t cpus = online_cpus(sample);
  std::uint64_t rx = 0;
  std::uint64_t tx = 0;
  if (const json* networks = at(sample, {"networks"}); networks != nullptr && networks->is_object()) {
    for (const auto& [name, n] : networks->items()) {
      (void)name;
      rx += count(at(n, {"rx_bytes"}));
      tx += count(at(n, {"tx_bytes"}));
    }
  }
  std::uint64_t block_read = 0;
  std::uint64_t block_write = 0;
  block_io(sample, block_read, block_write);
  return json{{"time", time_util::format_rfc3339(read_time(sample).value_or(now_ms))},
              {"container", std::string(container)},
              {"cpuPercent", cpu_percent(sample, cpus)},
              {"cpuCount", cpus},
              {"memoryUsage", memory_usage(sample)},
              {"memoryLimit", count(sample, {"memory_stats", "limit"})},
              {"networkRx", rx},
              {"networkTx", tx},
              {"blockRead", block_read},
              {"blockWrite", block_write},
              {"pids", count(sample, {"pids_stats", "current"})}};
}

bool is_empty_stats(const json& sample) {
  return !read_time(sample) && count(sample, {"cpu_stats", "cpu_usage", "total_usage"}) == 0;
}

}  // namespace paddock::agent
