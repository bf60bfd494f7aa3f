// Everything that talks to the REST API, against canned answers: the
// client (auth, trust, errors, pagination), name resolution, and whole
// commands run through App with a fake transport.

#include "cli/api_client.hpp"
#include "cli/app.hpp"
#include "cli/resolve.hpp"
#include "common/crypto.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace paddock::cli {
namespace {

// -- canned answers ------------------------------------------------------------

constexpr const char* kBase = "https://paddock.test:8443";

struct Recorded {
  std::string method;
  std::string url;
  http_client::Headers headers;
  std::string body;
  tls::ClientTrust::Mode trust = tls::ClientTrust::Mode::system;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

class FakeServer {
 public:
  // Answers `method url` (url relative to kBase, or absolute) with `body`.
  void on(const std::string& method, const std::string& url, unsigned status, const std::string& body) {
    const std::string full = url.starts_with("http") ? url : std::string(kBase) + url;
    answers_[method + " " + full] = http_client::Response{status, {}, body};
  }
  void on(const std::string& method, const std::string& url, unsigned status, const char* body) {
    on(method, url, status, std::string(body));
  }
  void on(const std::string& method, const std::string& url, unsigned status, const nlohmann::json& body) {
    on(method, url, status, body.dump());
  }
  // Any request without an answer: a transport failure.
  void refuse_unknown(bool refuse) { refuse_unknown_ = refuse; }

  ApiClient::Transport transport() {
    return [this](std::string_view method, std::string_view url, const http_client::Headers& headers,
                  std::string_view body, const tls::ClientTrust& trust) -> Result<http_client::Response> {
      requests.push_back({std::string(method), std::string(url), headers, std::string(body), trust.mode});
      auto it = answers_.find(std::string(method) + " " + std::string(url));
      if (it == answers_.end()) {
        if (refuse_unknown_) return fail(Errc::unavailable, "cannot connect to " + std::string(kBase) + ": connection refused");
        return http_client::Response{404, {}, R"({"type":"error","status":404,"code":"NotFound","message":"not found"})"};
      }
      return it->second;
    };
  }

  std::vector<Recorded> requests;

