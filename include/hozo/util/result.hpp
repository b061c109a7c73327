#pragma once
// Expected failures as values: Result<T> holds either a T or an Error.
// Exceptions are only used at library edges (yaml-cpp, nlohmann-json) and are
// converted to Result there; one top-level catch in cli.cpp maps the rest to exit codes.

#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "hozo/util/exit_code.hpp"

namespace hozo {

/// An expected failure: a human-readable message plus the exit code it maps to.
struct Error {
  std::string message;
  ExitCode code = ExitCode::failure;
};

/// Builds an Error with a fmt-formatted message.
template <typename... Args>
[[nodiscard]] Error make_error(ExitCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...), code};
}

/// Builds an Error with exit code `failure` and a fmt-formatted message.
template <typename... Args>
[[nodiscard]] Error make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...), ExitCode::failure};
}

/// Either a value of type T or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  /// True when a value is held.
  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  /// The value; only valid when ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; only valid when !ok().
  [[nodiscard]] const Error& error() const& { return std::get<1>(v_); }
  [[nodiscard]] Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

/// Success-or-Error without a value.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  [[nodiscard]] const Error& error() const& { return error_; }
  [[nodiscard]] Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

/// A successful Result<void>.
inline Result<void> ok() { return {}; }

}  // namespace hozo
