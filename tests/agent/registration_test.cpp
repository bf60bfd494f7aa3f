#include "agent/registration.hpp"

#include "agent/control_connection.hpp"

#include <gtest/gtest.h>

namespace paddock::agent {
namespace {

using nlohmann::json;

TEST(RegistrationUrl, Splits) {
  auto u = parse_registration_url("https://Server.Example:8443/v1/scripts/AbC123");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->server_url, "https://server.example:8443");
  EXPECT_EQ(u->token, "AbC123") << "the token keeps its case";
  auto prefixed = parse_registration_url("http://10.0.0.1/paddock/v1/scripts/t/");
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ(prefixed->server_url, "http://10.0.0.1/paddock");
  EXPECT_EQ(prefixed->token, "t");
  auto v6 = parse_registration_url("https://[::1]:443/v1/scripts/t");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->server_url, "https://[::1]");
}

TEST(RegistrationUrl, Refuses) {
  for (const char* bad : {"", "server/v1/scripts/t", "ftp://s/v1/scripts/t", "https://s/v1/scripts/",
                          "https://s/v1/other/t", "https://s/v1/scripts/a/b", "https://s/v1/scripts/t?x=1",
                          "https://user:pw@s/v1/scripts/t"}) {
    EXPECT_FALSE(parse_registration_url(bad).ok()) << bad;
  }
}

TEST(ServerUrl, Normalizes) {
  EXPECT_EQ(*normalize_server_url("HTTPS://Server:443/"), "https://server");
  EXPECT_EQ(*normalize_server_url("https://server:8443"), "https://server:8443");
  EXPECT_EQ(*normalize_server_url("http://server:80/prefix/"), "http://server/prefix");
  EXPECT_NE(*normalize_server_url("http://server:8443"), *normalize_server_url("https://server:8443"));
}

State stored(const std::string& server) {
  State s;
  s.server_url = server;
  s.host_id = "1h1";
  s.credential = {"a", "b"};
  s.machine_id = "m";
  return s;
}

TEST(PlanRun, NoStateNoUrlIsRefused) {
  auto p = plan_run(std::nullopt, "", "/var/lib/paddock");
  EXPECT_EQ(p.action, Plan::Action::refuse);
  EXPECT_EQ(p.refusal.code, 2);
  EXPECT_NE(p.refusal.message.find("/var/lib/paddock"), std::string::npos);
}

TEST(PlanRun, StateWithoutUrlIsUsed) {
  EXPECT_EQ(plan_run(stored("https://s:8443"), "", "/d").action, Plan::Action::use_state);
}

TEST(PlanRun, UrlWithoutStateRegisters) {
  auto p = plan_run(std::nullopt, "https://s:8443/v1/scripts/tok", "/d");
  EXPECT_EQ(p.action, Plan::Action::register_host);
  ASSERT_TRUE(p.url);
  EXPECT_EQ(p.url->token, "tok");
}

TEST(PlanRun, SameServerDoesNotRegisterAgain) {
  EXPECT_EQ(plan_run(stored("https://S:8443"), "https://s:8443/v1/scripts/other-token", "/d").action,
            Plan::Action::use_state);
}

TEST(PlanRun, AnotherServerIsRefused) {
  auto p = plan_run(stored("https://old:8443"), "https://new:8443/v1/scripts/tok", "/d");
  EXPECT_EQ(p.action, Plan::Action::refuse);
  EXPECT_EQ(p.refusal.code, 2);
  EXPECT_NE(p.refusal.message.find("belongs to https://old:8443"), std::string::npos) << p.refusal.message;
  EXPECT_NE(p.refusal.message.find("/d/state.json"), std::string::npos) << p.refusal.message;
  EXPECT_EQ(p.refusal.message.find("tok"), std::string::npos) << "the token is a secret";
}

TEST(PlanRun, BadUrlIsRefused) {
  auto p = plan_run(std::nullopt, "https://s:8443/not/a/registration", "/d");
  EXPECT_EQ(p.action, Plan::Action::refuse);
  EXPECT_EQ(p.refusal.code, 2);
}

