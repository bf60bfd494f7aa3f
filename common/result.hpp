#pragma once
// The project's error type and Result<T>, returned at module edges instead of
// throwing (see the error policy in STYLE.md).

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace paddock {

// Error categories shared by every module. The API maps them to HTTP statuses.
enum class Errc {
  invalid_input,      // malformed or out-of-range input from a peer or a file
  unauthorized,       // bad or missing credentials
  forbidden,          // authenticated, but not allowed
  not_found,          // absent, or invisible to the caller
  conflict,           // the current state does not allow it
  unavailable,        // a dependency (Docker, a peer, the store) is down
  io,                 // local I/O failed
  internal,           // a bug or an impossible state
};

struct Error {
  Errc code = Errc::internal;
  std::string message;
};

// A value or an error; a minimal std::expected for C++20.
template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

// For operations that return nothing but may fail.
struct Ok {};
using Status = Result<Ok>;

// Shorthand for a failed Result.
inline Error fail(Errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace paddock