 private:
  std::map<std::string, http_client::Response> answers_;
  bool refuse_unknown_ = false;
};

Config test_config() {
  Config c;
  c.url = kBase;
  c.access_key = "ak";
  c.secret_key = "sk";
  return c;
}

// A collection answer holding `data`.
nlohmann::json collection(nlohmann::json data, nlohmann::json next = nullptr) {
  return {{"type", "collection"}, {"data", std::move(data)}, {"pagination", {{"next", std::move(next)}}}};
}

nlohmann::json host(const std::string& id, const std::string& name, const std::string& state = "active") {
  const std::string self = std::string(kBase) + "/v1/projects/1p1/hosts/" + id;
  nlohmann::json actions = nlohmann::json::object();
  if (state == "inactive") actions["activate"] = self + "?action=activate";
  else actions["deactivate"] = self + "?action=deactivate";
  return {{"id", id},
          {"type", "host"},
          {"name", name},
          {"state", state},
          {"links", {{"self", self}, {"remove", self}, {"containers", self + "/containers"}}},
          {"actions", actions}};
}

nlohmann::json container(const std::string& id, const std::string& name, const std::string& host_id,
                                const std::string& docker_id) {
  const std::string self = std::string(kBase) + "/v1/projects/1p1/containers/" + id;
  return {{"id", id},
          {"type", "container"},
          {"name", name},
          {"hostId", host_id},
          {"dockerId", docker_id},
          {"state", "running"},
          {"image", "busybox"},
          {"links", {{"self", self}}},
          {"actions",
           {{"logs", self + "?action=logs"}, {"execute", self + "?action=execute"}, {"stats", self + "?action=stats"}}}};
}

// -- ApiClient -----------------------------------------------------------------

const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n";

TEST(ApiClient, SendsBasicAuthAndTheProjectHeader) {
  FakeServer server;
  server.on("GET", "/v1/hosts/1h1", 200, nlohmann::json{{"id", "1h1"}});
  auto config = test_config();
  config.project = "1p2";
  ApiClient api(config, server.transport());
  auto h = api.get("/v1/hosts/1h1");
  ASSERT_TRUE(h) << h.error().describe();
  ASSERT_EQ(server.requests.size(), 1u);
  EXPECT_EQ(server.requests[0].header("Authorization"), "Basic " + crypto::base64_encode("ak:sk"));
  EXPECT_EQ(server.requests[0].header("X-API-Project-Id"), "1p2");
  EXPECT_EQ(server.requests[0].trust, tls::ClientTrust::Mode::system);
}

TEST(ApiClient, ChecksumPinsTheFetchedCaOnce) {
  FakeServer server;
  server.on("GET", "/v1/cacerts", 200, kCaPem);
  server.on("GET", "/v1/hosts", 200, collection(nlohmann::json::array()));
  auto config = test_config();
  config.ca_checksum = crypto::sha256_hex(kCaPem);
  ApiClient api(config, server.transport());
  ASSERT_TRUE(api.get("/v1/hosts"));
  ASSERT_TRUE(api.get("/v1/hosts"));
  ASSERT_EQ(server.requests.size(), 3u);  // cacerts once, then two requests
  EXPECT_EQ(server.requests[0].url, std::string(kBase) + "/v1/cacerts");
  EXPECT_EQ(server.requests[0].trust, tls::ClientTrust::Mode::insecure);
  EXPECT_TRUE(server.requests[0].header("Authorization").empty()) << "no credentials before the CA is checked";
  EXPECT_EQ(server.requests[1].trust, tls::ClientTrust::Mode::pinned_ca);
  auto trust = api.trust();
  ASSERT_TRUE(trust);
  EXPECT_EQ(trust->pinned_ca_pem, kCaPem);
}

TEST(ApiClient, WrongChecksumSendsNothingFurther) {
  FakeServer server;
  server.on("GET", "/v1/cacerts", 200, kCaPem);
  auto config = test_config();
  config.ca_checksum = std::string(64, '0');
  ApiClient api(config, server.transport());
  auto h = api.get("/v1/hosts");
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().describe().find("does not match the CA checksum"), std::string::npos) << h.error().describe();
  EXPECT_EQ(server.requests.size(), 1u);
}

TEST(ApiClient, ErrorsAreOneLine) {
  FakeServer server;
  server.on("GET", "/v1/hosts", 401, R"({"type":"error","status":401,"code":"Unauthorized","message":"x"})");
  server.on("GET", "/v1/containers?foo=1", 422,
            R"({"type":"error","status":422,"code":"InvalidFilter","message":"unknown field","fieldName":"foo"})");
  server.on("GET", "/v1/hosts/1h9", 404, R"({"type":"error","status":404,"code":"NotFound","message":"not found"})");
  ApiClient api(test_config(), server.transport());
  auto unauthorized = api.get("/v1/hosts");
  ASSERT_FALSE(unauthorized);
  EXPECT_EQ(unauthorized.error().describe(),
            "the server refused the credentials (401 Unauthorized): check PADDOCK_ACCESS_KEY and PADDOCK_SECRET_KEY");
  auto invalid = api.get("/v1/containers", {{"foo", "1"}});
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().describe(), "unknown field (422 InvalidFilter, field foo)");
  auto missing = api.get("/v1/hosts/1h9");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().describe(), "not found (404 NotFound)");
}

TEST(ApiClient, TransportFailuresAreTheTransportsLine) {
  FakeServer server;
  server.refuse_unknown(true);
  ApiClient api(test_config(), server.transport());
  auto h = api.get("/v1/hosts");
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().status, 0u);
  EXPECT_EQ(h.error().describe(), "cannot connect to https://paddock.test:8443: connection refused");
}

TEST(ApiClient, ListFollowsPagination) {
  FakeServer server;
  const std::string next = std::string(kBase) + "/v1/hosts?marker=m1&limit=1000";
  server.on("GET", "/v1/hosts?limit=1000", 200, collection({{{"id", "1h1"}}}, next));
  server.on("GET", next, 200, collection({{{"id", "1h2"}}}));
  ApiClient api(test_config(), server.transport());
  auto all = api.list("/v1/hosts");
  ASSERT_TRUE(all) << all.error().describe();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(str((*all)[1], "id"), "1h2");
}

TEST(ApiClient, EncodesQueryValues) {
  ApiClient api(test_config(), FakeServer().transport());
  EXPECT_EQ(api.url("/v1/containers", {{"name", "a b&c/é"}}),
            std::string(kBase) + "/v1/containers?name=a%20b%26c%2F%C3%A9");
  EXPECT_EQ(api.url("https://other/v1/x?a=1", {{"b", "2"}}), "https://other/v1/x?a=1&b=2");
}

