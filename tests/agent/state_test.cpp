#include "agent/state.hpp"

#include "common/crypto.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace paddock::agent {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pdk-state-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

State sample() {
  State s;
  s.server_url = "https://server.example:8443";
  s.ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  s.host_id = "1h5";
  s.host_uuid = "0123456789abcdef";
  s.credential = {"agent-abc", "s3cret"};
  s.jwks = {{"keys", nlohmann::json::array({{{"kid", "k1"}, {"kty", "EC"}}})}};
  s.machine_id = "m-1";
  return s;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

TEST(State, RoundTripThroughTheFile) {
  TempDir dir;
  ASSERT_TRUE(save_state(dir.path, sample()).ok());
  auto loaded = load_state(dir.path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, sample());
}

TEST(State, FileIsPrivateAndNoTempFileIsLeft) {
  TempDir dir;
  ASSERT_TRUE(save_state(dir.path / "sub", sample()).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir.path / "sub" / "state.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir.path / "sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "a directory the agent made is private";
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path / "sub")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(State, SaveReplacesTheOldState) {
  TempDir dir;
  ASSERT_TRUE(save_state(dir.path, sample()).ok());
  State s = sample();
  s.jwks = {{"keys", nlohmann::json::array()}};
  ASSERT_TRUE(save_state(dir.path, s).ok());
  EXPECT_EQ(**load_state(dir.path), s);
}

TEST(State, NoFileIsNoState) {
  TempDir dir;
  auto loaded = load_state(dir.path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

TEST(State, EmptyPinnedCaMeansSystemTrust) {
  TempDir dir;
  State s = sample();
  s.ca_pem.clear();
  ASSERT_TRUE(save_state(dir.path, s).ok());
  EXPECT_EQ(**load_state(dir.path), s);
}

// Every way the file can be damaged is refused with one line that names the
// file and says what to do.
void expect_refused(const fs::path& dir, const std::string& why) {
  auto loaded = load_state(dir);
  ASSERT_FALSE(loaded.ok()) << why;
  const auto& m = loaded.error().message;
  EXPECT_NE(m.find("state.json"), std::string::npos) << m;
  EXPECT_NE(m.find("register again"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(State, TruncatedAtEveryLengthIsRefused) {
  TempDir dir;
  ASSERT_TRUE(save_state(dir.path, sample()).ok());
  const std::string full = read_all(state_path(dir.path));
  // The text ends with "}\n": dropping only the newline leaves a whole file.
  for (std::size_t n = 0; n + 1 < full.size(); n += 7) {
    write_all(state_path(dir.path), full.substr(0, n));
    expect_refused(dir.path, "truncated to " + std::to_string(n));
  }
}

TEST(State, EditedValueIsCaughtByTheChecksum) {
  TempDir dir;
  ASSERT_TRUE(save_state(dir.path, sample()).ok());
  auto j = nlohmann::json::parse(read_all(state_path(dir.path)));
  j["hostId"] = "1h6";
  write_all(state_path(dir.path), j.dump(2));
  expect_refused(dir.path, "edited hostId");
  auto loaded = load_state(dir.path);
  EXPECT_NE(loaded.error().message.find("checksum"), std::string::npos) << loaded.error().message;
}

TEST(State, FlippedByteIsRefused) {
  TempDir dir;
  ASSERT_TRUE(save_state(dir.path, sample()).ok());
  const std::string full = read_all(state_path(dir.path));
  const auto at = full.find("agent-abc");
  ASSERT_NE(at, std::string::npos);
  std::string bad = full;
  bad[at + 2] = 'X';
  write_all(state_path(dir.path), bad);
  expect_refused(dir.path, "flipped byte");
}

// The checksum as the writer makes it: sha256 over the canonical dump
// without the checksum. Lets a test damage a field and still pass the
// checksum, so the field checks themselves are exercised.
nlohmann::json with_valid_checksum(nlohmann::json j) {
  j.erase("checksum");
  j["checksum"] = crypto::sha256_hex(j.dump());
  return j;
}

TEST(State, WrongShapesAreRefused) {
  TempDir dir;
  for (const std::string& text : {std::string("not json"), std::string("[]"), std::string("{}"),
                                  std::string("\"text\""), std::string("null"), std::string("")}) {
    write_all(state_path(dir.path), text);
    expect_refused(dir.path, text);
  }
}

TEST(State, WriterChecksumIsReproducible) {
  const auto j = state_to_json(sample());
  EXPECT_EQ(with_valid_checksum(j), j);
  EXPECT_TRUE(state_from_json(with_valid_checksum(j)).ok());
}

TEST(State, MissingOrMistypedFieldsAreRefusedEvenWithAValidChecksum) {
  TempDir dir;
  const auto good = state_to_json(sample());
  for (const char* field : {"serverUrl", "caPem", "hostId", "hostUuid", "credential", "jwks", "machineId",
                            "version"}) {
    auto j = good;
    j.erase(field);
    write_all(state_path(dir.path), with_valid_checksum(j).dump());
    expect_refused(dir.path, std::string("missing ") + field);
    j = good;
    j[field] = 5;
    write_all(state_path(dir.path), with_valid_checksum(j).dump());
    expect_refused(dir.path, std::string("mistyped ") + field);
  }
  for (const char* key : {"accessKey", "secretKey"}) {
    auto j = good;
    j["credential"].erase(key);
    write_all(state_path(dir.path), with_valid_checksum(j).dump());
    expect_refused(dir.path, std::string("missing credential.") + key);
  }
  auto j = good;
  j["hostId"] = "";
  write_all(state_path(dir.path), with_valid_checksum(j).dump());
  expect_refused(dir.path, "empty hostId");
  j = good;
  j["version"] = 99;
  write_all(state_path(dir.path), with_valid_checksum(j).dump());
  expect_refused(dir.path, "future version");
  j = good;
  j.erase("checksum");
  write_all(state_path(dir.path), j.dump());
  expect_refused(dir.path, "no checksum");
}

TEST(State, NotOursIfHuge) {
  TempDir dir;
  write_all(state_path(dir.path), std::string(2 << 20, ' '));
  expect_refused(dir.path, "huge");
}

TEST(WriteFileAtomic, CreatesWithMode) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.path / "f", "hello", 0640).ok());
  EXPECT_EQ(read_all(dir.path / "f"), "hello");
  struct stat st {};
  ASSERT_EQ(::stat((dir.path / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_FALSE(write_file_atomic(dir.path / "missing" / "f", "x", 0600).ok());
}

}  // namespace
}  // namespace paddock::agent
