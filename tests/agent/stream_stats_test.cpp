#include "agent/stream_stats.hpp"

#include <gtest/gtest.h>

#include <string>

namespace paddock::agent {
namespace {

using nlohmann::json;

const std::string kId(64, 'c');

// A trimmed sample of Docker 20.10 on cgroup v2 (the fields we read, as Docker
// writes them).
const char* kCgroupV2 = R"({
  "read": "2026-11-22T08:00:01.123456789Z",
  "preread": "2026-11-22T08:00:00.120000000Z",
  "pids_stats": {"current": 3, "limit": 18446744073709551615},
  "blkio_stats": {"io_service_bytes_recursive": [
    {"major": 8, "minor": 0, "op": "read", "value": 4096},
    {"major": 8, "minor": 0, "op": "write", "value": 8192},
    {"major": 8, "minor": 16, "op": "read", "value": 100}
  ]},
  "num_procs": 0,
  "cpu_stats": {"cpu_usage": {"total_usage": 2500000000, "usage_in_kernelmode": 1, "usage_in_usermode": 2},
                "system_cpu_usage": 20000000000, "online_cpus": 2, "throttling_data": {}},
  "precpu_stats": {"cpu_usage": {"total_usage": 2000000000}, "system_cpu_usage": 18000000000, "online_cpus": 2},
  "memory_stats": {"usage": 10485760, "limit": 1073741824,
                   "stats": {"inactive_file": 2097152, "active_file": 1, "anon": 3}},
  "name": "/busy",
  "id": "cccc",
  "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}}
})";

// cgroup v1: total_inactive_file, "Read"/"Write", percpu_usage instead of online_cpus.
const char* kCgroupV1 = R"({
  "read": "2026-11-22T08:00:01Z",
  "pids_stats": {"current": 1},
  "blkio_stats": {"io_service_bytes_recursive": [
    {"major": 8, "minor": 0, "op": "Read", "value": 10},
    {"major": 8, "minor": 0, "op": "Write", "value": 20},
    {"major": 8, "minor": 0, "op": "Sync", "value": 30},
    {"major": 8, "minor": 0, "op": "Total", "value": 30}
  ]},
  "cpu_stats": {"cpu_usage": {"total_usage": 300, "percpu_usage": [100, 100, 50, 50]}, "system_cpu_usage": 4000},
  "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 2000},
  "memory_stats": {"usage": 5000, "limit": 9000, "stats": {"total_inactive_file": 1000, "cache": 3000}}
})";

TEST(StreamStats, NormalizesACgroupV2Sample) {
  const json s = normalize_stats(json::parse(kCgroupV2), kId, 0);
  EXPECT_EQ(s["time"], "2026-11-22T08:00:01.123Z");
  EXPECT_EQ(s["container"], kId);
  // (0.5e9 / 2e9) × 2 CPUs × 100
  EXPECT_DOUBLE_EQ(s["cpuPercent"].get<double>(), 50.0);
  EXPECT_EQ(s["cpuCount"], 2);
  EXPECT_EQ(s["memoryUsage"], 10485760 - 2097152);
  EXPECT_EQ(s["memoryLimit"], 1073741824);
  EXPECT_EQ(s["networkRx"], 1001);
  EXPECT_EQ(s["networkTx"], 2002);
  EXPECT_EQ(s["blockRead"], 4196);
  EXPECT_EQ(s["blockWrite"], 8192);
  EXPECT_EQ(s["pids"], 3);
  EXPECT_EQ(s.size(), 11u) << s.dump();
  EXPECT_FALSE(is_empty_stats(json::parse(kCgroupV2)));
}

