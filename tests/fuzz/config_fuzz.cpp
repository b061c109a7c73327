// libFuzzer target: arbitrary bytes -> parse_config (and the schedule parser).
// Invariants checked besides "no crash, no leak, no UB, no escaping exception":
//  - parse_config succeeds exactly when it reports no issues, and fails with ExitCode::config;
//  - a schedule's OnCalendar form parses again to the same OnCalendar form.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/schedule.hpp"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

void fuzz_schedule(std::string_view text) {
  auto s = hozo::parse_schedule(text);
  if (!s) return;
  auto oncalendar = s->to_oncalendar();
  if (oncalendar) {
    auto again = hozo::parse_schedule(*oncalendar);
    check(again.ok());
    auto twice = again->to_oncalendar();
    check(twice.ok() && *twice == *oncalendar);
  }
  (void)s->to_cron();
  (void)s->next_run(std::chrono::system_clock::time_point{}, hozo::TimeZone::utc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;  // larger inputs only slow the search down
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  std::vector<hozo::ConfigIssue> issues;
  auto config = hozo::parse_config(text, "fuzz.yaml", &issues);
  const bool any_error = std::any_of(issues.begin(), issues.end(),
                                     [](const hozo::ConfigIssue& i) { return i.severity == hozo::Severity::error; });
  check(config.ok() == !any_error);
  if (!config.ok()) {
    check(config.error().code == hozo::ExitCode::config);
    check(!config.error().message.empty());
  }

  if (size <= 256) fuzz_schedule(text);
  return 0;
}
