#include "agent/options.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace paddock::agent {
namespace {

using namespace std::chrono_literals;

// Every variable the agent reads, cleared for each test and restored after.
class OptionsTest : public ::testing::Test {
 protected:
  static constexpr const char* kVars[] = {"PADDOCK_URL",       "PADDOCK_STATE_DIR", "PADDOCK_CA_CHECKSUM",
                                          "PADDOCK_HOST_LABELS", "PADDOCK_AGENT_IP", "PADDOCK_HOSTNAME",
                                          "PADDOCK_REPORT_INTERVAL", "PADDOCK_LOG_LEVEL", "DOCKER_HOST",
                                          "PADDOCK_BOOTSTRAP"};
  void SetUp() override {
    for (const char* v : kVars) {
      if (const char* old = std::getenv(v)) saved_.emplace_back(v, old);
      ::unsetenv(v);
    }
  }
  void TearDown() override {
    for (const char* v : kVars) ::unsetenv(v);
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }

  // Parses argv (without the program name); fails the test on an exit code.
  Options parse(std::vector<std::string> args) {
    auto result = run(std::move(args));
    EXPECT_TRUE(std::holds_alternative<Options>(result)) << err_.str();
    return std::holds_alternative<Options>(result) ? std::get<Options>(result) : Options{};
  }
  std::variant<Options, int> run(std::vector<std::string> args) {
    args.insert(args.begin(), "paddock-agent");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    out_.str("");
    err_.str("");
    return parse_options(static_cast<int>(argv.size()), argv.data(), out_, err_);
  }
  int exit_code(std::vector<std::string> args) {
    auto result = run(std::move(args));
    return std::holds_alternative<int>(result) ? std::get<int>(result) : -1;
  }

  std::ostringstream out_, err_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

const std::string kChecksum(64, 'a');

TEST_F(OptionsTest, DefaultsMatchTheContract) {
  auto o = parse({});
  EXPECT_EQ(o.registration_url, "");
  EXPECT_EQ(o.state_dir, "/var/lib/paddock");
  EXPECT_EQ(o.ca_checksum, "");
  EXPECT_EQ(o.docker_host, "");
  EXPECT_TRUE(o.labels.empty());
  EXPECT_EQ(o.agent_ip, "");
  EXPECT_EQ(o.hostname, "");
  EXPECT_EQ(o.report_interval, 30s);
  EXPECT_EQ(o.log_level, "info");
}

TEST_F(OptionsTest, EveryFlag) {
  auto o = parse({"--state-dir", "/tmp/s", "--ca-checksum", std::string(64, 'A'), "--label", "a=1", "--label",
                  "b=x=y", "--agent-ip", "10.0.0.5", "--hostname", "web-01", "--report-interval", "5m",
                  "--log-level", "debug", "https://server:8443/v1/scripts/tok"});
  EXPECT_EQ(o.registration_url, "https://server:8443/v1/scripts/tok");
  EXPECT_EQ(o.state_dir, "/tmp/s");
  EXPECT_EQ(o.ca_checksum, std::string(64, 'a')) << "the checksum is compared in lowercase";
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"a", "1"}, {"b", "x=y"}}));
  EXPECT_EQ(o.agent_ip, "10.0.0.5");
  EXPECT_EQ(o.hostname, "web-01");
  EXPECT_EQ(o.report_interval, 300s);
  EXPECT_EQ(o.log_level, "debug");
}

TEST_F(OptionsTest, LabelBeforeTheUrlDoesNotSwallowIt) {
  auto o = parse({"--label", "a=1", "https://s/v1/scripts/t"});
  EXPECT_EQ(o.registration_url, "https://s/v1/scripts/t");
  EXPECT_EQ(o.labels.size(), 1u);
}

TEST_F(OptionsTest, EveryEnvironmentVariable) {
  ::setenv("PADDOCK_URL", "https://s/v1/scripts/t", 1);
  ::setenv("PADDOCK_STATE_DIR", "/tmp/e", 1);
  ::setenv("PADDOCK_CA_CHECKSUM", kChecksum.c_str(), 1);
  ::setenv("PADDOCK_HOST_LABELS", "k=v, k2=v2,,", 1);
  ::setenv("PADDOCK_AGENT_IP", "::1", 1);
  ::setenv("PADDOCK_HOSTNAME", "h", 1);
  ::setenv("PADDOCK_REPORT_INTERVAL", "500ms", 1);
  ::setenv("PADDOCK_LOG_LEVEL", "warn", 1);
  ::setenv("DOCKER_HOST", "unix:///tmp/d.sock", 1);
  auto o = parse({});
  EXPECT_EQ(o.registration_url, "https://s/v1/scripts/t");
  EXPECT_EQ(o.state_dir, "/tmp/e");
  EXPECT_EQ(o.ca_checksum, kChecksum);
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"k", "v"}, {"k2", "v2"}}));
  EXPECT_EQ(o.agent_ip, "::1");
  EXPECT_EQ(o.hostname, "h");
  EXPECT_EQ(o.report_interval, 500ms);
  EXPECT_EQ(o.log_level, "warn");
  EXPECT_EQ(o.docker_host, "unix:///tmp/d.sock");
}

