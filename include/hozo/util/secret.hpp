#pragma once
// A string that must never reach a log, an error message, `jobs show` or the state file.

#include <string>
#include <utility>

#include <fmt/format.h>

namespace hozo {

/// Holds a secret value; formatting it with fmt prints a mask, never the value.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value, std::string origin = {}) : value_(std::move(value)), origin_(std::move(origin)) {}

  /// The secret itself: only for the wire (HTTP header, SMTP login, ...).
  [[nodiscard]] const std::string& reveal() const noexcept { return value_; }
  /// True when no value is set.
  [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
  /// Where the value came from, safe to show ("inline", "file /etc/hozo/ntfy.token", "credential ntfy").
  [[nodiscard]] const std::string& origin() const noexcept { return origin_; }
  /// What to show instead of the value.
  [[nodiscard]] std::string masked() const { return value_.empty() ? std::string() : std::string("********"); }

 private:
  std::string value_;
  std::string origin_;
};

}  // namespace hozo

template <>
struct fmt::formatter<hozo::Secret> : fmt::formatter<std::string> {
  template <typename Ctx>
  auto format(const hozo::Secret& s, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(s.masked(), ctx);
  }
};