TEST(RegistrationBody, Facts) {
  RegistrationFacts f{"web-01", "mid", {{"k", "v"}}, "10.0.0.5"};
  auto b = registration_body(f);
  EXPECT_EQ(b["hostname"], "web-01");
  EXPECT_EQ(b["machineId"], "mid");
  EXPECT_EQ(b["labels"], (json{{"k", "v"}}));
  EXPECT_EQ(b["agentIp"], "10.0.0.5");
  EXPECT_TRUE(b["agentVersion"].is_string());
  f.agent_ip.clear();
  EXPECT_FALSE(registration_body(f).contains("agentIp"));
}

http_client::Response response(unsigned status, json body) {
  http_client::Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

const RegistrationUrl kUrl{"https://s:8443", "tok"};

TEST(RegistrationResult, CreatedBecomesState) {
  auto r = registration_result(response(201, {{"type", "agentRegistration"},
                                              {"hostId", "1h5"},
                                              {"hostUuid", "u-1"},
                                              {"credential", {{"accessKey", "ak"}, {"secretKey", "sk"}}},
                                              {"serverUrl", "https://elsewhere"},
                                              {"jwks", {{"keys", json::array()}}}}),
                               kUrl, "PEM", "mid");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->server_url, "https://s:8443") << "the server the agent reached, not what it claims";
  EXPECT_EQ(r->ca_pem, "PEM");
  EXPECT_EQ(r->host_id, "1h5");
  EXPECT_EQ(r->host_uuid, "u-1");
  EXPECT_EQ(r->credential.access_key, "ak");
  EXPECT_EQ(r->credential.secret_key, "sk");
  EXPECT_EQ(r->jwks, (json{{"keys", json::array()}}));
  EXPECT_EQ(r->machine_id, "mid");
}

TEST(RegistrationResult, NotFoundIsTheTokenMessage) {
  auto r = registration_result(response(404, {{"type", "error"}, {"code", "NotFound"}}), kUrl, "", "m");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 2);
  EXPECT_EQ(r.error().message,
            "the registration token is unknown, expired, used up or deactivated; create a new one");
}

TEST(RegistrationResult, OtherRefusals) {
  auto deactivated = registration_result(
      response(403, {{"code", "HostDeactivated"}, {"message", "this machine's host is deactivated"}}), kUrl, "", "m");
  ASSERT_FALSE(deactivated.ok());
  EXPECT_EQ(deactivated.error().code, 2);
  EXPECT_NE(deactivated.error().message.find("HostDeactivated"), std::string::npos);
  auto invalid = registration_result(response(422, {{"code", "InvalidType"}}), kUrl, "", "m");
  EXPECT_EQ(invalid.error().code, 2);
  auto down = registration_result(response(503, {{"code", "ServiceUnavailable"}}), kUrl, "", "m");
  EXPECT_EQ(down.error().code, 1);
}

TEST(RegistrationResult, UnusableAnswers) {
  for (const json& body : {json("text"), json::object(), json{{"hostId", "1h1"}},
                           json{{"hostId", "1h1"}, {"credential", {{"accessKey", "a"}}}},
                           json{{"hostId", 5}, {"credential", {{"accessKey", "a"}, {"secretKey", "b"}}}}}) {
    auto r = registration_result(response(201, body), kUrl, "", "m");
    ASSERT_FALSE(r.ok()) << body.dump();
    EXPECT_EQ(r.error().code, 1);
  }
  http_client::Response garbage;
  garbage.status = 201;
  garbage.body = "{not json";
  EXPECT_FALSE(registration_result(garbage, kUrl, "", "m").ok());
}

TEST(Refusals, ConnectStatusesAndCloseCodes) {
  for (unsigned code : {410u, 4410u}) {
    auto e = refusal_exit(code);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, 2);
    EXPECT_NE(e->message.find("register it again with a new command"), std::string::npos);
  }
  for (unsigned code : {403u, 4403u}) {
    auto e = refusal_exit(code);
    ASSERT_TRUE(e);
    EXPECT_NE(e->message.find("deactivated"), std::string::npos);
  }
  for (unsigned code : {409u, 4409u}) {
    auto e = refusal_exit(code);
    ASSERT_TRUE(e);
    EXPECT_NE(e->message.find("another machine is connected with this host's identity (was the state copied?)"),
              std::string::npos);
  }
  for (unsigned code : {0u, 401u, 500u, 503u, 1000u, 1001u, 1006u, 1008u}) {
    EXPECT_FALSE(refusal_exit(code)) << code << " is retried";
  }
}

}  // namespace
}  // namespace paddock::agent
