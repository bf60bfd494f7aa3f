#include "cli/app.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace paddock::cli {
namespace {

struct Parsed {
  std::optional<int> code;
  std::string out;
  std::string err;
};

Parsed parse(App& app, const std::vector<std::string>& args) {
  std::ostringstream out, err;
  Parsed p;
  p.code = app.parse(args, out, err);
  p.out = out.str();
  p.err = err.str();
  return p;
}

TEST(AppParse, LogsOptions) {
  App app;
  auto p = parse(app, {"logs", "-f", "--tail", "all", "--since", "10m", "-t", "--host", "h1", "web", "-o", "json"});
  ASSERT_FALSE(p.code) << p.err;
  EXPECT_EQ(app.command(), "logs");
  EXPECT_TRUE(app.logs.follow);
  EXPECT_TRUE(app.logs.timestamps);
  EXPECT_EQ(app.logs.tail, "all");
  EXPECT_EQ(app.logs.since, "10m");
  EXPECT_EQ(app.logs.host, "h1");
  EXPECT_EQ(app.logs.container, "web");
  EXPECT_EQ(app.global.output, "json");
}

TEST(AppParse, ExecTakesEverythingAfterTheContainer) {
  App app;
  auto p = parse(app, {"exec", "-it", "web", "--", "sh", "-c", "echo hi; exit 3"});
  ASSERT_FALSE(p.code) << p.err;
  EXPECT_EQ(app.command(), "exec");
  EXPECT_TRUE(app.exec.interactive);
  EXPECT_TRUE(app.exec.tty);
  EXPECT_EQ(app.exec.container, "web");
  EXPECT_EQ(app.exec.command, (std::vector<std::string>{"sh", "-c", "echo hi; exit 3"}));

  App bare;
  auto q = parse(bare, {"exec", "web", "ls", "-la"});
  ASSERT_FALSE(q.code) << q.err;
  EXPECT_FALSE(bare.exec.interactive);
  EXPECT_EQ(bare.exec.command, (std::vector<std::string>{"ls", "-la"}));
}

TEST(AppParse, ExecWithoutCommandIsAUsageError) {
  App app;
  auto p = parse(app, {"exec", "-i", "web"});
  ASSERT_TRUE(p.code);
  EXPECT_EQ(*p.code, kExitUsage);
  EXPECT_NE(p.err.find("exec needs a command"), std::string::npos) << p.err;
}

TEST(AppParse, NestedCommandsAndGlobalOptionsAnywhere) {
  App rm;
  auto p = parse(rm, {"--url", "https://x", "hosts", "rm", "web-01", "--project", "1p3"});
  ASSERT_FALSE(p.code) << p.err;
  EXPECT_EQ(rm.command(), "hosts rm");
  EXPECT_EQ(rm.host_ref, "web-01");
  EXPECT_EQ(rm.global.url, "https://x");
  EXPECT_EQ(rm.global.project, "1p3");

  App list;
  ASSERT_FALSE(parse(list, {"hosts"}).code);
  EXPECT_EQ(list.command(), "hosts");

  App create;
  auto c = parse(create, {"tokens", "create", "--ttl", "3600", "--max-uses", "2", "--wait"});
  ASSERT_FALSE(c.code) << c.err;
  EXPECT_EQ(create.command(), "tokens create");
  EXPECT_EQ(create.token.ttl, 3600);
  EXPECT_EQ(create.token.max_uses, 2);
  EXPECT_TRUE(create.token.wait);

  App stats;
  ASSERT_FALSE(parse(stats, {"stats", "--no-stream", "web", "db"}).code);
  EXPECT_TRUE(stats.stats.no_stream);
  EXPECT_EQ(stats.stats.containers, (std::vector<std::string>{"web", "db"}));
}

TEST(AppParse, UsageErrorsExitTwo) {
  for (std::vector<std::string> args : {std::vector<std::string>{"nope"},
                                        {"hosts", "rm"},
                                        {"-o", "yaml", "hosts"},
                                        {"tokens"},
                                        {"tokens", "create", "--max-uses", "0"},
                                        {"logs"},
                                        {}}) {
    App app;
    auto p = parse(app, args);
    ASSERT_TRUE(p.code) << "args: " << ::testing::PrintToString(args);
    EXPECT_EQ(*p.code, kExitUsage) << ::testing::PrintToString(args) << "\n" << p.err;
    EXPECT_FALSE(p.err.empty());
  }
}

TEST(AppParse, HelpEverywhere) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"},
                                        {"hosts", "--help"},
                                        {"hosts", "rm", "--help"},
                                        {"containers", "--help"},
                                        {"tokens", "create", "--help"},
                                        {"tokens", "ls", "--help"},
                                        {"logs", "--help"},
                                        {"exec", "--help"},
                                        {"stats", "--help"}}) {
    App app;
    auto p = parse(app, args);
    ASSERT_TRUE(p.code);
    EXPECT_EQ(*p.code, 0) << ::testing::PrintToString(args);
    EXPECT_NE(p.out.find("--url"), std::string::npos) << p.out;  // the global options show too
  }
}

TEST(LogTimes, Forms) {
  EXPECT_EQ(*parse_log_time("1700000000", 0), 1700000000);
  EXPECT_EQ(*parse_log_time("2026-11-22T07:00:00Z", 0), "2026-11-22T07:00:00Z");
  EXPECT_EQ(*parse_log_time("10m", 1000), 400);
  EXPECT_EQ(*parse_log_time("1h30m", 10000), 10000 - 5400);
  EXPECT_FALSE(parse_log_time("yesterday", 0));
  EXPECT_EQ(*parse_log_time("10", 0), 10);
  EXPECT_FALSE(parse_log_time("5x", 0));
  EXPECT_EQ(*parse_tail("all"), "all");
  EXPECT_EQ(*parse_tail("20"), 20);
  EXPECT_FALSE(parse_tail("-1"));
  EXPECT_FALSE(parse_tail("many"));
}

}  // namespace
}  // namespace paddock::cli
