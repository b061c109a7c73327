#include "hozo/schedule.hpp"

#include <array>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

using Mask = std::uint64_t;

constexpr Mask bit(int i) { return Mask{1} << static_cast<unsigned>(i); }

/// Bits lo..hi set.
constexpr Mask span(int lo, int hi) {
  Mask m = 0;
  for (int i = lo; i <= hi; ++i) m |= bit(i);
  return m;
}

constexpr std::array<std::string_view, 7> kDayShort{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr std::array<std::string_view, 7> kDayLong{"sunday",   "monday", "tuesday", "wednesday",
                                                   "thursday", "friday", "saturday"};
constexpr std::array<std::string_view, 7> kDayPretty{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonthShort{"jan", "feb", "mar", "apr", "may", "jun",
                                                       "jul", "aug", "sep", "oct", "nov", "dec"};

/// 0 = Sunday for a (case-insensitive) full or 3-letter English day name.
std::optional<int> weekday_from_name(std::string_view name) {
  const auto lower = to_lower(name);
  for (std::size_t i = 0; i < 7; ++i) {
    if (lower == kDayShort[i] || lower == kDayLong[i]) return static_cast<int>(i);
  }
  return std::nullopt;
}

std::optional<int> month_from_name(std::string_view name) {
  const auto lower = to_lower(name);
  for (std::size_t i = 0; i < 12; ++i) {
    if (lower == kMonthShort[i]) return static_cast<int>(i) + 1;
  }
  return std::nullopt;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

/// What one field of a cron or OnCalendar expression may contain.
struct FieldRule {
  std::string_view what;  ///< "minute", "hour", ...
  int lo;
  int hi;
  std::string_view range_sep;                              ///< "-" (cron) or ".." (OnCalendar)
  std::optional<int> (*name)(std::string_view) = nullptr;  ///< symbolic values, if any
};

Result<int> field_value(std::string_view text, const FieldRule& rule) {
  std::optional<long long> v = parse_int(text);
  if (!v && rule.name != nullptr) {
    if (const auto n = rule.name(text)) v = *n;
  }
  if (!v) return make_error(ExitCode::config, "{}: \"{}\" is not a number", rule.what, printable(text));
  if (*v < rule.lo || *v > rule.hi) {
    return make_error(ExitCode::config, "{}: {} is out of range {}..{}", rule.what, *v, rule.lo, rule.hi);
  }
  return static_cast<int>(*v);
}

/// Parses "*", "a", "a<sep>b", each optionally "/step", comma-separated, into a bit mask.
Result<Mask> parse_field(std::string_view text, const FieldRule& rule) {
  if (text.empty()) return make_error(ExitCode::config, "{}: empty field", rule.what);
  Mask mask = 0;
  for (const auto item : split(text, ',')) {
    if (item.empty()) return make_error(ExitCode::config, "{}: empty list item in \"{}\"", rule.what, text);
    std::string_view range = item;
    int step = 1;
    if (const auto slash = item.find('/'); slash != std::string_view::npos) {
      range = item.substr(0, slash);
      const auto s = parse_int(item.substr(slash + 1));
      if (!s || *s < 1 || *s > rule.hi) {
        return make_error(ExitCode::config, "{}: bad step in \"{}\"", rule.what, printable(item));
      }
      step = static_cast<int>(*s);
    }
    int first = rule.lo;
    int last = rule.hi;
    if (range != "*") {
      const auto sep = range.find(rule.range_sep);
      if (sep == std::string_view::npos) {
        auto v = field_value(range, rule);
        if (!v) return std::move(v).error();
        first = *v;
        // "a/step" means a, a+step, ... up to the maximum.
        last = item.find('/') != std::string_view::npos ? rule.hi : first;
      } else {
        auto a = field_value(range.substr(0, sep), rule);
        if (!a) return std::move(a).error();
        auto b = field_value(range.substr(sep + rule.range_sep.size()), rule);
        if (!b) return std::move(b).error();
        first = *a;
        last = *b;
        if (last < first) {
          return make_error(ExitCode::config, "{}: range \"{}\" runs backwards", rule.what, printable(range));
        }
      }
    }
    for (int v = first; v <= last; v += step) mask |= bit(v);
  }
  return mask;
}

/// Whether a cron field may be written starting with '*': not for the day of month and weekday
/// when both are restricted, since cron treats a field starting with '*' as unrestricted and then
/// requires both to match instead of either.
enum class Star { allowed, forbidden };

/// Formats a mask compactly: "*", an arithmetic series "a/step" (OnCalendar) or "*/step" /
/// "a-hi/step" (cron), else ranges and lists.
std::string format_field(Mask mask, int lo, int hi, bool cron, int width, Star star = Star::allowed) {
  if (mask == span(lo, hi)) return star == Star::allowed ? "*" : fmt::format("{}-{}", lo, hi);
  const auto num = [&](int v) { return fmt::format("{:0{}}", v, width); };
  std::vector<int> values;
  for (int v = lo; v <= hi; ++v) {
    if ((mask & bit(v)) != 0) values.push_back(v);
  }
  if (values.size() >= 3) {
    const int step = values[1] - values[0];
    bool series = step > 1 && values.back() + step > hi;
    for (std::size_t i = 1; series && i < values.size(); ++i) series = values[i] - values[i - 1] == step;
    if (series) {
      if (cron) {
        return values[0] == lo && star == Star::allowed ? fmt::format("*/{}", step)
                                                        : fmt::format("{}-{}/{}", values[0], hi, step);
      }
      return fmt::format("{}/{}", num(values[0]), step);
    }
  }
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < values.size();) {
    std::size_t j = i;
    while (j + 1 < values.size() && values[j + 1] == values[j] + 1) ++j;
    if (j >= i + 2) {
      parts.push_back(num(values[i]) + (cron ? "-" : "..") + num(values[j]));
    } else {
      for (std::size_t k = i; k <= j; ++k) parts.push_back(num(values[k]));
    }
    i = j + 1;
  }
  return join(parts, ",");
}

/// "Mon..Fri", "Sat,Sun", ... in systemd's Monday-first order.
std::string format_weekdays(Mask mask) {
  std::vector<int> order;  // Monday-first day numbers (0 = Sunday) that are set
  for (int i = 1; i <= 7; ++i) {
    if ((mask & bit(i % 7)) != 0) order.push_back(i);
  }
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && order[j + 1] == order[j] + 1) ++j;
    const auto name = [&](std::size_t k) { return std::string(kDayPretty[static_cast<std::size_t>(order[k] % 7)]); };
    if (j >= i + 2) {
      parts.push_back(name(i) + ".." + name(j));
    } else {
      for (std::size_t k = i; k <= j; ++k) parts.push_back(name(k));
    }
    i = j + 1;
  }
  return join(parts, ",");
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr std::array<int, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[static_cast<std::size_t>(m - 1)];
}

