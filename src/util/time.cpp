#include "hozo/util/time.hpp"

#include <cstdio>
#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo {

std::optional<Seconds> parse_duration(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (const auto plain = parse_int(text)) return Seconds(*plain);
  long long total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    if (j == i || j == text.size()) return std::nullopt;
    const auto number = parse_int(text.substr(i, j - i));
    if (!number || *number > 100000000) return std::nullopt;
    long long unit = 0;
    switch (text[j]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return std::nullopt;
    }
    total += *number * unit;
    i = j + 1;
  }
  return Seconds(total);
}

std::string format_duration(std::chrono::duration<double> d) {
  const double s = d.count();
  if (s < 10) return fmt::format("{:.1f}s", s);
  const auto whole = static_cast<long long>(s + 0.5);
  if (whole < 60) return fmt::format("{}s", whole);
  if (whole < 3600) return fmt::format("{}m {}s", whole / 60, whole % 60);
  return fmt::format("{}h {}m", whole / 3600, (whole % 3600) / 60);
}

std::string iso8601_utc(SystemTime t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::optional<SystemTime> parse_iso8601_utc(std::string_view text) {
  if (text.size() != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != 'Z') {
    return std::nullopt;
  }
  const auto num = [&](std::size_t pos, std::size_t len) { return parse_int(text.substr(pos, len)); };
  const auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 ||
      *s > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = static_cast<int>(*y - 1900);
  tm.tm_mon = static_cast<int>(*mo - 1);
  tm.tm_mday = static_cast<int>(*d);
  tm.tm_hour = static_cast<int>(*h);
  tm.tm_min = static_cast<int>(*mi);
  tm.tm_sec = static_cast<int>(*s);
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

void SystemClock::sleep_for(Millis d) { std::this_thread::sleep_for(d); }

}  // namespace hozo
