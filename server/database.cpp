#include "server/database.hpp"

#include "server/migrations.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <thread>

namespace paddock::server::db {

namespace {

constexpr std::size_t kReaders = 4;

[[noreturn]] void throw_sqlite(sqlite3* handle, int rc) {
  Failure f(std::string("sqlite: ") + (handle ? sqlite3_errmsg(handle) : sqlite3_errstr(rc)));
  f.code = rc;
  throw f;
}

sqlite3* open_handle(const std::filesystem::path& file) {
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &handle,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    spdlog::error("cannot open the store: {}", handle ? sqlite3_errmsg(handle) : sqlite3_errstr(rc));
    sqlite3_close(handle);
    return nullptr;
  }
  sqlite3_busy_timeout(handle, 5000);
  sqlite3_extended_result_codes(handle, 1);
  return handle;
}

}  // namespace

Value from_json(const nlohmann::json& v) {
  if (v.is_null()) return nullptr;
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return static_cast<std::int64_t>(v.get<bool>());
  return v.dump();
}

Connection::Connection(sqlite3* handle) : handle_(handle) {
  // WAL lets readers run beside the writer; synchronous=NORMAL in WAL mode
  // keeps every committed transaction across a process crash (kill -9).
  exec_script(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
      "PRAGMA temp_store=MEMORY;");
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(handle_);
}

sqlite3_stmt* Connection::prepare(std::string_view sql) {
  std::string key(sql);
  if (auto it = statements_.find(key); it != statements_.end()) {
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(handle_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(handle_, rc);
  // Statements built from user filters vary; keep the cache bounded.
  if (statements_.size() > 512) {
    for (auto& [s, st] : statements_) sqlite3_finalize(st);
    statements_.clear();
  }
  statements_.emplace(std::move(key), stmt);
  return stmt;
}

namespace {

void bind_all(sqlite3* handle, sqlite3_stmt* stmt, const std::vector<Value>& params) {
  int i = 1;
  for (const auto& p : params) {
    int rc = SQLITE_OK;
    if (std::holds_alternative<std::nullptr_t>(p)) {
      rc = sqlite3_bind_null(stmt, i);
    } else if (auto* n = std::get_if<std::int64_t>(&p)) {
      rc = sqlite3_bind_int64(stmt, i, *n);
    } else if (auto* d = std::get_if<double>(&p)) {
      rc = sqlite3_bind_double(stmt, i, *d);
    } else {
      const auto& s = std::get<std::string>(p);
      rc = sqlite3_bind_text64(stmt, i, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    if (rc != SQLITE_OK) throw_sqlite(handle, rc);
    ++i;
  }
}

Row read_row(sqlite3_stmt* stmt) {
  Row row = Row::object();
  const int n = sqlite3_column_count(stmt);
  for (int c = 0; c < n; ++c) {
    const char* name = sqlite3_column_name(stmt, c);
    switch (sqlite3_column_type(stmt, c)) {
      case SQLITE_INTEGER: row[name] = sqlite3_column_int64(stmt, c); break;
      case SQLITE_FLOAT: row[name] = sqlite3_column_double(stmt, c); break;
      case SQLITE_NULL: row[name] = nullptr; break;
      default: {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        row[name] = std::string(text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, c)));
      }
    }
  }
  return row;
}

}  // namespace

std::vector<Row> Connection::query(std::string_view sql, const std::vector<Value>& params) {
  sqlite3_stmt* stmt = prepare(sql);
  bind_all(handle_, stmt, params);
  std::vector<Row> rows;
  for (;;) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      rows.push_back(read_row(stmt));
    } else if (rc == SQLITE_DONE) {
      break;
    } else {
      sqlite3_reset(stmt);
      throw_sqlite(handle_, rc);
    }
  }
  sqlite3_reset(stmt);
  return rows;
}

Row Connection::query_one(std::string_view sql, const std::vector<Value>& params) {
  auto rows = query(sql, params);
  return rows.empty() ? Row(nullptr) : std::move(rows.front());
}

