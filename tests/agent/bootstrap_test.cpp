#include "agent/bootstrap.hpp"

#include <gtest/gtest.h>

#include <string>

namespace paddock::agent {
namespace {

using json = nlohmann::json;

const std::string kId = "3f1c0a9e8b7d6c5b4a3928170615f4e3d2c1b0a9f8e7d6c5b4a3928170615f4e";

// Docker's inspect of a bootstrap container started by the issued command.
json bootstrap_container() {
  return json{
      {"Id", kId},
      {"Name", "/eager_turing"},
      {"Config", {{"Image", "paddock/agent:0.2.0"}, {"Env", {"PADDOCK_URL=https://s/v1/scripts/t"}}}},
      {"HostConfig",
       {{"Binds", {"/var/run/docker.sock:/var/run/docker.sock", "/var/lib/paddock:/var/lib/paddock"}},
        {"Privileged", true},
        {"NetworkMode", "host"},
        {"LogConfig", {{"Type", "json-file"}, {"Config", json::object()}}}}},
      {"Mounts",
       {{{"Type", "bind"}, {"Source", "/var/run/docker.sock"}, {"Destination", "/var/run/docker.sock"}},
        {{"Type", "bind"}, {"Source", "/var/lib/paddock"}, {"Destination", "/var/lib/paddock"}}}},
  };
}

State registered_state() {
  State s;
  s.server_url = "https://server.example:8443";
  s.host_id = "1h7";
  return s;
}

TEST(OwnContainerId, FoundInDockersBindMountsWhateverTheDataRoot) {
  const std::string mountinfo =
      "612 540 0:53 / / rw,relatime master:301 - overlay overlay rw,lowerdir=/x\n"
      "625 612 259:1 /tmp/pdk-e1/data/containers/" + kId +
      "/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw\n"
      "626 612 259:1 /tmp/pdk-e1/data/containers/" + kId + "/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n";
  EXPECT_EQ(own_container_id(mountinfo), kId);
}

TEST(OwnContainerId, EmptyOutsideAContainerOrForLookalikes) {
  EXPECT_EQ(own_container_id("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"), "");
  EXPECT_EQ(own_container_id("25 1 8:1 /srv/containers/short/hostname /x rw - ext4 /dev/sda1 rw\n"), "");
  // 64 characters, but not lowercase hex.
  EXPECT_EQ(own_container_id("25 1 8:1 /c/containers/" + std::string(64, 'Z') + "/hostname /x rw\n"), "");
  // An id not followed by a path separator is not Docker's layout.
  EXPECT_EQ(own_container_id("25 1 8:1 /c/containers/" + kId + "x/hostname /x rw\n"), "");
}

TEST(CheckBootstrapContainer, AcceptsTheIssuedCommandsMounts) {
  Options o;
  EXPECT_TRUE(check_bootstrap_container(bootstrap_container(), o).ok());
  o.state_dir = "/var/lib/paddock/sub";  // under a mount is shared too
  EXPECT_TRUE(check_bootstrap_container(bootstrap_container(), o).ok());
}

TEST(CheckBootstrapContainer, RefusesAStateDirThatDiesWithTheContainer) {
  auto self = bootstrap_container();
  self["Mounts"].erase(1);
  auto checked = check_bootstrap_container(self, Options{});
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().code, kExitRefused);
  EXPECT_NE(checked.error().message.find("-v /var/lib/paddock:/var/lib/paddock"), std::string::npos);

  // A mount at a mere name prefix is not the directory.
  self["Mounts"].push_back({{"Destination", "/var/lib/pad"}});
  EXPECT_FALSE(check_bootstrap_container(self, Options{}).ok());
}

TEST(CheckBootstrapContainer, RefusesToRunUnderTheLongRunningAgentsName) {
  auto self = bootstrap_container();
  self["Name"] = "/paddock-agent";
  auto checked = check_bootstrap_container(self, Options{});
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().code, kExitRefused);
}

TEST(AgentContainerSpec, SameImageAndMountsOnTheHostNetworkRestartedByDocker) {
  Options o;
  o.registration_url = "https://server.example:8443/v1/scripts/secret-token";
  o.ca_checksum = std::string(64, 'a');
  o.labels = {{"zone", "b"}};
  o.report_interval = std::chrono::milliseconds(15000);
  o.log_level = "debug";
  o.docker_host = "unix:///var/run/docker.sock";
  auto spec = agent_container_spec(bootstrap_container(), o, registered_state());
  ASSERT_TRUE(spec.ok());
  const json& s = *spec;
  EXPECT_EQ(s["Image"], "paddock/agent:0.2.0");
  EXPECT_EQ(s["HostConfig"]["NetworkMode"], "host");
  EXPECT_EQ(s["HostConfig"]["PidMode"], "host");
  EXPECT_EQ(s["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
  EXPECT_EQ(s["HostConfig"]["Privileged"], true);
  EXPECT_EQ(s["HostConfig"]["Binds"], bootstrap_container()["HostConfig"]["Binds"]);
  EXPECT_EQ(s["HostConfig"]["LogConfig"]["Type"], "json-file");
  EXPECT_EQ(s["Labels"]["io.paddock.host-id"], "1h7");
  EXPECT_EQ(s["Labels"]["io.paddock.server"], "https://server.example:8443");
  EXPECT_EQ(s["Cmd"], json({"--state-dir", "/var/lib/paddock", "--label", "zone=b", "--report-interval", "15000ms",
                            "--log-level", "debug"}));
  EXPECT_EQ(s["Env"], json({"PADDOCK_BOOTSTRAP=false", "DOCKER_HOST=unix:///var/run/docker.sock"}));
  // The token never reaches the long-running container: the state is its identity.
  EXPECT_EQ(s.dump().find("secret-token"), std::string::npos);
  EXPECT_EQ(s.dump().find("PADDOCK_URL"), std::string::npos);
}

TEST(AgentContainerSpec, RefusedWithoutAnImageName) {
  auto self = bootstrap_container();
  self["Config"].erase("Image");
  auto spec = agent_container_spec(self, Options{}, registered_state());
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.error().code, kExitRefused);
}

}  // namespace
}  // namespace paddock::agent