Result<std::pair<int, int>> parse_hh_mm(std::string_view text) {
  const auto parts = split(text, ':');
  if (parts.size() == 2 && !parts[0].empty() && parts[0].size() <= 2 && parts[1].size() == 2) {
    const auto h = parse_int(parts[0]);
    const auto m = parse_int(parts[1]);
    if (h && m && *h <= 23 && *m <= 59) return std::pair{static_cast<int>(*h), static_cast<int>(*m)};
  }
  return make_error(ExitCode::config, "bad time \"{}\" (expected HH:MM, 00:00..23:59)", printable(text));
}

}  // namespace

bool Schedule::matches(int month, int day, int weekday, int hour, int minute, int second) const {
  if (is_manual()) return false;
  if (month < 1 || month > 12 || day < 1 || day > 31 || weekday < 0 || weekday > 6) return false;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  if (!hours_.test(static_cast<std::size_t>(hour)) || !minutes_.test(static_cast<std::size_t>(minute)) ||
      !seconds_.test(static_cast<std::size_t>(second))) {
    return false;
  }
  return day_matches(month, day, weekday);
}

bool Schedule::day_matches(int month, int day, int weekday) const {
  if (!months_.test(static_cast<std::size_t>(month))) return false;
  const bool day_ok = days_.test(static_cast<std::size_t>(day));
  const bool weekday_ok = weekdays_.test(static_cast<std::size_t>(weekday));
  if (day_match_ == DayMatch::any && days_restricted_ && weekdays_restricted_) return day_ok || weekday_ok;
  return day_ok && weekday_ok;
}