// -- name resolution -----------------------------------------------------------

const std::string kDockerA = "abc123" + std::string(58, '0');
const std::string kDockerB = "abd456" + std::string(58, '1');
const std::string kDockerC = "cafe00" + std::string(58, '2');

class ResolveTest : public ::testing::Test {
 protected:
  FakeServer server;
  ApiClient api{test_config(), server.transport()};
};

TEST_F(ResolveTest, PaddockIdIsOneGet) {
  server.on("GET", "/v1/containers/1c7", 200, container("1c7", "web", "1h1", kDockerA));
  auto c = resolve_container(api, "1c7");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(str(*c, "id"), "1c7");
  EXPECT_EQ(server.requests.size(), 1u);
}

TEST_F(ResolveTest, UniqueNameIsOneFilteredList) {
  server.on("GET", "/v1/containers?name=web&limit=1000", 200, collection({container("1c7", "web", "1h1", kDockerA)}));
  auto c = resolve_container(api, "web");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(str(*c, "id"), "1c7");
  ASSERT_EQ(server.requests.size(), 1u);
}

TEST_F(ResolveTest, UnknownNameSaysSo) {
  server.on("GET", "/v1/containers?name=nope&limit=1000", 200, collection(nlohmann::json::array()));
  auto c = resolve_container(api, "nope");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().describe(), "no container matches 'nope'");
}

TEST_F(ResolveTest, AmbiguousNameNamesTheHosts) {
  server.on("GET", "/v1/containers?name=web&limit=1000", 200,
            collection({container("1c7", "web", "1h1", kDockerA), container("1c9", "web", "1h2", kDockerB)}));
  server.on("GET", "/v1/hosts?id=1h1&id=1h2&limit=1000", 200, collection({host("1h1", "h1"), host("1h2", "h2")}));
  auto c = resolve_container(api, "web");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().describe(), "'web' matches 2 containers on hosts h1, h2; use --host or an id");
}

TEST_F(ResolveTest, HostScopesTheSearchThroughItsContainersLink) {
  server.on("GET", "/v1/hosts?name=h2&limit=1000", 200, collection({host("1h2", "h2")}));
  server.on("GET", std::string(kBase) + "/v1/projects/1p1/hosts/1h2/containers?name=web&limit=1000", 200,
            collection({container("1c9", "web", "1h2", kDockerB)}));
  auto c = resolve_container(api, "web", "h2");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(str(*c, "id"), "1c9");
}

TEST_F(ResolveTest, DockerIdPrefix) {
  server.on("GET", "/v1/containers?dockerId_prefix=abc&limit=1000", 200,
            collection({container("1c7", "web", "1h1", kDockerA)}));
  server.on("GET", "/v1/containers?name=abc&limit=1000", 200, collection(nlohmann::json::array()));
  auto c = resolve_container(api, "abc");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(str(*c, "id"), "1c7");
}

TEST_F(ResolveTest, AmbiguousPrefixAsksForMore) {
  server.on("GET", "/v1/containers?dockerId_prefix=ab&limit=1000", 200,
            collection({container("1c7", "web", "1h1", kDockerA), container("1c8", "db", "1h1", kDockerB)}));
  server.on("GET", "/v1/containers?name=ab&limit=1000", 200, collection(nlohmann::json::array()));
  server.on("GET", "/v1/hosts?id=1h1&limit=1000", 200, collection({host("1h1", "h1")}));
  auto c = resolve_container(api, "ab");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().describe(),
            "'ab' matches 2 containers on host h1; use a longer Docker id prefix, --host or an id");
}

TEST_F(ResolveTest, TheSameDockerIdOnTwoHostsNeedsAHost) {
  // Two hosts on one dockerd (or a cloned machine): a longer prefix cannot help.
  server.on("GET", "/v1/containers?dockerId_prefix=abc1&limit=1000", 200,
            collection({container("1c7", "web", "1h1", kDockerA), container("1c9", "web", "1h2", kDockerA)}));
  server.on("GET", "/v1/containers?name=abc1&limit=1000", 200, collection(nlohmann::json::array()));
  server.on("GET", "/v1/hosts?id=1h1&id=1h2&limit=1000", 200, collection({host("1h1", "h1"), host("1h2", "h2")}));
  auto c = resolve_container(api, "abc1");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().describe(), "'abc1' matches 2 containers on hosts h1, h2; use --host or an id");
}

