#pragma once
// Job schedules: the Python Hōzō forms ("daily HH:MM", "weekly <Day> HH:MM", both in UTC),
// 5-field cron expressions and the common systemd OnCalendar forms, parsed into one value type.
// The empty string means "manual only" (no timer).

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/util/result.hpp"

namespace hozo {

/// Which clock a schedule's wall times refer to.
enum class TimeZone { utc, local };

/// A parsed schedule: the set of matching calendar times (second resolution) plus its time zone.
class Schedule {
 public:
  /// The syntax a schedule was written in.
  enum class Syntax { manual, legacy, cron, oncalendar };

  /// How the day-of-month and weekday restrictions combine.
  enum class DayMatch {
    all,  ///< both must match (systemd OnCalendar)
    any   ///< either may match when both are restricted (cron)
  };

  /// A schedule that never fires (manual runs only).
  Schedule() = default;

  /// True when the schedule never fires by itself.
  [[nodiscard]] bool is_manual() const noexcept { return syntax_ == Syntax::manual; }
  /// The syntax the text was written in.
  [[nodiscard]] Syntax syntax() const noexcept { return syntax_; }
  /// The text as written (trimmed).
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  /// The zone the wall times refer to: UTC for the legacy forms and OnCalendar "... UTC", else local.
  [[nodiscard]] TimeZone zone() const noexcept { return zone_; }

  /// The equivalent systemd OnCalendar expression, e.g. "Sun *-*-* 03:00:00 UTC".
  /// Error for manual schedules and cron expressions restricting both day of month and weekday.
  [[nodiscard]] Result<std::string> to_oncalendar() const;

  /// The OnCalendar expressions whose union is this schedule (a timer may have several
  /// OnCalendar= lines): one, or two for a cron expression restricting both the day of month
  /// and the weekday (the days of month, and the weekdays). Error for manual schedules.
  [[nodiscard]] Result<std::vector<std::string>> to_oncalendar_all() const;

  /// The equivalent 5-field cron expression (best effort). Cron has no time zone field: run it
  /// in zone(). Error for manual schedules, seconds other than :00 and OnCalendar expressions
  /// restricting both the date and the weekday (cron would OR them).
  [[nodiscard]] Result<std::string> to_cron() const;

  /// to_cron() with every wall time moved by `offset` (local time = zone() time + offset), for
  /// running a UTC schedule from a cron in a zone with a fixed offset. Only schedules that fire at
  /// one time of day on any day of the month can be moved (the legacy daily/weekly forms and cron
  /// expressions like them); the weekdays move with a day change. Error otherwise.
  [[nodiscard]] Result<std::string> to_cron_shifted(std::chrono::minutes offset) const;

  /// The first matching time strictly after `after`, reading wall times in `zone`;
  /// nullopt for manual schedules (or none within the next 30 years).
  [[nodiscard]] std::optional<std::chrono::system_clock::time_point> next_run(
      std::chrono::system_clock::time_point after, TimeZone zone) const;
  /// As above, in the schedule's own zone().
  [[nodiscard]] std::optional<std::chrono::system_clock::time_point> next_run(
      std::chrono::system_clock::time_point after) const {
    return next_run(after, zone_);
  }

  /// True when the given civil date/time matches (month 1..12, day 1..31, weekday 0 = Sunday).
  [[nodiscard]] bool matches(int month, int day, int weekday, int hour, int minute, int second) const;

 private:
  [[nodiscard]] bool day_matches(int month, int day, int weekday) const;
  friend Result<Schedule> parse_schedule(std::string_view text);

  Syntax syntax_ = Syntax::manual;
  std::string text_;
  TimeZone zone_ = TimeZone::local;
  DayMatch day_match_ = DayMatch::all;
  bool days_restricted_ = false;      ///< day-of-month field was not "*"
  bool weekdays_restricted_ = false;  ///< weekday field was not "*"
  std::bitset<7> weekdays_;           ///< bit 0 = Sunday
  std::bitset<13> months_;            ///< bits 1..12
  std::bitset<32> days_;              ///< bits 1..31
  std::bitset<24> hours_;
  std::bitset<60> minutes_;
  std::bitset<60> seconds_;
};

/// Parses a schedule string; "" (or only blanks) is a manual schedule.
/// Accepted: "daily HH:MM", "weekly <Day> HH:MM" (UTC, day names case-insensitive, full or
/// 3 letters), cron "M H DOM MON DOW" (lists, ranges, steps, names; @daily and friends) and
/// OnCalendar "[Weekdays] [[*-]MM-DD] [HH:MM[:SS]] [UTC]" plus minutely/hourly/daily/weekly/
/// monthly/quarterly/semiannually/yearly. The error message says what is wrong.
Result<Schedule> parse_schedule(std::string_view text);

}  // namespace hozo