Result<std::string> Schedule::to_oncalendar() const {
  if (is_manual()) return make_error(ExitCode::config, "a manual schedule has no OnCalendar form");
  if (day_match_ == DayMatch::any && days_restricted_ && weekdays_restricted_) {
    return make_error(ExitCode::config,
                      "\"{}\" fires on matching days of the month OR matching weekdays; "
                      "OnCalendar cannot express that in one expression",
                      text_);
  }
  std::string out;
  if (weekdays_restricted_) out = format_weekdays(weekdays_.to_ullong()) + " ";
  out += fmt::format(
      "*-{}-{} {}:{}:{}", format_field(months_.to_ullong(), 1, 12, false, 2),
      format_field(days_.to_ullong(), 1, 31, false, 2), format_field(hours_.to_ullong(), 0, 23, false, 2),
      format_field(minutes_.to_ullong(), 0, 59, false, 2), format_field(seconds_.to_ullong(), 0, 59, false, 2));
  if (zone_ == TimeZone::utc) out += " UTC";
  return out;
}

Result<std::vector<std::string>> Schedule::to_oncalendar_all() const {
  if (day_match_ == DayMatch::any && days_restricted_ && weekdays_restricted_) {
    Schedule by_day = *this;  // the days of the month, any weekday
    by_day.day_match_ = DayMatch::all;
    by_day.weekdays_restricted_ = false;
    by_day.weekdays_.set();
    Schedule by_weekday = *this;  // the weekdays, any day of the month
    by_weekday.day_match_ = DayMatch::all;
    by_weekday.days_restricted_ = false;
    by_weekday.days_ = std::bitset<32>(span(1, 31));
    auto a = by_day.to_oncalendar();
    if (!a) return std::move(a).error();
    auto b = by_weekday.to_oncalendar();
    if (!b) return std::move(b).error();
    return std::vector<std::string>{std::move(*a), std::move(*b)};
  }
  auto one = to_oncalendar();
  if (!one) return std::move(one).error();
  return std::vector<std::string>{std::move(*one)};
}

Result<std::string> Schedule::to_cron() const {
  if (is_manual()) return make_error(ExitCode::config, "a manual schedule has no cron form");
  if (seconds_ != std::bitset<60>(1)) {
    return make_error(ExitCode::config, "\"{}\" fires at seconds other than :00; cron cannot express that", text_);
  }
  if (day_match_ == DayMatch::all && days_restricted_ && weekdays_restricted_) {
    return make_error(ExitCode::config,
                      "\"{}\" needs both the date and the weekday to match; cron would fire on either", text_);
  }
  // Both restricted (cron's "either matches"): neither field may start with '*'.
  const Star star = days_restricted_ && weekdays_restricted_ ? Star::forbidden : Star::allowed;
  return fmt::format("{} {} {} {} {}", format_field(minutes_.to_ullong(), 0, 59, true, 1),
                     format_field(hours_.to_ullong(), 0, 23, true, 1),
                     format_field(days_.to_ullong(), 1, 31, true, 1, star),
                     format_field(months_.to_ullong(), 1, 12, true, 1),
                     format_field(weekdays_.to_ullong(), 0, 6, true, 1, star));
}