TEST_F(ResolveTest, NameWinsOverIdPrefix) {
  // A container named "cafe" and another whose Docker id starts with cafe.
  server.on("GET", "/v1/containers?dockerId_prefix=cafe&limit=1000", 200,
            collection({container("1c3", "other", "1h1", kDockerC)}));
  server.on("GET", "/v1/containers?name=cafe&limit=1000", 200,
            collection({container("1c4", "cafe", "1h1", kDockerA)}));
  auto c = resolve_container(api, "cafe");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(str(*c, "id"), "1c4");
}

TEST_F(ResolveTest, WholeDockerIdWinsWithoutANameLookup) {
  server.on("GET", "/v1/containers?dockerId_prefix=" + kDockerA + "&limit=1000", 200,
            collection({container("1c7", "web", "1h1", kDockerA)}));
  auto c = resolve_container(api, kDockerA);
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(str(*c, "id"), "1c7");
  EXPECT_EQ(server.requests.size(), 1u);
}

TEST_F(ResolveTest, UnknownPaddockIdFallsBackToNamesAndIdPrefixes) {
  // "1c99" is also hex: it may be the start of a Docker id.
  server.on("GET", "/v1/containers?name=1c99&limit=1000", 200, collection(nlohmann::json::array()));
  server.on("GET", "/v1/containers?dockerId_prefix=1c99&limit=1000", 200, collection(nlohmann::json::array()));
  auto c = resolve_container(api, "1c99");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().describe(), "no container matches '1c99'");
}

TEST_F(ResolveTest, ContainerIdOnAnotherHostIsRefused) {
  server.on("GET", "/v1/hosts/1h2", 200, host("1h2", "h2"));
  server.on("GET", "/v1/containers/1c7", 200, container("1c7", "web", "1h1", kDockerA));
  auto c = resolve_container(api, "1c7", "1h2");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().describe(), "container 1c7 is not on host h2");
}

TEST_F(ResolveTest, HostByNameAndAmbiguity) {
  server.on("GET", "/v1/hosts?name=h1&limit=1000", 200, collection({host("1h1", "h1")}));
  server.on("GET", "/v1/hosts?name=twin&limit=1000", 200, collection({host("1h3", "twin"), host("1h4", "twin")}));
  server.on("GET", "/v1/hosts?name=ghost&limit=1000", 200, collection(nlohmann::json::array()));
  auto h = resolve_host(api, "h1");
  ASSERT_TRUE(h);
  EXPECT_EQ(str(*h, "id"), "1h1");
  auto twin = resolve_host(api, "twin");
  ASSERT_FALSE(twin);
  EXPECT_EQ(twin.error().describe(), "'twin' matches 2 hosts (1h3, 1h4); use an id");
  auto ghost = resolve_host(api, "ghost");
  ASSERT_FALSE(ghost);
  EXPECT_EQ(ghost.error().describe(), "no host matches 'ghost'");
}

TEST_F(ResolveTest, ServerErrorsPassThrough) {
  server.on("GET", "/v1/containers?name=web&limit=1000", 401,
            R"({"type":"error","status":401,"code":"Unauthorized","message":"bad credentials"})");
  auto c = resolve_container(api, "web");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().status, 401u);
}

TEST(PaddockId, Shapes) {
  EXPECT_TRUE(is_paddock_id("1c7", "1c"));
  EXPECT_TRUE(is_paddock_id("1h123", "1h"));
  EXPECT_FALSE(is_paddock_id("1c", "1c"));
  EXPECT_FALSE(is_paddock_id("1c07", "1c"));
  EXPECT_FALSE(is_paddock_id("1cx", "1c"));
  EXPECT_FALSE(is_paddock_id("1h7", "1c"));
}

// -- whole commands --------------------------------------------------------------

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

Getenv test_env() {
  return [](const char* name) -> std::optional<std::string> {
    const std::string n = name;
    if (n == "PADDOCK_URL") return std::string(kBase);
    if (n == "PADDOCK_ACCESS_KEY") return std::string("ak");
    if (n == "PADDOCK_SECRET_KEY") return std::string("sk");
    return std::nullopt;
  };
}

TEST(AppRun, MissingConfigurationIsAUsageError) {
  App app;
  ASSERT_FALSE(parse(app, {"hosts"}).code);
  std::ostringstream out, err;
  const int code = app.run(out, err, [](const char*) { return std::optional<std::string>(); });
  EXPECT_EQ(code, kExitUsage);
  EXPECT_EQ(err.str(), "error: no server URL: set PADDOCK_URL or pass --url\n");
}

