#include "cli/config.hpp"

#include <gtest/gtest.h>

#include <map>

namespace paddock::cli {
namespace {

Getenv env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const std::string kSum = std::string(64, 'a');

TEST(Config, ComesFromTheEnvironment) {
  auto c = load_config({}, env({{"PADDOCK_URL", "https://p.example:8443/v1/"},
                                {"PADDOCK_ACCESS_KEY", "ak"},
                                {"PADDOCK_SECRET_KEY", "sk"},
                                {"PADDOCK_CA_CHECKSUM", std::string(64, 'A')}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->url, "https://p.example:8443");
  EXPECT_EQ(c->access_key, "ak");
  EXPECT_EQ(c->secret_key, "sk");
  EXPECT_EQ(c->ca_checksum, kSum);  // lowercased
  EXPECT_EQ(c->output, OutputFormat::table);
}

TEST(Config, FlagsWinOverTheEnvironment) {
  GlobalFlags f;
  f.url = "https://flag.example";
  f.access_key = "flag-ak";
  f.output = "json";
  auto c = load_config(f, env({{"PADDOCK_URL", "https://env.example"},
                               {"PADDOCK_ACCESS_KEY", "env-ak"},
                               {"PADDOCK_SECRET_KEY", "env-sk"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->url, "https://flag.example");
  EXPECT_EQ(c->access_key, "flag-ak");
  EXPECT_EQ(c->secret_key, "env-sk");
  EXPECT_EQ(c->output, OutputFormat::json);
}

TEST(Config, MissingPiecesSayWhatToSet) {
  auto no_url = load_config({}, env({}));
  ASSERT_FALSE(no_url);
  EXPECT_EQ(no_url.error().message, "no server URL: set PADDOCK_URL or pass --url");
  auto no_key = load_config({}, env({{"PADDOCK_URL", "https://p"}}));
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error().message, "no access key: set PADDOCK_ACCESS_KEY or pass --access-key");
}

TEST(Config, RefusesBadChecksumsAndUrls) {
  auto base = env({{"PADDOCK_URL", "https://p"}, {"PADDOCK_ACCESS_KEY", "a"}, {"PADDOCK_SECRET_KEY", "s"}});
  GlobalFlags f;
  f.ca_checksum = "abc";
  EXPECT_FALSE(load_config(f, base));
  f.ca_checksum = std::string(64, 'g');
  EXPECT_FALSE(load_config(f, base));
  GlobalFlags u;
  u.url = "ftp://p";
  EXPECT_FALSE(load_config(u, base));
  u.url = "https://user:pw@p";
  EXPECT_FALSE(load_config(u, base));
  GlobalFlags both;
  both.ca_file = "/tmp/ca.pem";
  both.ca_checksum = kSum;
  auto c = load_config(both, base);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("--ca-file and --ca-checksum"), std::string::npos);
}

TEST(Config, CaFileFlagOverridesAChecksumFromTheEnvironment) {
  GlobalFlags f;
  f.ca_file = "/tmp/ca.pem";
  auto c = load_config(f, env({{"PADDOCK_URL", "https://p"},
                               {"PADDOCK_ACCESS_KEY", "a"},
                               {"PADDOCK_SECRET_KEY", "s"},
                               {"PADDOCK_CA_CHECKSUM", kSum}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->ca_file, "/tmp/ca.pem");
  EXPECT_EQ(c->ca_checksum, "");
}

TEST(Config, NormalizesServerUrls) {
  EXPECT_EQ(*normalize_server_url("https://h:8443"), "https://h:8443");
  EXPECT_EQ(*normalize_server_url("https://h:8443/"), "https://h:8443");
  EXPECT_EQ(*normalize_server_url("https://h:443/v1"), "https://h");
  EXPECT_EQ(*normalize_server_url("http://[::1]:8080/paddock/v1/"), "http://[::1]:8080/paddock");
  EXPECT_FALSE(normalize_server_url("h:8443"));
  EXPECT_FALSE(normalize_server_url("https://h/?x=1"));
}

}  // namespace
}  // namespace paddock::cli