Result<std::string> Schedule::to_cron_shifted(std::chrono::minutes offset) const {
  if (offset.count() == 0) return to_cron();
  if (is_manual()) return make_error(ExitCode::config, "a manual schedule has no cron form");
  if (minutes_.count() != 1 || hours_.count() != 1 || days_restricted_ || seconds_ != std::bitset<60>(1)) {
    return make_error(ExitCode::config,
                      "\"{}\" cannot be moved to local time for cron (only one time of day on any day of the month "
                      "can be)",
                      text_);
  }
  int minute = 0;
  int hour = 0;
  while (!minutes_.test(static_cast<std::size_t>(minute))) ++minute;
  while (!hours_.test(static_cast<std::size_t>(hour))) ++hour;
  const long long total = hour * 60LL + minute + offset.count();
  const long long day_shift = total >= 0 ? total / 1440 : -((-total + 1439) / 1440);
  const long long local = total - day_shift * 1440;
  Schedule moved = *this;
  moved.minutes_.reset();
  moved.minutes_.set(static_cast<std::size_t>(local % 60));
  moved.hours_.reset();
  moved.hours_.set(static_cast<std::size_t>(local / 60));
  if (weekdays_restricted_) {
    moved.weekdays_.reset();
    for (int d = 0; d < 7; ++d) {
      if (weekdays_.test(static_cast<std::size_t>(d))) {
        moved.weekdays_.set(static_cast<std::size_t>((((d + day_shift) % 7) + 7) % 7));
      }
    }
  }
  return moved.to_cron();
}

std::optional<std::chrono::system_clock::time_point> Schedule::next_run(std::chrono::system_clock::time_point after,
                                                                        TimeZone zone) const {
  using namespace std::chrono;
  if (is_manual()) return std::nullopt;
  const auto start = floor<seconds>(after) + seconds(1);  // strictly after
  const std::time_t start_t = system_clock::to_time_t(start);
  std::tm tm{};
  if (zone == TimeZone::utc) {
    gmtime_r(&start_t, &tm);
  } else {
    localtime_r(&start_t, &tm);
  }
  year_month_day date{year(tm.tm_year + 1900), month(static_cast<unsigned>(tm.tm_mon + 1)),
                      day(static_cast<unsigned>(tm.tm_mday))};
  const int start_secs = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;

  // The first instant after `after` whose wall time in `zone` is d h:m:s. Like systemd timers, a
  // local time skipped by a DST change has none (that day is skipped) and one that happens twice
  // counts its first occurrence.
  const auto to_time_point = [&](const year_month_day& d, int h, int m,
                                 int s) -> std::optional<system_clock::time_point> {
    if (zone == TimeZone::utc) return sys_days(d) + hours(h) + minutes(m) + seconds(s);
    // The wall time read as if it were UTC, minus the UTC offset in force around it. Around a DST
    // change two offsets are in force (a day before and a day after it): each gives a candidate,
    // kept when it really is that wall time. (mktime does the same, far slower: it re-checks the
    // zone file and iterates on every call, and the status of 200 jobs calls it hundreds of times.)
    const std::time_t naive = system_clock::to_time_t(sys_days(d) + hours(h) + minutes(m) + seconds(s));
    std::optional<system_clock::time_point> best;
    long previous_offset = -1'000'000;
    for (const std::time_t probe : {naive - 86400, naive + 86400}) {
      std::tm around{};
      if (localtime_r(&probe, &around) == nullptr || around.tm_gmtoff == previous_offset) continue;
      previous_offset = around.tm_gmtoff;
      const std::time_t t = naive - around.tm_gmtoff;
      std::tm back{};
      if (localtime_r(&t, &back) == nullptr) continue;
      if (back.tm_year != static_cast<int>(d.year()) - 1900 ||
          back.tm_mon != static_cast<int>(static_cast<unsigned>(d.month())) - 1 ||
          back.tm_mday != static_cast<int>(static_cast<unsigned>(d.day())) || back.tm_hour != h || back.tm_min != m ||
          back.tm_sec != s) {
        continue;  // not this wall time (skipped by a DST change, or not with this offset)
      }
      const auto tp = system_clock::from_time_t(t);
      if (tp > after && (!best || tp < *best)) best = tp;
    }
    return best;
  };

  constexpr int kMaxDays = 366 * 30;
  for (int offset = 0; offset < kMaxDays; ++offset) {
    const auto d = year_month_day(sys_days(date) + days(offset));
    const int mon = static_cast<int>(static_cast<unsigned>(d.month()));
    const int dom = static_cast<int>(static_cast<unsigned>(d.day()));
    const int wd = static_cast<int>(weekday(sys_days(d)).c_encoding());
    if (!day_matches(mon, dom, wd)) continue;
    const int floor_secs = offset == 0 ? start_secs : 0;
    for (int h = floor_secs / 3600; h < 24; ++h) {
      if (!hours_.test(static_cast<std::size_t>(h))) continue;
      for (int m = 0; m < 60; ++m) {
        if (!minutes_.test(static_cast<std::size_t>(m)) || h * 3600 + m * 60 + 59 < floor_secs) continue;
        for (int s = 0; s < 60; ++s) {
          if (h * 3600 + m * 60 + s < floor_secs || !matches(mon, dom, wd, h, m, s)) continue;
          const auto tp = to_time_point(d, h, m, s);
          if (tp && *tp > after) return tp;
        }
      }
    }
  }
  return std::nullopt;
}