TEST(StreamStats, NormalizesACgroupV1Sample) {
  const json s = normalize_stats(json::parse(kCgroupV1), kId, 0);
  EXPECT_EQ(s["time"], "2026-11-22T08:00:01Z");
  EXPECT_EQ(s["cpuCount"], 4);
  // (200 / 2000) × 4 × 100
  EXPECT_DOUBLE_EQ(s["cpuPercent"].get<double>(), 40.0);
  EXPECT_EQ(s["memoryUsage"], 4000) << "total_inactive_file goes before cache";
  EXPECT_EQ(s["blockRead"], 10);
  EXPECT_EQ(s["blockWrite"], 20);
  EXPECT_EQ(s["networkRx"], 0);
  EXPECT_EQ(s["pids"], 1);
}

TEST(StreamStats, CacheIsTheLastResortAndUsageNeverGoesNegative) {
  json sample = {{"memory_stats", {{"usage", 5000}, {"stats", {{"cache", 3000}}}}}};
  EXPECT_EQ(normalize_stats(sample, kId, 0)["memoryUsage"], 2000);
  sample["memory_stats"]["stats"]["cache"] = 9000;
  EXPECT_EQ(normalize_stats(sample, kId, 0)["memoryUsage"], 5000);
}

TEST(StreamStats, FirstSampleOfAStreamHasNoCpuPercent) {
  json sample = json::parse(kCgroupV2);
  sample["precpu_stats"] = {{"cpu_usage", {{"total_usage", 0}}}, {"throttling_data", json::object()}};
  EXPECT_DOUBLE_EQ(normalize_stats(sample, kId, 0)["cpuPercent"].get<double>(), 0.0);
}

TEST(StreamStats, RoundsToHundredths) {
  json sample = json::parse(kCgroupV2);
  sample["cpu_stats"]["cpu_usage"]["total_usage"] = 2000000000 + 1234567;
  EXPECT_DOUBLE_EQ(normalize_stats(sample, kId, 0)["cpuPercent"].get<double>(), 0.12);
}

TEST(StreamStats, EmptySampleOfAStoppedContainer) {
  // What Docker publishes for a container that is not running.
  const json stopped = json::parse(R"({"read":"0001-01-01T00:00:00Z","preread":"0001-01-01T00:00:00Z",
    "pids_stats":{},"blkio_stats":{"io_service_bytes_recursive":null},"num_procs":0,
    "cpu_stats":{"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0},"throttling_data":{}},
    "precpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{}},"memory_stats":{},
    "name":"/gone","id":"cccc"})");
  EXPECT_TRUE(is_empty_stats(stopped));
  const json s = normalize_stats(stopped, kId, 1'700'000'000'000);
  EXPECT_EQ(s["time"], "2023-11-14T22:13:20Z") << "the agent's clock when Docker has none";
  EXPECT_EQ(s["cpuPercent"], 0.0);
  EXPECT_EQ(s["memoryUsage"], 0);
  EXPECT_EQ(s["blockRead"], 0);
}

TEST(StreamStats, HostileTypesCountAsZero) {
  for (const char* text : {R"({})", R"([])", R"("x")", R"(null)",
                           R"({"cpu_stats":"x","precpu_stats":[1],"memory_stats":{"usage":-5,"limit":"big"},
                               "networks":[1,2],
                               "blkio_stats":{"io_service_bytes_recursive":[1,{"op":5},{"op":"read","value":"x"}]},
                               "pids_stats":{"current":1.5e300},"read":12})",
                           R"({"cpu_stats":{"cpu_usage":{"total_usage":10},"system_cpu_usage":10,"online_cpus":-1},
                               "precpu_stats":{"cpu_usage":{"total_usage":20},"system_cpu_usage":5}})"}) {
    const json s = normalize_stats(json::parse(text), kId, 0);
    EXPECT_EQ(s["cpuPercent"], 0.0) << text;
    EXPECT_EQ(s["memoryUsage"], 0) << text;
    EXPECT_EQ(s["memoryLimit"], 0) << text;
    EXPECT_EQ(s["networkRx"], 0) << text;
    EXPECT_EQ(s["blockRead"], 0) << text;
    EXPECT_EQ(s["pids"], 0) << text;
    EXPECT_EQ(s.size(), 11u);
  }
}

}  // namespace
}  // namespace paddock::agent
