#include "agent/host_facts.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace paddock::agent {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pdk-facts-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_all(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

constexpr const char* kProcStat =
    "cpu  4705 150 1120 16250 520 0 30 0 0 0\n"
    "cpu0 2000 50 500 8000 200 0 20 0 0 0\n"
    "intr 1234 0 0\n"
    "ctxt 5678\n";

TEST(ProcStat, SumsTheAggregateLine) {
  auto t = parse_proc_stat(kProcStat);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->idle, 16250u + 520u);
  EXPECT_EQ(t->total, 4705u + 150u + 1120u + 16250u + 520u + 0u + 30u + 0u);
}

TEST(ProcStat, OldKernelsWithFewerColumns) {
  auto t = parse_proc_stat("cpu 10 0 10 80\n");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->idle, 80u);
  EXPECT_EQ(t->total, 100u);
}

TEST(ProcStat, Garbage) {
  EXPECT_FALSE(parse_proc_stat(""));
  EXPECT_FALSE(parse_proc_stat("cpu0 1 2 3 4\n"));
  EXPECT_FALSE(parse_proc_stat("cpu  a b c d\n"));
  EXPECT_FALSE(parse_proc_stat("cpu  1 2\n"));
  EXPECT_FALSE(parse_proc_stat("cpu  1 2 3 99999999999999999999999\n"));
}

TEST(CpuPercent, DeltaBetweenSamples) {
  EXPECT_DOUBLE_EQ(cpu_percent({100, 200}, {150, 300}), 50.0);
  EXPECT_DOUBLE_EQ(cpu_percent({100, 200}, {200, 300}), 0.0);
  EXPECT_DOUBLE_EQ(cpu_percent({100, 200}, {100, 300}), 100.0);
  EXPECT_DOUBLE_EQ(cpu_percent({100, 200}, {100, 200}), 0.0) << "no time passed";
  EXPECT_DOUBLE_EQ(cpu_percent({100, 200}, {50, 100}), 0.0) << "counters went backwards";
  EXPECT_DOUBLE_EQ(cpu_percent({0, 0}, {1, 3}), 66.7) << "one decimal";
}

TEST(Meminfo, UsedIsTotalMinusAvailableInBytes) {
  auto m = parse_meminfo(
      "MemTotal:        8000000 kB\n"
      "MemFree:          500000 kB\n"
      "MemAvailable:    6000000 kB\n"
      "Buffers:          100000 kB\n"
      "Cached:          2000000 kB\n"
      "HugePages_Total:       0\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->total, 8000000ull * 1024);
  EXPECT_EQ(m->used, 2000000ull * 1024);
}

TEST(Meminfo, WithoutMemAvailable) {
  auto m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->used, 600ull * 1024);
}