Result<Schedule> parse_schedule(std::string_view input) {
  Schedule s;
  const auto text = trim(input);
  s.text_ = std::string(text);
  if (text.empty()) return s;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      if (c == '\t') continue;
      return make_error(ExitCode::config, "schedule contains a control or non-ASCII character");
    }
  }
  auto tokens = words(text);
  const auto first = to_lower(tokens[0]);

  const auto set_cron = [&s](std::string_view expr) -> Result<void> {
    const auto f = words(expr);
    if (f.size() != 5) {
      return make_error(ExitCode::config, "cron expression needs 5 fields (minute hour day month weekday), got {}",
                        f.size());
    }
    const FieldRule minute{"minute", 0, 59, "-"};
    const FieldRule hour{"hour", 0, 23, "-"};
    const FieldRule dom{"day of month", 1, 31, "-"};
    const FieldRule mon{"month", 1, 12, "-", month_from_name};
    const FieldRule dow{"weekday", 0, 7, "-", weekday_from_name};
    auto mi = parse_field(f[0], minute);
    if (!mi) return std::move(mi).error();
    auto ho = parse_field(f[1], hour);
    if (!ho) return std::move(ho).error();
    auto da = parse_field(f[2], dom);
    if (!da) return std::move(da).error();
    auto mo = parse_field(f[3], mon);
    if (!mo) return std::move(mo).error();
    auto wd = parse_field(f[4], dow);
    if (!wd) return std::move(wd).error();
    Mask days_of_week = *wd;
    if ((days_of_week & bit(7)) != 0) days_of_week = (days_of_week & ~bit(7)) | bit(0);  // 7 = Sunday
    s.syntax_ = Schedule::Syntax::cron;
    s.zone_ = TimeZone::local;
    s.day_match_ = Schedule::DayMatch::any;
    s.minutes_ = std::bitset<60>(*mi);
    s.hours_ = std::bitset<24>(*ho);
    s.days_ = std::bitset<32>(*da);
    s.months_ = std::bitset<13>(*mo);
    s.weekdays_ = std::bitset<7>(days_of_week);
    s.seconds_ = std::bitset<60>(1);
    s.days_restricted_ = f[2].front() != '*';
    s.weekdays_restricted_ = f[4].front() != '*';
    return ok();
  };

  Result<void> outcome;
  if (first.front() == '@') {
    // cron macros
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kMacros{{
        {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"},
        {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"},
        {"@daily", "0 0 * * *"},
        {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    }};
    outcome = make_error(ExitCode::config, "unknown cron macro \"{}\"", printable(text));
    for (const auto& [name, expr] : kMacros) {
      if (tokens.size() == 1 && first == name) outcome = set_cron(expr);
    }
  } else if ((first == "daily" || first == "weekly") && tokens.size() > 1 && to_lower(tokens[1]) != "utc") {
    // The Python Hōzō forms: "daily HH:MM" and "weekly <Day> HH:MM", in UTC.
    const bool weekly = first == "weekly";
    if (tokens.size() != (weekly ? 3U : 2U)) {
      return make_error(ExitCode::config, "expected \"{}\"", weekly ? "weekly <Day> HH:MM" : "daily HH:MM");
    }
    auto hm = parse_hh_mm(tokens.back());
    if (!hm) return std::move(hm).error();
    s.syntax_ = Schedule::Syntax::legacy;
    s.zone_ = TimeZone::utc;
    s.months_ = std::bitset<13>(span(1, 12));
    s.days_ = std::bitset<32>(span(1, 31));
    s.weekdays_ = std::bitset<7>(span(0, 6));
    s.hours_.set(static_cast<std::size_t>(hm->first));
    s.minutes_.set(static_cast<std::size_t>(hm->second));
    s.seconds_.set(0);
    if (weekly) {
      const auto wd = weekday_from_name(tokens[1]);
      if (!wd)
        return make_error(ExitCode::config, "unknown day \"{}\" (expected e.g. Sunday or Sun)", printable(tokens[1]));
      s.weekdays_.reset();
      s.weekdays_.set(static_cast<std::size_t>(*wd));
      s.weekdays_restricted_ = true;
    }
    outcome = ok();
  } else if (tokens.size() == 5) {
    outcome = set_cron(text);
  } else {
    // systemd OnCalendar.
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kShorthands{{
        {"minutely", "*-*-* *:*:00"},
        {"hourly", "*-*-* *:00:00"},
        {"daily", "*-*-* 00:00:00"},
        {"weekly", "Mon *-*-* 00:00:00"},
        {"monthly", "*-*-01 00:00:00"},
        {"yearly", "*-01-01 00:00:00"},
        {"annually", "*-01-01 00:00:00"},
        {"quarterly", "*-01,04,07,10-01 00:00:00"},
        {"semiannually", "*-01,07-01 00:00:00"},
        {"semi-annually", "*-01,07-01 00:00:00"},
    }};
    std::string expanded;
    if (tokens.size() <= 2) {
      for (const auto& [name, expr] : kShorthands) {
        if (first == name) expanded = std::string(expr) + (tokens.size() == 2 ? " " + std::string(tokens[1]) : "");
      }
    }
    if (!expanded.empty()) tokens = words(expanded);  // points into `expanded`, which outlives tokens
    if (tokens.size() > 1 && (tokens.back() == "UTC" || to_lower(tokens.back()) == "utc")) {
      s.zone_ = TimeZone::utc;
      tokens.pop_back();
    }
    std::string_view weekday_spec;
    std::string_view date_spec = "*-*-*";
    std::string_view time_spec = "00:00:00";
    int stage = 0;  // 0: weekday allowed, 1: date allowed, 2: time allowed, 3: nothing more
    for (const auto tok : tokens) {
      const bool is_time = tok.find(':') != std::string_view::npos;
      const bool is_date = !is_time && tok.find('-') != std::string_view::npos;
      const auto lead = static_cast<unsigned char>(tok.front());
      const bool is_weekday = !is_time && !is_date && std::isalpha(lead) != 0;
      if (is_weekday && stage == 0) {
        weekday_spec = tok;
        stage = 1;
      } else if (is_date && stage <= 1) {
        date_spec = tok;
        stage = 2;
      } else if (is_time && stage <= 2) {
        time_spec = tok;
        stage = 3;
      } else {
        return make_error(ExitCode::config,
                          "cannot read \"{}\" in schedule \"{}\" (expected \"daily HH:MM\", \"weekly <Day> HH:MM\", "
                          "a 5-field cron expression or an OnCalendar expression like \"Mon..Fri *-*-* 02:30\")",
                          printable(tok), printable(text));
      }
    }
    if (date_spec.find('~') != std::string_view::npos) {
      return make_error(ExitCode::config, "the \"~\" (days from month end) syntax is not supported");
    }
    auto date_parts = split(date_spec, '-');
    if (date_parts.size() == 3) {
      if (date_parts[0] != "*") {
        return make_error(ExitCode::config, "year \"{}\": only \"*\" is supported", printable(date_parts[0]));
      }
      date_parts.erase(date_parts.begin());
    }
    if (date_parts.size() != 2) {
      return make_error(ExitCode::config, "bad date \"{}\" (expected *-MM-DD or MM-DD)", printable(date_spec));
    }
    const auto time_parts = split(time_spec, ':');
    if (time_parts.size() != 2 && time_parts.size() != 3) {
      return make_error(ExitCode::config, "bad time \"{}\" (expected HH:MM or HH:MM:SS)", printable(time_spec));
    }
    Mask weekday_mask = span(0, 6);
    if (!weekday_spec.empty()) {
      weekday_mask = 0;
      for (const auto item : split(weekday_spec, ',')) {
        const auto dots = item.find("..");
        const auto a = weekday_from_name(item.substr(0, dots));
        const auto b = dots == std::string_view::npos ? a : weekday_from_name(item.substr(dots + 2));
        if (!a || !b) return make_error(ExitCode::config, "unknown weekday in \"{}\"", printable(weekday_spec));
        for (int d = *a;; d = (d + 1) % 7) {  // ranges may wrap: Sat..Mon
          weekday_mask |= bit(d);
          if (d == *b) break;
        }
      }
      s.weekdays_restricted_ = true;
    }
    auto mo = parse_field(date_parts[0], {"month", 1, 12, ".."});
    if (!mo) return std::move(mo).error();
    auto da = parse_field(date_parts[1], {"day of month", 1, 31, ".."});
    if (!da) return std::move(da).error();
    auto ho = parse_field(time_parts[0], {"hour", 0, 23, ".."});
    if (!ho) return std::move(ho).error();
    auto mi = parse_field(time_parts[1], {"minute", 0, 59, ".."});
    if (!mi) return std::move(mi).error();
    Mask secs = bit(0);
    if (time_parts.size() == 3) {
      auto se = parse_field(time_parts[2], {"second", 0, 59, ".."});
      if (!se) return std::move(se).error();
      secs = *se;
    }
    s.syntax_ = Schedule::Syntax::oncalendar;
    s.day_match_ = Schedule::DayMatch::all;
    s.weekdays_ = std::bitset<7>(weekday_mask);
    s.months_ = std::bitset<13>(*mo);
    s.days_ = std::bitset<32>(*da);
    s.days_restricted_ = date_parts[1] != "*";
    s.hours_ = std::bitset<24>(*ho);
    s.minutes_ = std::bitset<60>(*mi);
    s.seconds_ = std::bitset<60>(secs);
    outcome = ok();
  }
  if (!outcome) return std::move(outcome).error();

  // Reject schedules that can never fire, such as *-02-30.
  if (!(s.day_match_ == Schedule::DayMatch::any && s.days_restricted_ && s.weekdays_restricted_)) {
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!s.months_.test(static_cast<std::size_t>(m))) continue;
      for (int d = 1; d <= days_in_month(2000, m) && !possible; ++d)
        possible = s.days_.test(static_cast<std::size_t>(d));
    }
    if (!possible) return make_error(ExitCode::config, "schedule \"{}\" never matches a real date", printable(text));
  }
  return s;
}

}  // namespace hozo
