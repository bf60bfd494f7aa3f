#include "agent/messages.hpp"

#include <gtest/gtest.h>

namespace paddock::agent {
namespace {

using nlohmann::json;

const std::string kCid(64, 'a');
const std::string kImg = "sha256:" + std::string(64, 'b');

json docker_container() {
  return json::parse(R"({
    "Id": ")" + kCid + R"(",
    "Names": ["/web"],
    "Image": "nginx:1.25",
    "ImageID": "sha256:abc",
    "Command": "nginx -g 'daemon off;'",
    "Created": 1700000000,
    "State": "running",
    "Status": "Up 5 minutes",
    "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
              {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"},
              {"PrivatePort": 443, "Type": "tcp"}],
    "Labels": {"com.example.app": "web", "bad": 5}
  })");
}

TEST(ContainerFromDocker, MapsTheListItem) {
  auto c = container_from_docker(docker_container());
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["dockerId"], kCid);
  EXPECT_EQ((*c)["name"], "web");
  EXPECT_EQ((*c)["image"], "nginx:1.25");
  EXPECT_EQ((*c)["command"], "nginx -g 'daemon off;'");
  EXPECT_EQ((*c)["state"], "running");
  EXPECT_EQ((*c)["status"], "Up 5 minutes");
  EXPECT_EQ((*c)["created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ((*c)["labels"], (json{{"com.example.app", "web"}}));
  EXPECT_EQ((*c)["ports"], (json{"0.0.0.0:8080->80/tcp", "443/tcp", "[::]:8080->80/tcp"}));
}

TEST(ContainerFromDocker, UntrustedInput) {
  EXPECT_FALSE(container_from_docker(json::array()));
  EXPECT_FALSE(container_from_docker(json::object()));
  EXPECT_FALSE(container_from_docker({{"Id", "short"}}));
  EXPECT_FALSE(container_from_docker({{"Id", std::string(64, 'A')}})) << "the server wants lowercase hex";
  auto minimal = container_from_docker({{"Id", kCid}});
  ASSERT_TRUE(minimal);
  EXPECT_EQ((*minimal)["state"], "dead") << "an unknown state would be refused by the server";
  EXPECT_EQ((*minimal)["created"], nullptr);
  auto weird = docker_container();
  weird["Names"] = {5};
  weird["Command"] = std::string("sh -c \x01\x7f") + "\xff" + "x";
  weird["Created"] = -5;
  weird["Ports"] = "nope";
  auto c = container_from_docker(weird);
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["name"], "");
  EXPECT_EQ((*c)["command"], "sh -c   \xEF\xBF\xBDx") << "control characters and bad UTF-8 are cleaned";
  EXPECT_EQ((*c)["created"], nullptr);
  EXPECT_EQ((*c)["ports"], json::array());
  auto long_command = docker_container();
  long_command["Command"] = std::string(10000, 'x');
  EXPECT_EQ((*container_from_docker(long_command))["command"].get<std::string>().size(), 4096u);
}

TEST(RedactRegistrationSecrets, HidesTokensAndPasswords) {
  EXPECT_EQ(redact_registration_secrets("paddock-agent https://s:8443/v1/scripts/AbC123xyz"),
            "paddock-agent https://s:8443/v1/scripts/\u2026");
  EXPECT_EQ(redact_registration_secrets("ftp://user:pw@s/v1/scripts/t?x=1 --flag"),
            "ftp://\u2026@s/v1/scripts/\u2026 --flag");
  EXPECT_EQ(redact_registration_secrets("sh -c 'curl https://s/v1/scripts/tok'"), "sh -c 'curl https://s/v1/scripts/\u2026'");
  EXPECT_EQ(redact_registration_secrets("sleep 300"), "sleep 300");
  EXPECT_EQ(redact_registration_secrets("https://s/a@b"), "https://s/a@b") << "an @ in the path is no userinfo";
  auto bootstrap = docker_container();
  bootstrap["Command"] = "/usr/bin/paddock-agent https://s/v1/scripts/SECRET";
  EXPECT_EQ((*container_from_docker(bootstrap))["command"], "/usr/bin/paddock-agent https://s/v1/scripts/\u2026");
}

TEST(CleanText, KeepsValidUtf8AndCutsOnBoundaries) {
  EXPECT_EQ(clean_text("héllo\tworld\n", 100), "héllo\tworld\n");
  EXPECT_EQ(clean_text("aé", 2), "a") << "never half a character";
  EXPECT_EQ(clean_text("\xc0\xaf", 100), "\xEF\xBF\xBD\xEF\xBF\xBD") << "overlong";
  EXPECT_EQ(clean_text("\xed\xa0\x80", 100), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "surrogate";
  EXPECT_EQ(clean_text("\xc2\x85", 100), " ") << "C1 control";
  EXPECT_EQ(clean_text("😀", 100), "😀");
}

TEST(CleanLabels, DropsWhatTheServerWouldRefuse) {
  json in = {{"ok", "v"}, {"num", 1}, {"ctl\x01", "v"}, {std::string(300, 'k'), "v"}, {"long", std::string(5000, 'v')}};
  auto out = clean_labels(in);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(out["ok"], "v");
  EXPECT_EQ(out["long"].get<std::string>().size(), 4096u);
  json many = json::object();
  for (int i = 0; i < 300; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_EQ(clean_labels(many).size(), 256u);
}

TEST(ImageFromDocker, MapsTheListItem) {
  auto i = image_from_docker({{"Id", kImg},
                              {"RepoTags", {"nginx:1.25", "<none>:<none>", "nginx:latest"}},
                              {"Size", 187654321},
                              {"Created", 1700000000}});
  ASSERT_TRUE(i);
  EXPECT_EQ((*i)["dockerId"], kImg);
  EXPECT_EQ((*i)["tags"], (json{"nginx:1.25", "nginx:latest"}));
  EXPECT_EQ((*i)["size"], 187654321);
  EXPECT_EQ((*i)["created"], "2023-11-14T22:13:20Z");
  auto untagged = image_from_docker({{"Id", kImg}, {"RepoTags", nullptr}, {"Size", -1}});
  ASSERT_TRUE(untagged);
  EXPECT_EQ((*untagged)["tags"], json::array());
  EXPECT_EQ((*untagged)["size"], 0);
  EXPECT_FALSE(image_from_docker({{"Id", "sha256:zz"}}));
}

TEST(ContainerChanged, IgnoresTheStatusText) {
  auto a = *container_from_docker(docker_container());
  auto b = a;
  b["status"] = "Up 6 minutes";
  EXPECT_FALSE(container_changed(a, b));
  b["state"] = "exited";
  EXPECT_TRUE(container_changed(a, b));
  b = a;
  b["name"] = "renamed";
  EXPECT_TRUE(container_changed(a, b));
}

TEST(Messages, Shapes) {
  json host = {{"name", "h"}};
  EXPECT_EQ(snapshot_message(host, json::array(), json::array()),
            (json{{"type", "snapshot"}, {"host", host}, {"containers", json::array()}, {"images", json::array()}}));
  EXPECT_EQ(host_message(host), (json{{"type", "host"}, {"host", host}}));
  EXPECT_EQ(container_message({{"dockerId", kCid}})["type"], "container");
  EXPECT_EQ(container_removed_message(kCid), (json{{"type", "containerRemoved"}, {"dockerId", kCid}}));
  EXPECT_EQ(image_message({{"dockerId", kImg}})["image"]["dockerId"], kImg);
  EXPECT_EQ(image_removed_message(kImg), (json{{"type", "imageRemoved"}, {"dockerId", kImg}}));
}

TEST(Messages, EncodeReplacesInvalidUtf8) {
  const auto text = encode_message({{"s", std::string("a\xff")}});
  EXPECT_EQ(text, "{\"s\":\"a\xEF\xBF\xBD\"}");
}

TEST(Messages, HugeSnapshotShedsContainerLabelsToFit) {
  json containers = json::array();
  json labels = json::object();
  for (int i = 0; i < 200; ++i) labels["label" + std::to_string(i)] = std::string(100, 'v');
  for (int i = 0; i < 300; ++i) {
    auto c = *container_from_docker(docker_container());
    c["labels"] = labels;
    containers.push_back(c);
  }
  const auto parts = encode_snapshot({{"name", "h"}}, containers, json::array());
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_LE(parts[0].size(), kMaxMessageBytes);
  auto parsed = json::parse(parts[0]);
  EXPECT_EQ(parsed["type"], "snapshot");
  EXPECT_EQ(parsed["containers"].size(), 300u);
  EXPECT_EQ(parsed["containers"][0]["labels"], json::object());
}

TEST(Messages, SnapshotTooLargeEvenWithoutLabelsGoesOutPieceByPiece) {
  json containers = json::array();
  for (int i = 0; i < 1200; ++i) {
    auto c = *container_from_docker(docker_container());
    c["dockerId"] = std::string(60, 'a') + std::to_string(1000 + i);
    c["command"] = std::string(4000, 'c');
    c["labels"] = json{{"big", std::string(2000, 'v')}};
    containers.push_back(c);
  }
  json images = json::array({json{{"dockerId", std::string(64, 'f')}}});
  const auto parts = encode_snapshot({{"name", "h"}}, containers, images);
  ASSERT_EQ(parts.size(), 1u + 1200u + 1u);
  EXPECT_EQ(json::parse(parts[0]), (json{{"type", "host"}, {"host", {{"name", "h"}}}}));
  for (std::size_t i = 1; i <= 1200; ++i) {
    EXPECT_LE(parts[i].size(), kMaxMessageBytes);
    auto m = json::parse(parts[i]);
    ASSERT_EQ(m["type"], "container");
    EXPECT_EQ(m["container"]["dockerId"], containers[i - 1]["dockerId"]);
    EXPECT_EQ(m["container"]["labels"], containers[i - 1]["labels"]);  // whole again: one fits
  }
  EXPECT_EQ(json::parse(parts.back()), (json{{"type", "image"}, {"image", images[0]}}));
}

TEST(ServerMessages, Welcome) {
  auto m = parse_server_message(R"({"type":"welcome","hostId":"1h5","jwks":{"keys":[]}})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->type, ServerMessage::Type::welcome);
  EXPECT_EQ(m->host_id, "1h5");
  EXPECT_EQ(m->jwks, (json{{"keys", json::array()}}));
}

TEST(ServerMessages, DeepNestingIsRefusedUnparsed) {
  const std::string deep = R"({"type":"welcome","jwks":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto m = parse_server_message(deep);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message, "nests too deep");
}

TEST(ServerMessages, OpenAndUnknown) {
  auto open = parse_server_message(R"({"type":"open","token":"a.b.c"})");
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(open->type, ServerMessage::Type::open);
  EXPECT_EQ(open->token, "a.b.c");
  auto other = parse_server_message(R"({"type":"future","x":1})");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->type, ServerMessage::Type::other);
  EXPECT_EQ(other->type_name, "future");
}

TEST(ServerMessages, Malformed) {
  for (const char* bad : {"", "nope", "[]", "{}", R"({"type":5})", R"({"type":"open"})",
                          R"({"type":"welcome","jwks":"x"})"}) {
    EXPECT_FALSE(parse_server_message(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace paddock::agent
