#pragma once
// Time helpers: durations and ISO-8601 timestamps; a Clock interface so tests can fake time.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hozo {

using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;
using SystemTime = std::chrono::system_clock::time_point;

/// Parses "90", "90s", "5m", "6h", "1d" (also "1h30m"); nullopt when malformed.
std::optional<Seconds> parse_duration(std::string_view text);

/// Formats seconds as a short human duration: "45s", "5m 3s", "2h 0m".
std::string format_duration(std::chrono::duration<double> d);

/// UTC ISO-8601 with seconds: "2026-11-24T08:00:00Z".
std::string iso8601_utc(SystemTime t);

/// Parses the format produced by iso8601_utc; nullopt when malformed.
std::optional<SystemTime> parse_iso8601_utc(std::string_view text);

/// Wall and monotonic time, behind an interface so tests can substitute a fake.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Wall-clock time (for records shown to people).
  virtual SystemTime now() const = 0;
  /// Monotonic time (for deadlines and measured durations).
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  /// Sleeps (a fake clock just advances).
  virtual void sleep_for(Millis d) = 0;
};

/// The real clock.
class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point steady_now() const override { return std::chrono::steady_clock::now(); }
  void sleep_for(Millis d) override;
};

}  // namespace hozo
