#pragma once
// SQLite, embedded: one writer connection and a small pool of readers over
// WAL, prepared statements cached per connection, versioned migrations.

#include "common/result.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace paddock::server::db {

class Connection;
template <class F>
using TxResult = std::conditional_t<std::is_void_v<std::invoke_result_t<F, Connection&>>, Status,
                                    Result<std::invoke_result_t<F, Connection&>>>;

using Value = std::variant<std::nullptr_t, std::int64_t, double, std::string>;
using Row = nlohmann::json;  // an object keyed by column name

// A column value from JSON: integers, floats, strings and null as they are,
// anything else as JSON text.
Value from_json(const nlohmann::json& v);

// One SQLite connection. Not thread-safe: Database hands each to one thread at a time.
class Connection {
 public:
  explicit Connection(sqlite3* handle);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs a statement; returns the rows it produced. Throws db::Failure on
  // SQLite errors (the transaction wrapper turns that into a Result).
  std::vector<Row> query(std::string_view sql, const std::vector<Value>& params = {});
  // The first row, or a null json when there is none.
  Row query_one(std::string_view sql, const std::vector<Value>& params = {});
  // Runs a statement for its effect; returns sqlite3_changes().
  std::int64_t exec(std::string_view sql, const std::vector<Value>& params = {});
  std::int64_t last_insert_id() const;
  // Runs several ;-separated statements without parameters (migrations).
  void exec_script(std::string_view sql);

 private:
  sqlite3_stmt* prepare(std::string_view sql);

  sqlite3* handle_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
  int code = 0;
};

class Database {
 public:
  // Opens (creating if needed) DIR/paddock.db and applies pending migrations.
  static Result<std::unique_ptr<Database>> open(const std::filesystem::path& file);
  ~Database();

  // Runs `fn` inside BEGIN IMMEDIATE … COMMIT on the writer connection; any
  // exception rolls back. Once it returns ok the write is durable against a
  // process crash (WAL, synchronous=NORMAL). Thread-safe.
  template <class F>
  TxResult<F> write(F&& fn) {
    return transact(true, std::forward<F>(fn));
  }
  // Runs `fn` in a read transaction on a pooled reader connection. Thread-safe.
  template <class F>
  TxResult<F> read(F&& fn) {
    return transact(false, std::forward<F>(fn));
  }

  int schema_version() const { return schema_version_; }

 private:
  explicit Database(std::filesystem::path file);
  Status apply_migrations();
  std::unique_ptr<Connection> checkout(bool writer);
  void checkin(std::unique_ptr<Connection> c, bool writer);
  void begin(Connection& c, bool writer);
  void finish(Connection& c, bool commit);

  template <class F>
  TxResult<F> transact(bool writer, F&& fn) {
    using T = std::invoke_result_t<F, Connection&>;
    auto c = checkout(writer);
    if (!c) return fail(Errc::unavailable, "the store could not be opened");
    struct Return {
      Database* db; std::unique_ptr<Connection>* c; bool writer;
      ~Return() { db->checkin(std::move(*c), writer); }
    } giveback{this, &c, writer};
    try {
      begin(*c, writer);
      if constexpr (std::is_void_v<T>) {
        fn(*c);
        finish(*c, true);
        return Ok{};
      } else {
        T value = fn(*c);
        finish(*c, true);
        return value;
      }
    } catch (const std::exception& e) {
      try { finish(*c, false); } catch (const std::exception&) {}
      return fail_from(e);
    }
  }
  static Error fail_from(const std::exception& e);

  std::filesystem::path file_;
  std::mutex writer_mutex_;
  std::unique_ptr<Connection> writer_;
  std::mutex readers_mutex_;
  std::vector<std::unique_ptr<Connection>> readers_;
  int schema_version_ = 0;
};

// Thrown inside a transaction to roll it back and fail with `error`.
struct Abort : std::runtime_error {
  Abort(Error e) : std::runtime_error(e.message), error(std::move(e)) {}  // NOLINT
  Error error;
};

}  // namespace paddock::server::db