TEST_F(OptionsTest, FlagsWinOverVariables) {
  ::setenv("PADDOCK_URL", "https://env/v1/scripts/t", 1);
  ::setenv("PADDOCK_STATE_DIR", "/tmp/env", 1);
  ::setenv("PADDOCK_HOST_LABELS", "env=1", 1);
  ::setenv("PADDOCK_REPORT_INTERVAL", "10s", 1);
  ::setenv("PADDOCK_HOSTNAME", "env", 1);
  auto o = parse({"--state-dir", "/tmp/flag", "--label", "flag=1", "--report-interval", "2s", "--hostname", "flag",
                  "https://flag/v1/scripts/t"});
  EXPECT_EQ(o.registration_url, "https://flag/v1/scripts/t");
  EXPECT_EQ(o.state_dir, "/tmp/flag");
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"flag", "1"}}));
  EXPECT_EQ(o.report_interval, 2s);
  EXPECT_EQ(o.hostname, "flag");
}

TEST_F(OptionsTest, HelpAndVersionExitZero) {
  EXPECT_EQ(exit_code({"--help"}), 0);
  EXPECT_NE(out_.str().find("--report-interval"), std::string::npos);
  EXPECT_NE(out_.str().find("DOCKER_HOST"), std::string::npos);
  EXPECT_EQ(exit_code({"--version"}), 0);
  EXPECT_NE(out_.str().find("paddock-agent 0."), std::string::npos) << out_.str();
}

TEST_F(OptionsTest, BadUsageIsExitTwoWithOneLine) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--no-such-flag"},
           {"--ca-checksum", "abc"},
           {"--label", "novalue"},
           {"--label", "bad key=1"},
           {"--agent-ip", "not-an-ip"},
           {"--report-interval", "soon"},
           {"--report-interval", "0s"},
           {"--log-level", "chatty"},
           {"ftp://server/v1/scripts/t"},
           {"--state-dir", ""},
       }) {
    EXPECT_EQ(exit_code(args), 2) << args[0];
    const std::string e = err_.str();
    EXPECT_EQ(e.rfind("paddock-agent: ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), e.size() - 1) << "one line: " << e;
  }
}

TEST(ParseInterval, Units) {
  EXPECT_EQ(*parse_interval("30s"), 30s);
  EXPECT_EQ(*parse_interval("30"), 30s);
  EXPECT_EQ(*parse_interval("5m"), 300s);
  EXPECT_EQ(*parse_interval("500ms"), 500ms);
  EXPECT_EQ(*parse_interval("1h"), 3600s);
  EXPECT_EQ(*parse_interval("100ms"), 100ms);
  for (const char* bad : {"", "s", "-1s", "1.5s", "5 m", "99ms", "25h", "1d", "9999999999", "1sm"}) {
    EXPECT_FALSE(parse_interval(bad).ok()) << bad;
  }
}

TEST(Labels, ListParsing) {
  std::map<std::string, std::string> labels;
  ASSERT_TRUE(add_labels_list(labels, "a=1,b=,c=x y").ok());
  EXPECT_EQ(labels, (std::map<std::string, std::string>{{"a", "1"}, {"b", ""}, {"c", "x y"}}));
  EXPECT_FALSE(add_labels_list(labels, "a=1,=2").ok());
  std::string long_key(129, 'k');
  long_key += "=v";
  EXPECT_FALSE(add_label(labels, long_key).ok());
  std::string long_value = "k=";
  long_value.append(1025, 'v');
  EXPECT_FALSE(add_label(labels, long_value).ok());
  EXPECT_FALSE(add_label(labels, "k=a\nb").ok());
}

TEST_F(OptionsTest, BootstrapByFlagOrEnvironmentLogsOnlyWarningsUnlessAsked) {
  auto plain = parse({});
  EXPECT_FALSE(plain.bootstrap);
  EXPECT_EQ(effective_log_level(plain), "info");

  auto flagged = parse({"--bootstrap", "https://server:8443/v1/scripts/tok"});
  EXPECT_TRUE(flagged.bootstrap);
  EXPECT_EQ(effective_log_level(flagged), "warn");

  ::setenv("PADDOCK_BOOTSTRAP", "true", 1);
  ::setenv("PADDOCK_LOG_LEVEL", "debug", 1);
  auto from_env = parse({});
  EXPECT_TRUE(from_env.bootstrap);
  EXPECT_EQ(effective_log_level(from_env), "debug");

  ::setenv("PADDOCK_BOOTSTRAP", "false", 1);
  EXPECT_FALSE(parse({}).bootstrap);
}

}  // namespace
}  // namespace paddock::agent
