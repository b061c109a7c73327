#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "hozo/schedule.hpp"
#include "hozo/util/time.hpp"

using namespace hozo;
using namespace std::chrono;

namespace {

Schedule parsed(std::string_view text) {
  auto s = parse_schedule(text);
  EXPECT_TRUE(s.ok()) << text << ": " << (s.ok() ? "" : s.error().message);
  return s.ok() ? *s : Schedule{};
}

std::string oncalendar(std::string_view text) {
  auto r = parsed(text).to_oncalendar();
  return r.ok() ? *r : "ERROR: " + r.error().message;
}

std::string cron(std::string_view text) {
  auto r = parsed(text).to_cron();
  return r.ok() ? *r : "ERROR: " + r.error().message;
}

SystemTime at(std::string_view iso) {
  const auto t = parse_iso8601_utc(iso);
  EXPECT_TRUE(t.has_value()) << iso;
  return t.value_or(SystemTime{});
}

std::string next_utc(std::string_view text, std::string_view after) {
  const auto n = parsed(text).next_run(at(after), TimeZone::utc);
  return n ? iso8601_utc(*n) : "never";
}

/// Sets $TZ for the lifetime of the object (local-time tests).
class ScopedTz {
 public:
  explicit ScopedTz(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (old_) {
      ::setenv("TZ", old_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTz(const ScopedTz&) = delete;
  ScopedTz& operator=(const ScopedTz&) = delete;

 private:
  std::optional<std::string> old_;
};

}  // namespace

TEST(Schedule, EmptyMeansManual) {
  for (const auto* text : {"", "   ", "\t"}) {
    const auto s = parsed(text);
    EXPECT_TRUE(s.is_manual());
    EXPECT_EQ(s.syntax(), Schedule::Syntax::manual);
    EXPECT_FALSE(s.next_run(at("2024-05-01T00:00:00Z")).has_value());
    EXPECT_FALSE(s.to_cron().ok());
    EXPECT_FALSE(s.to_oncalendar().ok());
  }
}

TEST(Schedule, LegacyDailyIsUtc) {
  const auto s = parsed("daily 03:00");
  EXPECT_EQ(s.syntax(), Schedule::Syntax::legacy);
  EXPECT_EQ(s.zone(), TimeZone::utc);
  EXPECT_EQ(oncalendar("daily 03:00"), "*-*-* 03:00:00 UTC");
  EXPECT_EQ(cron("daily 03:00"), "0 3 * * *");
  EXPECT_EQ(oncalendar("Daily 3:05"), "*-*-* 03:05:00 UTC");
}

TEST(Schedule, LegacyWeeklyDayNamesAreCaseInsensitive) {
  for (const auto* text : {"weekly Sunday 03:00", "weekly sunday 03:00", "WEEKLY SUN 03:00", "weekly sun 3:00"}) {
    EXPECT_EQ(oncalendar(text), "Sun *-*-* 03:00:00 UTC") << text;
    EXPECT_EQ(cron(text), "0 3 * * 0") << text;
  }
  EXPECT_EQ(oncalendar("weekly Wednesday 23:59"), "Wed *-*-* 23:59:00 UTC");
}

TEST(Schedule, LegacyErrors) {
  for (const auto* text : {"daily 24:00", "daily 3", "daily 03:60", "daily 03:00 extra", "weekly Funday 03:00",
                           "weekly 03:00", "weekly Sunday", "daily 3:5", "daily -1:00"}) {
    EXPECT_FALSE(parse_schedule(text).ok()) << text;
  }
  EXPECT_NE(parse_schedule("weekly Funday 03:00").error().message.find("Funday"), std::string::npos);
}

TEST(Schedule, CronBasics) {
  const auto s = parsed("30 2 * * 1-5");
  EXPECT_EQ(s.syntax(), Schedule::Syntax::cron);
  EXPECT_EQ(s.zone(), TimeZone::local);
  EXPECT_EQ(cron("30 2 * * 1-5"), "30 2 * * 1-5");
  EXPECT_EQ(oncalendar("30 2 * * 1-5"), "Mon..Fri *-*-* 02:30:00");
  EXPECT_EQ(cron("*/15 * * * *"), "*/15 * * * *");
  EXPECT_EQ(oncalendar("*/15 * * * *"), "*-*-* *:00/15:00");
  EXPECT_EQ(cron("0 0,12 1 * *"), "0 0,12 1 * *");
  EXPECT_EQ(cron("5/20 * * * *"), "5-59/20 * * * *");
  EXPECT_EQ(cron("0 1-3 * * *"), "0 1-3 * * *");
  EXPECT_EQ(cron("0 9-17/2 * * *"), "0 9,11,13,15,17 * * *");
}

TEST(Schedule, CronNamesAndSunday7) {
  EXPECT_EQ(cron("0 4 * jan,JUL sun"), "0 4 * 1,7 0");
  EXPECT_EQ(cron("0 4 * * 7"), "0 4 * * 0");
  EXPECT_EQ(cron("0 4 * * mon-fri"), "0 4 * * 1-5");
  EXPECT_EQ(oncalendar("0 4 * * sat,sun"), "Sat,Sun *-*-* 04:00:00");
}

TEST(Schedule, CronMacros) {
  EXPECT_EQ(cron("@daily"), "0 0 * * *");
  EXPECT_EQ(cron("@hourly"), "0 * * * *");
  EXPECT_EQ(cron("@weekly"), "0 0 * * 0");
  EXPECT_EQ(cron("@monthly"), "0 0 1 * *");
  EXPECT_EQ(cron("@yearly"), "0 0 1 1 *");
  EXPECT_FALSE(parse_schedule("@reboot").ok());
}

TEST(Schedule, CronErrors) {
  for (const auto* text : {"60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
                           "5-1 * * * *", "a * * * *", "1,,2 * * * *", "0 0 31 2 *", "0 0 30 feb *", "* * * * * *"}) {
    EXPECT_FALSE(parse_schedule(text).ok()) << text;
  }
  EXPECT_NE(parse_schedule("61 3 * * *").error().message.find("minute"), std::string::npos);
}

TEST(Schedule, CronDayOfMonthOrWeekday) {
  // Cron fires when EITHER the day of month or the weekday matches (both restricted).
  const auto s = parsed("0 0 13 * 5");
  EXPECT_TRUE(s.matches(9, 13, 3, 0, 0, 0));  // Wed the 13th
  EXPECT_TRUE(s.matches(9, 6, 5, 0, 0, 0));   // Fri the 6th
  EXPECT_FALSE(s.matches(9, 7, 6, 0, 0, 0));
  EXPECT_FALSE(s.to_oncalendar().ok());
  EXPECT_EQ(next_utc("0 0 13 * 5", "2024-09-01T00:00:00Z"), "2024-09-06T00:00:00Z");
}

TEST(Schedule, CronDayOrWeekdayNeverStartsWithAStar) {
  // cron treats a day-of-month or weekday field that starts with '*' as unrestricted, which turns
  // "either matches" into "both match": with both restricted, neither field may be written so.
  EXPECT_EQ(cron("0 3 1 * 0-6"), "0 3 1 * 0-6");      // every day, not only the 1st
  EXPECT_EQ(cron("0 3 1-31 * 1"), "0 3 1-31 * 1");    // every day, not only Mondays
  EXPECT_EQ(cron("0 3 1,11,21,31 * 1"), "0 3 1-31/10 * 1");
  EXPECT_EQ(cron("0 3 15 * 0,2,4,6"), "0 3 15 * 0-6/2");
  // Only one of them restricted: '*' forms stay.
  EXPECT_EQ(cron("0 3 */10 * *"), "0 3 */10 * *");
  EXPECT_EQ(cron("0 3 * * 0,2,4,6"), "0 3 * * */2");
}

TEST(Schedule, CronShiftedToAFixedOffset) {
  using std::chrono::minutes;
  EXPECT_EQ(*parsed("daily 02:00").to_cron_shifted(minutes(0)), "0 2 * * *");
  EXPECT_EQ(*parsed("daily 02:00").to_cron_shifted(minutes(330)), "30 7 * * *");   // UTC+5:30
  EXPECT_EQ(*parsed("daily 02:00").to_cron_shifted(minutes(-300)), "0 21 * * *");  // UTC-5, the day before
  EXPECT_EQ(*parsed("weekly Monday 01:00").to_cron_shifted(minutes(-120)), "0 23 * * 0");   // Sunday 23:00
  EXPECT_EQ(*parsed("weekly Saturday 23:30").to_cron_shifted(minutes(60)), "30 0 * * 0");   // Sunday 00:30
  EXPECT_EQ(*parsed("weekly Sunday 12:00").to_cron_shifted(minutes(600)), "0 22 * * 0");
  EXPECT_FALSE(parsed("0 */6 * * *").to_cron_shifted(minutes(60)).ok());  // several times a day
  EXPECT_FALSE(parsed("0 3 1 * *").to_cron_shifted(minutes(60)).ok());    // a day of the month
}

TEST(Schedule, OnCalendarShorthands) {
  EXPECT_EQ(oncalendar("daily"), "*-*-* 00:00:00");
  EXPECT_EQ(oncalendar("weekly"), "Mon *-*-* 00:00:00");
  EXPECT_EQ(oncalendar("hourly"), "*-*-* *:00:00");
  EXPECT_EQ(oncalendar("monthly"), "*-*-01 00:00:00");
  EXPECT_EQ(oncalendar("yearly"), "*-01-01 00:00:00");
  EXPECT_EQ(oncalendar("quarterly"), "*-01/3-01 00:00:00");
  EXPECT_EQ(oncalendar("daily UTC"), "*-*-* 00:00:00 UTC");
  EXPECT_EQ(parsed("daily").syntax(), Schedule::Syntax::oncalendar);
  EXPECT_EQ(parsed("daily").zone(), TimeZone::local);
}

TEST(Schedule, OnCalendarForms) {
  EXPECT_EQ(oncalendar("*-*-* 03:00:00"), "*-*-* 03:00:00");
  EXPECT_EQ(oncalendar("Mon..Fri *-*-* 02:30"), "Mon..Fri *-*-* 02:30:00");
  EXPECT_EQ(oncalendar("Sun 03:00"), "Sun *-*-* 03:00:00");
  EXPECT_EQ(oncalendar("Sat,Sun 04:00 UTC"), "Sat,Sun *-*-* 04:00:00 UTC");
  EXPECT_EQ(oncalendar("Sat..Mon 04:00"), "Mon,Sat,Sun *-*-* 04:00:00");  // wraps around
  EXPECT_EQ(oncalendar("*-*-01 00:00"), "*-*-01 00:00:00");
  EXPECT_EQ(oncalendar("01-15 12:00"), "*-01-15 12:00:00");
  EXPECT_EQ(oncalendar("*-*-* *:0/15"), "*-*-* *:00/15:00");
  EXPECT_EQ(oncalendar("Mon"), "Mon *-*-* 00:00:00");
  EXPECT_EQ(oncalendar("monday,Wednesday 1..3:00"), "Mon,Wed *-*-* 01..03:00:00");
  EXPECT_EQ(cron("Mon..Fri *-*-* 02:30"), "30 2 * * 1-5");
  EXPECT_EQ(cron("*-*-* 03:00:30"),
            "ERROR: \"*-*-* 03:00:30\" fires at seconds other than :00; cron cannot express that");
  EXPECT_FALSE(parsed("Fri *-*-13 00:00").to_cron().ok());  // AND of date and weekday
}

TEST(Schedule, OnCalendarErrors) {
  for (const auto* text :
       {"2025-01-01 00:00", "*-02-30 00:00", "Mon *-*-* 25:00", "Funday 03:00", "03:00 Mon", "*-*-* 03:00 Mon",
        "*-*~01", "*-13-01", "*-*-* 1:2:3:4", "Mon..Fri..Sat 00:00", "weekly Sunday 03:00 UTC extra", "every day"}) {
    EXPECT_FALSE(parse_schedule(text).ok()) << text;
  }
  EXPECT_NE(parse_schedule("\x01").error().message.find("control"), std::string::npos);
}

TEST(Schedule, NextRunUtc) {
  EXPECT_EQ(next_utc("daily 03:00", "2024-05-01T02:00:00Z"), "2024-05-01T03:00:00Z");
  EXPECT_EQ(next_utc("daily 03:00", "2024-05-01T03:00:00Z"), "2024-05-02T03:00:00Z");  // strictly after
  EXPECT_EQ(next_utc("weekly Sunday 03:00", "2024-05-01T12:00:00Z"), "2024-05-05T03:00:00Z");
  EXPECT_EQ(next_utc("*/15 * * * *", "2024-05-01T10:07:30Z"), "2024-05-01T10:15:00Z");
  EXPECT_EQ(next_utc("0 0 1 1 *", "2024-06-01T00:00:00Z"), "2025-01-01T00:00:00Z");
  EXPECT_EQ(next_utc("*-02-29 00:00", "2025-01-01T00:00:00Z"), "2028-02-29T00:00:00Z");
  EXPECT_EQ(next_utc("Fri *-*-13 00:00", "2024-01-01T00:00:00Z"), "2024-09-13T00:00:00Z");
  EXPECT_EQ(next_utc("*-12-31 23:59:59", "2024-12-31T23:59:58Z"), "2024-12-31T23:59:59Z");
  EXPECT_EQ(next_utc("*-12-31 23:59:59", "2024-12-31T23:59:59Z"), "2025-12-31T23:59:59Z");
}

TEST(Schedule, NextRunUsesOwnZoneByDefault) {
  const ScopedTz tz("EST5");  // fixed UTC-5, needs no tzdata
  const auto legacy = parsed("daily 03:00");
  EXPECT_EQ(iso8601_utc(*legacy.next_run(at("2024-05-01T00:00:00Z"))), "2024-05-01T03:00:00Z");
  const auto local = parsed("0 3 * * *");
  EXPECT_EQ(iso8601_utc(*local.next_run(at("2024-05-01T00:00:00Z"))), "2024-05-01T08:00:00Z");
  EXPECT_EQ(iso8601_utc(*local.next_run(at("2024-05-01T00:00:00Z"), TimeZone::utc)), "2024-05-01T03:00:00Z");
}

TEST(Schedule, TextIsKept) { EXPECT_EQ(parsed("  weekly Sunday 03:00 ").text(), "weekly Sunday 03:00"); }

// ------------------------------------------------------------------------------ conversions (more)

TEST(Schedule, ConversionsOfEveryForm) {
  // What `hozo schedule` writes into timer drop-ins and /etc/cron.d lines.
  EXPECT_EQ(oncalendar("weekly Sat 23:15"), "Sat *-*-* 23:15:00 UTC");
  EXPECT_EQ(cron("weekly Sat 23:15"), "15 23 * * 6");
  EXPECT_EQ(oncalendar("@daily"), "*-*-* 00:00:00");
  EXPECT_EQ(oncalendar("@weekly"), "Sun *-*-* 00:00:00");
  EXPECT_EQ(oncalendar("@monthly"), "*-*-01 00:00:00");
  EXPECT_EQ(oncalendar("@hourly"), "*-*-* *:00:00");
  EXPECT_EQ(oncalendar("0 3 1,15 * *"), "*-*-01,15 03:00:00");
  EXPECT_EQ(oncalendar("0 3 * 1-6 *"), "*-01..06-* 03:00:00");
  EXPECT_EQ(oncalendar("15,45 */6 * * *"), "*-*-* 00/6:15,45:00");
  EXPECT_EQ(cron("*-*-* 00/6:15,45"), "15,45 */6 * * *");
  EXPECT_EQ(cron("monthly"), "0 0 1 * *");
  EXPECT_EQ(cron("quarterly"), "0 0 1 */3 *");
  EXPECT_EQ(cron("Sat,Sun 04:00 UTC"), "0 4 * * 0,6");
  EXPECT_EQ(cron("daily UTC"), "0 0 * * *");
  EXPECT_EQ(parsed("daily UTC").zone(), TimeZone::utc);
  // Round trips: cron -> OnCalendar -> cron.
  for (const auto* text : {"30 2 * * 1-5", "0 4 * * 0,6", "*/15 * * * *", "0 0 1 1 *", "5 1 10-20 * *"}) {
    EXPECT_EQ(cron(oncalendar(text)), cron(text)) << text;
  }
}

TEST(Schedule, ConversionsThatCannotWork) {
  // cron ORs a restricted day of month with a restricted weekday; one OnCalendar line cannot.
  const auto either = parsed("0 0 13 * 5").to_oncalendar();
  ASSERT_FALSE(either.ok());
  EXPECT_EQ(either.error().code, ExitCode::config);
  EXPECT_NE(either.error().message.find("OR"), std::string::npos);
  // OnCalendar ANDs them; cron would OR them. Seconds other than :00 do not exist in cron.
  EXPECT_FALSE(parsed("Fri *-*-13 00:00").to_cron().ok());
  EXPECT_FALSE(parsed("*-*-* *:*:00/30").to_cron().ok());
  EXPECT_EQ(oncalendar("*-*-* *:*:00/30"), "*-*-* *:*:00,30");
  // Manual schedules have neither form.
  EXPECT_EQ(Schedule{}.to_oncalendar().error().code, ExitCode::config);
  EXPECT_EQ(Schedule{}.to_cron().error().code, ExitCode::config);
  // Invalid schedules never get that far.
  for (const auto* text : {"daily 25:00", "weekly Someday 01:00", "0 0 * * * *", "*-*-* 03:00 PST", "@reboot",
                           "Mon..Fun 00:00", "*-*-32 00:00", "dail 02:00"}) {
    EXPECT_FALSE(parse_schedule(text).ok()) << text;
  }
}

namespace {

/// Local wall time of `t` as "YYYY-MM-DD HH:MM:SS" (the format systemd-analyze prints).
std::string local_wall(SystemTime t) {
  const std::time_t tt = system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

}  // namespace

TEST(Schedule, NextRunInLocalTimeWithDst) {
  // US Eastern as a POSIX rule (no tzdata needed): DST from the 2nd Sunday of March 02:00 to
  // the 1st Sunday of November 02:00.
  const ScopedTz tz("EST5EDT,M3.2.0,M11.1.0");
  const auto s = parsed("*-*-* 03:00");  // local
  EXPECT_EQ(iso8601_utc(*s.next_run(at("2024-01-10T00:00:00Z"))), "2024-01-10T08:00:00Z");  // EST
  EXPECT_EQ(iso8601_utc(*s.next_run(at("2024-07-10T00:00:00Z"))), "2024-07-10T07:00:00Z");  // EDT
  EXPECT_EQ(local_wall(*s.next_run(at("2024-03-10T00:00:00Z"))), "2024-03-10 03:00:00");
  // Legacy forms stay UTC whatever TZ says.
  EXPECT_EQ(iso8601_utc(*parsed("daily 03:00").next_run(at("2024-07-10T00:00:00Z"))), "2024-07-10T03:00:00Z");
  // 02:30 does not exist on 2024-03-10 (02:00 EST -> 03:00 EDT): like systemd, skip that day.
  EXPECT_EQ(local_wall(*parsed("*-*-* 02:30").next_run(at("2024-03-09T20:00:00Z"))), "2024-03-11 02:30:00");
  // 01:30 happens twice on 2024-11-03: like systemd, the first (EDT) one, once.
  const auto twice = parsed("*-*-* 01:30");
  const auto first = twice.next_run(at("2024-11-03T00:00:00Z"));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(iso8601_utc(*first), "2024-11-03T05:30:00Z");
  EXPECT_EQ(iso8601_utc(*twice.next_run(*first)), "2024-11-04T06:30:00Z");
}

// ------------------------------------------------------------------------------ systemd agrees

namespace {

struct Shell {
  int status = -1;
  std::string out;
};

Shell shell(const std::string& command) {
  Shell r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int raw = ::pclose(p);
  if (raw != -1 && WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  return r;
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// What `systemd-analyze calendar` says: the normalized form and the elapse times in UTC
/// ("YYYY-MM-DD HH:MM:SS").
struct SystemdCalendar {
  std::string normalized;
  std::vector<std::string> elapses_utc;
  std::string raw;
};

SystemdCalendar systemd_calendar(const std::string& tz, const std::string& expr, SystemTime base, int iterations) {
  SystemdCalendar c;
  const auto epoch = duration_cast<seconds>(base.time_since_epoch()).count();
  const auto r = shell("TZ=" + quoted(tz) + " systemd-analyze calendar --base-time=@" + std::to_string(epoch) +
                       " --iterations=" + std::to_string(iterations) + " " + quoted(expr));
  c.raw = r.out;
  static const std::regex normalized(R"(^\s*Normalized form: (.*)$)");
  static const std::regex elapse(R"(^\s*(Next elapse|Iter(?:\.|ation) #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) .*$)");
  static const std::regex in_utc(R"(^\s*\(in UTC\): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$)");
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, normalized)) {
      c.normalized = m[1].str();
    } else if (std::regex_match(line, m, elapse)) {
      c.elapses_utc.push_back(m[2].str());  // local wall time unless TZ is UTC; replaced below
    } else if (std::regex_match(line, m, in_utc) && !c.elapses_utc.empty()) {
      c.elapses_utc.back() = m[1].str();
    }
  }
  return c;
}

std::string utc_wall(SystemTime t) {
  auto s = iso8601_utc(t);  // 2024-05-01T03:00:00Z
  s[10] = ' ';
  s.pop_back();
  return s;
}

}  // namespace

// hozo's OnCalendar output is what systemd normalizes it to, and systemd's next elapse times are
// hozo's next runs, in UTC and in a local zone with DST (TZ set for both).
TEST(ScheduleSystemd, CalendarAgreesWithSystemdAnalyze) {
  if (shell("command -v systemd-analyze").status != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  const std::vector<std::string> schedules{
      "daily 02:00",     "weekly Sunday 03:00", "30 2 * * 1-5",     "*/15 * * * *",     "0 4 * * sat,sun",
      "@monthly",        "quarterly",           "Sat..Mon 04:00",   "*-*-* 01..03:00",  "*-02-29 00:00",
      "Fri *-*-13 00:00", "*-*-* 02:30",        "*-*-* 01:30",      "0 */6 * * *",      "*-*-* *:30:00",
      "15,45 1 * * *",   "*-12-31 23:59:59",    "5/20 * * * *",     "daily UTC",        "Mon..Fri 22:00 UTC",
      "0 0 1 1 *",       "semiannually",        "*-01..03-01 00:00", "0 9-17/2 * * *"};
  const std::vector<SystemTime> bases{at("2024-05-01T00:00:00Z"), at("2024-03-09T20:00:00Z"),
                                      at("2024-11-02T12:00:00Z"), at("2025-02-27T10:11:12Z")};
  constexpr int kIterations = 8;
  int compared = 0;
  for (const char* zone : {"UTC", "EST5EDT,M3.2.0,M11.1.0"}) {
    const ScopedTz tz(zone);
    for (const auto& text : schedules) {
      const auto s = parsed(text);
      const auto expr = s.to_oncalendar();
      ASSERT_TRUE(expr.ok()) << text << ": " << expr.error().message;
      for (const auto base : bases) {
        const auto sd = systemd_calendar(zone, *expr, base, kIterations);
        EXPECT_EQ(sd.normalized, *expr) << text << " (TZ=" << zone << ")\n" << sd.raw;
        EXPECT_EQ(sd.elapses_utc.size(), static_cast<std::size_t>(kIterations)) << text << "\n" << sd.raw;
        std::vector<std::string> ours;
        auto t = base;
        for (int i = 0; i < kIterations; ++i) {
          const auto next = s.next_run(t);
          if (!next) break;
          ours.push_back(utc_wall(*next));
          t = *next;
        }
        EXPECT_EQ(ours, sd.elapses_utc) << text << " = " << *expr << " (TZ=" << zone << ", after "
                                        << iso8601_utc(base) << ")\n"
                                        << sd.raw;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 2 * 24 * 4);
}

TEST(Schedule, OnCalendarAllSplitsCronDayOrWeekday) {
  const auto both = parsed("0 0 13 * 5").to_oncalendar_all();
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(*both, (std::vector<std::string>{"*-*-13 00:00:00", "Fri *-*-* 00:00:00"}));
  const auto one = parsed("weekly Sunday 03:00").to_oncalendar_all();
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, (std::vector<std::string>{"Sun *-*-* 03:00:00 UTC"}));
  // OnCalendar ANDs date and weekday, so its own form stays one line.
  const auto anded = parsed("Fri *-*-13 00:00").to_oncalendar_all();
  ASSERT_TRUE(anded.ok());
  EXPECT_EQ(*anded, (std::vector<std::string>{"Fri *-*-13 00:00:00"}));
  EXPECT_FALSE(Schedule{}.to_oncalendar_all().ok());
}

// A timer with several OnCalendar= lines fires at the earliest of them: the union of systemd's
// elapses for the lines is hozo's run sequence.
TEST(ScheduleSystemd, SeveralOnCalendarLinesAgreeWithSystemdAnalyze) {
  if (shell("command -v systemd-analyze").status != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  const ScopedTz tz("UTC");
  constexpr int kIterations = 10;
  for (const char* text : {"0 0 13 * 5", "30 4 1,15 * mon", "0 12 1-7 * sun"}) {
    const auto s = parsed(text);
    const auto exprs = s.to_oncalendar_all();
    ASSERT_TRUE(exprs.ok()) << text;
    ASSERT_EQ(exprs->size(), 2U) << text;
    const auto base = at("2024-05-01T00:00:00Z");
    std::set<std::string> merged;
    for (const auto& e : *exprs) {
      const auto sd = systemd_calendar("UTC", e, base, kIterations);
      EXPECT_EQ(sd.normalized, e) << text;
      merged.insert(sd.elapses_utc.begin(), sd.elapses_utc.end());
    }
    std::vector<std::string> theirs(merged.begin(), merged.end());
    theirs.resize(kIterations);
    std::vector<std::string> ours;
    auto t = base;
    for (int i = 0; i < kIterations; ++i) {
      const auto next = s.next_run(t);
      ASSERT_TRUE(next.has_value());
      ours.push_back(utc_wall(*next));
      t = *next;
    }
    EXPECT_EQ(ours, theirs) << text;
  }
}