TEST(Meminfo, Garbage) {
  EXPECT_FALSE(parse_meminfo(""));
  EXPECT_FALSE(parse_meminfo("MemFree: 10 kB\n"));
  EXPECT_FALSE(parse_meminfo("MemTotal: lots\n"));
  auto m = parse_meminfo("MemTotal: 100 kB\nMemAvailable: 200 kB\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->used, 0u) << "never negative";
}

TEST(OsRelease, PrettyName) {
  EXPECT_EQ(parse_os_release("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"),
            "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(parse_os_release("PRETTY_NAME='Alpine Linux v3.19'\n"), "Alpine Linux v3.19");
  EXPECT_EQ(parse_os_release("PRETTY_NAME=Plain\n"), "Plain");
  EXPECT_EQ(parse_os_release("PRETTY_NAME=\"say \\\"hi\\\"\"\n"), "say \"hi\"");
  EXPECT_EQ(parse_os_release("# comment\nNAME=Foo\nVERSION=\"1.2\"\n"), "Foo 1.2");
  EXPECT_EQ(parse_os_release(""), "");
}

TEST(MachineId, FromFileTrimmed) {
  TempDir dir;
  write_all(dir.path / "id", "  abc123\n\nrest\n");
  EXPECT_EQ(read_machine_id(dir.path / "id"), "abc123");
  write_all(dir.path / "empty", "\n");
  EXPECT_FALSE(read_machine_id(dir.path / "empty"));
  write_all(dir.path / "binary", std::string("a\x01" "b", 3));
  EXPECT_FALSE(read_machine_id(dir.path / "binary"));
  EXPECT_FALSE(read_machine_id(dir.path / "missing"));
}

TEST(MachineId, EnvFileIsCreatedOnceAndKept) {
  TempDir dir;
  const auto file = dir.path / "machine";
  ::setenv("PADDOCK_MACHINE_ID_FILE", file.c_str(), 1);
  auto first = machine_id(dir.path / "state");
  auto second = machine_id(dir.path / "state");
  ::unsetenv("PADDOCK_MACHINE_ID_FILE");
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(first->size(), 32u);
  EXPECT_EQ(read_machine_id(file), *first);
}

TEST(DockerFacts, FromVersionAndInfo) {
  auto d = docker_facts_from({{"Version", "24.0.7"}, {"ApiVersion", "1.43"}},
                             {{"Name", "docker-host"}, {"OperatingSystem", "Debian GNU/Linux 12"},
                              {"DockerRootDir", "/var/lib/docker"}});
  EXPECT_EQ(d.version, "24.0.7");
  EXPECT_EQ(d.api_version, "1.43");
  EXPECT_EQ(d.name, "docker-host");
  EXPECT_EQ(d.os, "Debian GNU/Linux 12");
  EXPECT_EQ(d.root_dir, "/var/lib/docker");
  auto empty = docker_facts_from(nullptr, {{"Name", 5}});
  EXPECT_EQ(empty.name, "") << "wrong types are ignored";
}

TEST(HostJson, FieldsOfTheContract) {
  HostFacts f;
  f.name = "web-01";
  f.os = "Debian";
  f.kernel = "6.1.0";
  f.arch = "x86_64";
  f.cpu_count = 4;
  f.cpu_percent = 12.5;
  f.memory_total = 100;
  f.memory_used = 50;
  f.disk_total = 1000;
  f.disk_used = 10;
  f.ip_addresses = {"10.0.0.5"};
  f.agent_ip = "10.0.0.5";
  f.labels = {{"zone", "a"}};
  DockerFacts d;
  d.reachable = true;
  d.version = "24.0.7";
  d.api_version = "1.43";
  auto j = host_to_json(f, d);
  for (const char* key : {"name", "agentVersion", "dockerVersion", "dockerApiVersion", "dockerState", "os", "kernel",
                          "arch", "cpuCount", "cpuPercent", "memoryTotal", "memoryUsed", "diskTotal", "diskUsed",
                          "labels", "agentIp", "ipAddresses"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["dockerState"], "ok");
  EXPECT_EQ(j["name"], "web-01");
  EXPECT_EQ(j["hostname"], "web-01");
  EXPECT_EQ(j["labels"]["zone"], "a");
  d.reachable = false;
  EXPECT_EQ(host_to_json(f, d)["dockerState"], "unreachable");
}

TEST(Collector, ReadsSampleProc) {
  TempDir dir;
  write_all(dir.path / "stat", "cpu  100 0 100 800 0 0 0 0\n");
  write_all(dir.path / "meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
  write_all(dir.path / "os-release", "PRETTY_NAME=\"Test OS 1\"\n");
  HostFactsCollector::Config config;
  config.proc_dir = dir.path;
  config.os_release = dir.path / "os-release";
  config.hostname = "given";
  config.labels = {{"a", "b"}};
  HostFactsCollector collector(config);
  write_all(dir.path / "stat", "cpu  150 0 150 900 0 0 0 0\n");
  auto f = collector.collect(DockerFacts{});
  EXPECT_EQ(f.name, "given");
  EXPECT_EQ(f.os, "Test OS 1");
  EXPECT_DOUBLE_EQ(f.cpu_percent, 50.0) << "delta since the collector started";
  write_all(dir.path / "stat", "cpu  151 0 150 910 0 0 0 0\n");
  EXPECT_DOUBLE_EQ(collector.collect(DockerFacts{}).cpu_percent, 50.0) << "11 ticks say nothing: the last figure";
  write_all(dir.path / "stat", "cpu  150 0 150 1010 0 0 0 0\n");
  EXPECT_DOUBLE_EQ(collector.collect(DockerFacts{}).cpu_percent, 0.0) << "idle since the last real sample";
  EXPECT_EQ(f.memory_total, 1024000u);
  EXPECT_EQ(f.memory_used, 750u * 1024);
  EXPECT_GT(f.cpu_count, 0);
  EXPECT_GT(f.disk_total, 0u);
  EXPECT_FALSE(f.kernel.empty());
  EXPECT_EQ(f.labels.at("a"), "b");
  // Docker's name and OS win over the machine's when no --hostname is given.
  config.hostname.clear();
  HostFactsCollector plain(config);
  DockerFacts d;
  d.name = "docker-name";
  d.os = "Docker OS";
  auto g = plain.collect(d);
  EXPECT_EQ(g.name, "docker-name");
  EXPECT_EQ(g.os, "Docker OS");
}

TEST(InterfaceAddresses, NoLoopback) {
  for (const auto& a : interface_addresses()) {
    EXPECT_NE(a, "127.0.0.1");
    EXPECT_NE(a, "::1");
  }
}

}  // namespace
}  // namespace paddock::agent