TEST(AppRun, HostsTable) {
  FakeServer server;
  auto h = host("1h1", "web-01");
  h["agentIp"] = "10.0.0.5";
  h["dockerVersion"] = "24.0.7";
  h["dockerState"] = "ok";
  h["cpuPercent"] = 12.5;
  h["memoryUsed"] = 1073741824;
  h["memoryTotal"] = 8589934592;
  auto gone = host("1h2", "db-01", "inactive");
  gone["dockerState"] = "unreachable";
  server.on("GET", "/v1/hosts?limit=1000", 200, collection({h, gone}));
  App app;
  ASSERT_FALSE(parse(app, {"hosts"}).code);
  std::ostringstream out, err;
  EXPECT_EQ(app.run(out, err, test_env(), server.transport()), 0) << err.str();
  EXPECT_EQ(out.str(),
            "ID    NAME     STATE      AGENT IP   DOCKER        CPU%     MEMORY\n"
            "1h1   web-01   active     10.0.0.5   24.0.7        12.50%   1.00GiB / 8.00GiB\n"
            "1h2   db-01    inactive   -          unreachable   -        -\n");
}

TEST(AppRun, HostsJsonIsTheResources) {
  FakeServer server;
  server.on("GET", "/v1/hosts?limit=1000", 200, collection(nlohmann::json::array()));
  App app;
  ASSERT_FALSE(parse(app, {"hosts", "-o", "json"}).code);
  std::ostringstream out, err;
  EXPECT_EQ(app.run(out, err, test_env(), server.transport()), 0) << err.str();
  EXPECT_EQ(nlohmann::json::parse(out.str()), nlohmann::json::array());
}

TEST(AppRun, DeactivateFollowsTheAction) {
  FakeServer server;
  auto h = host("1h1", "web-01");
  server.on("GET", "/v1/hosts?name=web-01&limit=1000", 200, collection({h}));
  auto after = host("1h1", "web-01", "inactive");
  server.on("POST", h["actions"]["deactivate"].get<std::string>(), 200, after);
  App app;
  ASSERT_FALSE(parse(app, {"hosts", "deactivate", "web-01"}).code);
  std::ostringstream out, err;
  EXPECT_EQ(app.run(out, err, test_env(), server.transport()), 0) << err.str();
  EXPECT_NE(out.str().find("inactive"), std::string::npos) << out.str();

  App again;
  server.on("GET", "/v1/hosts?name=web-01&limit=1000", 200, collection({after}));
  ASSERT_FALSE(parse(again, {"hosts", "deactivate", "web-01"}).code);
  std::ostringstream out2, err2;
  EXPECT_EQ(again.run(out2, err2, test_env(), server.transport()), kExitFailure);
  EXPECT_EQ(err2.str(), "error: host web-01 (1h1) is already inactive\n");
}

TEST(AppRun, ApiErrorsAreOneLineAndExitOne) {
  FakeServer server;
  server.on("GET", "/v1/hosts?limit=1000", 401, R"({"type":"error","status":401,"code":"Unauthorized"})");
  App app;
  ASSERT_FALSE(parse(app, {"hosts"}).code);
  std::ostringstream out, err;
  EXPECT_EQ(app.run(out, err, test_env(), server.transport()), kExitFailure);
  EXPECT_EQ(err.str(), "error: the server refused the credentials (401 Unauthorized): check PADDOCK_ACCESS_KEY and "
                       "PADDOCK_SECRET_KEY\n");
  EXPECT_EQ(out.str(), "");
}

TEST(AppRun, ProjectNamesBecomeIds) {
  FakeServer server;
  server.on("GET", "/v1/projects?name=Default&limit=1000", 200, collection({{{"id", "1p1"}, {"name", "Default"}}}));
  server.on("GET", "/v1/registrationTokens?limit=1000", 200, collection(nlohmann::json::array()));
  App app;
  ASSERT_FALSE(parse(app, {"tokens", "ls", "--project", "Default"}).code);
  std::ostringstream out, err;
  EXPECT_EQ(app.run(out, err, test_env(), server.transport()), 0) << err.str();
  ASSERT_EQ(server.requests.size(), 2u);
  EXPECT_EQ(server.requests[0].header("X-API-Project-Id"), "");
  EXPECT_EQ(server.requests[1].header("X-API-Project-Id"), "1p1");
}

}  // namespace
}  // namespace paddock::cli
