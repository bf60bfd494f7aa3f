#include "server/token_worker.hpp"

#include "common/crypto.hpp"
#include "common/time_util.hpp"
#include "server/api.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace paddock::server {

namespace {
// Expiry is also checked on every read; the sweep only records it.
constexpr auto kSweepInterval = std::chrono::seconds(1);
}  // namespace

TokenWorker::TokenWorker(boost::asio::io_context& io, ServerContext& server, Api& api)
    : server_(server), api_(api), strand_(boost::asio::make_strand(io)), timer_(strand_) {}

void TokenWorker::start() {
  boost::asio::post(strand_, [this] { work(); });
}

void TokenWorker::stop() {
  stopped_ = true;
  boost::asio::post(strand_, [this] { timer_.cancel(); });
}

void TokenWorker::kick() {
  if (kicked_.exchange(true)) return;  // one wake-up covers many creates
  boost::asio::post(strand_, [this] { timer_.cancel(); });
}

void TokenWorker::wait() {
  if (stopped_) return;
  timer_.expires_after(kSweepInterval);
  timer_.async_wait([this](boost::system::error_code) {
    if (!stopped_) work();
  });
}

void TokenWorker::work() {
  auto* type = api_.type("registrationToken");
  auto changed = server_.db->write([&](db::Connection& c) {
    // Cleared under the writer lock: a token whose create committed before
    // this point is seen below; one committing later kicks again.
    kicked_ = false;
    std::vector<db::Row> rows;
    const auto now = time_util::now_ms();
    for (auto& row : c.query("SELECT id FROM registration_tokens WHERE transitioning = 'yes' LIMIT 1000")) {
      // At least 128 bits: 32 symbols of 62 carry ~190 bits.
      const std::string token = crypto::random_token(24);
      const auto id = row["id"].get<std::int64_t>();
      c.exec("UPDATE registration_tokens SET tokenHash = ?, tokenSealed = ?, state = CASE WHEN expiresAt IS "
             "NOT NULL AND expiresAt <= ? THEN 'expired' ELSE 'active' END, transitioning = 'no', "
             "transitioningMessage = NULL WHERE id = ?",
             {crypto::sha256_hex(token), crypto::seal(server_.secrets_key, token), now, id});
      rows.push_back(c.query_one("SELECT * FROM registration_tokens WHERE id = ?", {id}));
    }
    for (auto& row : c.query("SELECT id FROM registration_tokens WHERE state = 'active' AND expiresAt IS NOT "
                             "NULL AND expiresAt <= ? LIMIT 1000",
                             {now})) {
      const auto id = row["id"].get<std::int64_t>();
      c.exec("UPDATE registration_tokens SET state = 'expired' WHERE id = ?", {id});
      rows.push_back(c.query_one("SELECT * FROM registration_tokens WHERE id = ?", {id}));
    }
    return rows;
  });
  if (!changed) {
    spdlog::warn("token worker: {}", changed.error().message);
  } else {
    for (const auto& row : *changed) api_.publish(*type, row);
    if (changed->size() >= 1000) kicked_ = true;  // more are waiting
  }
  if (kicked_) {
    boost::asio::post(strand_, [this] { work(); });
  } else {
    wait();
  }
}

}  // namespace paddock::server