std::int64_t Connection::exec(std::string_view sql, const std::vector<Value>& params) {
  sqlite3_stmt* stmt = prepare(sql);
  bind_all(handle_, stmt, params);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
  }
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) throw_sqlite(handle_, rc);
  return sqlite3_changes64(handle_);
}

std::int64_t Connection::last_insert_id() const { return sqlite3_last_insert_rowid(handle_); }

void Connection::exec_script(std::string_view sql) {
  std::string text(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(handle_, text.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    Failure f(std::string("sqlite: ") + (message ? message : sqlite3_errstr(rc)));
    f.code = rc;
    sqlite3_free(message);
    throw f;
  }
}

Database::Database(std::filesystem::path file) : file_(std::move(file)) {}
Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& file) {
  std::unique_ptr<Database> db(new Database(file));
  sqlite3* handle = open_handle(file);
  if (!handle) return fail(Errc::io, "cannot open the store at " + file.string());
  try {
    db->writer_ = std::make_unique<Connection>(handle);
  } catch (const std::exception& e) {
    return fail(Errc::io, std::string("cannot open the store: ") + e.what());
  }
  if (auto st = db->apply_migrations(); !st) return st.error();
  return db;
}

Status Database::apply_migrations() {
  const auto& steps = migrations();
  auto current = writer_->query_one("PRAGMA user_version")["user_version"].get<std::int64_t>();
  if (current > static_cast<std::int64_t>(steps.size())) {
    return fail(Errc::invalid_input, "the store was written by a newer paddock-server (schema version " +
                                         std::to_string(current) + ")");
  }
  for (auto v = current; v < static_cast<std::int64_t>(steps.size()); ++v) {
    try {
      writer_->exec_script("BEGIN IMMEDIATE");
      writer_->exec_script(steps[static_cast<std::size_t>(v)]);
      writer_->exec_script("PRAGMA user_version=" + std::to_string(v + 1));
      writer_->exec_script("COMMIT");
    } catch (const std::exception& e) {
      try { writer_->exec_script("ROLLBACK"); } catch (const std::exception&) {}
      return fail(Errc::internal, "store migration " + std::to_string(v + 1) + " failed: " + e.what());
    }
    spdlog::info("store migrated to schema version {}", v + 1);
  }
  schema_version_ = static_cast<int>(steps.size());
  return Ok{};
}

std::unique_ptr<Connection> Database::checkout(bool writer) {
  if (writer) {
    writer_mutex_.lock();
    return std::move(writer_);
  }
  {
    std::lock_guard lock(readers_mutex_);
    if (!readers_.empty()) {
      auto c = std::move(readers_.back());
      readers_.pop_back();
      return c;
    }
  }
  sqlite3* handle = open_handle(file_);
  if (!handle) return nullptr;
  return std::make_unique<Connection>(handle);
}

void Database::checkin(std::unique_ptr<Connection> c, bool writer) {
  if (writer) {
    writer_ = std::move(c);
    writer_mutex_.unlock();
    return;
  }
  if (!c) return;
  std::lock_guard lock(readers_mutex_);
  if (readers_.size() < kReaders) readers_.push_back(std::move(c));
}

void Database::begin(Connection& c, bool writer) { c.exec(writer ? "BEGIN IMMEDIATE" : "BEGIN"); }

void Database::finish(Connection& c, bool commit) { c.exec(commit ? "COMMIT" : "ROLLBACK"); }

Error Database::fail_from(const std::exception& e) {
  if (const auto* abort = dynamic_cast<const Abort*>(&e)) return abort->error;  // the caller's own refusal
  // SQL text and paths stay in the log, never in an answer.
  spdlog::error("store: {}", e.what());
  if (const auto* f = dynamic_cast<const Failure*>(&e); f && (f->code & 0xff) == SQLITE_CONSTRAINT) {
    return fail(Errc::conflict, "conflicts with an existing resource");
  }
  return fail(Errc::internal, "store error");
}

}  // namespace paddock::server::db
