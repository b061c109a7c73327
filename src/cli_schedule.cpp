// `hozo schedule`: turns each job's `schedule:` into a systemd timer drop-in
// (hozo@NAME.timer.d/schedule.conf, on top of the shipped hozo@.timer) or into /etc/cron.d lines,
// prints them, and with --install writes them (atomically) and prints or runs the systemctl
// commands that activate them.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cli_internal.hpp"
#include "hozo/process.hpp"
#include "hozo/schedule.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"

namespace hozo::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kSystemdDir = "/etc/systemd/system";
constexpr const char* kCronDir = "/etc/cron.d";
constexpr const char* kCronPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kCronFile = "hozo";  // /etc/cron.d/hozo (cron.d names: letters, digits, _ and - only)
constexpr const char* kDropInName = "schedule.conf";
constexpr const char* kConfigDropInName = "config.conf";  // hozo@NAME.service.d/: HOZO_CONFIG for -c

struct ScheduleOptions {
  std::vector<std::string> names;
  bool systemd = false;
  bool cron = false;
  bool install = false;
  bool enable = false;
  std::string dir;
};

/// One selected job and what its schedule becomes.
struct Entry {
  const Job* job = nullptr;
  bool manual = true;
  std::string value;  ///< the 5 cron fields (--cron)
  std::vector<std::string> calendars;  ///< the OnCalendar expressions (--systemd); their union is the schedule
  std::string error;  ///< why there is no value (conversion impossible)
  std::optional<std::chrono::system_clock::time_point> next;
  bool utc = false;
  std::string note;  ///< a comment for the cron line (a UTC schedule moved to local time)
};

/// Job names end up in file and unit names: accept only what the config loader accepts
/// (1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit), whatever the caller checked.
bool safe_instance_name(std::string_view name) {
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (name.empty() || name.size() > 64 || !alnum(name.front())) return false;
  for (const char c : name) {
    if (!alnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::string timer_unit(const Job& job) { return fmt::format("hozo@{}.timer", job.name); }

fs::path drop_in_path(const fs::path& dir, const Job& job) {
  return dir / fmt::format("hozo@{}.timer.d", job.name) / kDropInName;
}

std::string drop_in_text(const Entry& e) {
  std::string out = fmt::format(
      "# Written by `hozo schedule` from the schedule of job {} (\"{}\", {}); rerun it after changing the config.\n"
      "# The empty OnCalendar= drops the default of hozo@.timer.\n"
      "[Timer]\nOnCalendar=\n",
      e.job->name, e.job->schedule, e.utc ? "UTC" : "local time");
  for (const auto& c : e.calendars) out += fmt::format("OnCalendar={}\n", c);
  return out;
}

/// The path of the running hozo binary (what cron should start), else /usr/bin/hozo.
std::string self_path() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.is_absolute()) return exe.string();
  return "/usr/bin/hozo";
}

/// The local time zone's offset from UTC when it is the same all year (no DST), else nullopt.
std::optional<std::chrono::minutes> fixed_local_offset() {
  const std::time_t now = std::time(nullptr);
  constexpr std::time_t kQuarter = std::time_t{91} * 24 * 3600;
  std::optional<long> offset;
  for (int q = 0; q < 4; ++q) {
    const std::time_t t = now + q * kQuarter;
    std::tm tm{};
    localtime_r(&t, &tm);
    if (offset && *offset != tm.tm_gmtoff) return std::nullopt;
    offset = tm.tm_gmtoff;
  }
  return std::chrono::minutes(*offset / 60);
}

std::string format_offset(std::chrono::minutes offset) {
  const long long m = offset.count();
  return fmt::format("UTC{}{:02}:{:02}", m < 0 ? '-' : '+', std::llabs(m) / 60, std::llabs(m) % 60);
}

/// Why hozo@.service would not see this config file (PrivateTmp=yes hides /tmp and /var/tmp), or nullopt.
std::optional<std::string> hidden_from_service(const fs::path& config) {
  const std::string path = config.string();
  for (const std::string_view tmp : {"/tmp/", "/var/tmp/"}) {
    if (path.starts_with(tmp)) {
      const auto dir = tmp.substr(0, tmp.size() - 1);
      return fmt::format("the config {} is under {}, which hozo@.service cannot see (PrivateTmp=yes gives the "
                         "service its own empty {}); move it to /etc/hozo/ or another directory outside {}",
                         path, dir, dir, dir);
    }
  }
  return std::nullopt;
}

/// The service drop-in that makes the timer's run use this config (-c / HOZO_CONFIG), or
/// nullopt when it is the default one. Error for a path systemd would read differently.
Result<std::optional<std::string>> config_drop_in_text(const fs::path& config) {
  if (config == default_config_path()) return std::optional<std::string>();
  const std::string path = config.string();
  for (const char c : path) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("/._+,:@=~-").find(c) != std::string_view::npos;
    if (!safe) {
      return make_error(ExitCode::config,
                        "the config path {} has characters a systemd unit cannot carry as they are; move the config "
                        "to a plain path",
                        printable(path));
    }
  }
  return std::optional<std::string>(fmt::format(
      "# Written by `hozo schedule`: the timer's runs use the config it was run with.\n"
      "[Service]\nEnvironment=HOZO_CONFIG={}\n",
      path));
}

fs::path config_drop_in_path(const fs::path& dir, const Job& job) {
  return dir / fmt::format("hozo@{}.service.d", job.name) / kConfigDropInName;
}

fs::path absolute_config(const Globals& g) {
  std::error_code ec;
  const auto path = fs::absolute(config_path(g), ec);
  return ec ? config_path(g) : path.lexically_normal();
}

/// The command part of a cron line. cron hands it to /bin/sh and treats '%' as a newline.
std::string cron_command(const Globals& g, const Job& job) {
  std::vector<std::string> argv{self_path(), "-q"};
  const auto config = absolute_config(g);
  if (config != default_config_path()) {  // cron's hozo runs as root with the default config
    argv.emplace_back("-c");
    argv.push_back(config.string());
  }
  argv.emplace_back("jobs");
  argv.emplace_back("run");
  argv.push_back(job.name);
  std::string out;
  for (const char c : shell_join(argv)) {
    if (c == '%') out += '\\';
    out += c;
  }
  return out;
}

std::string cron_text(const Globals& g, const std::vector<Entry>& entries) {
  std::string out = fmt::format(
      "# /etc/cron.d/{}: written by `hozo schedule --cron` from {}; rerun it after changing the config.\n"
      "# Fields: minute hour day-of-month month weekday user command. cron uses its own (local) time zone.\n"
      "# cron's own PATH is /usr/bin:/bin; syncoid, zfs and zpool live in /usr/sbin.\n"
      "PATH={}\n",
      kCronFile, absolute_config(g).string(), kCronPath);
  for (const auto& e : entries) {
    if (e.manual) {
      out += fmt::format("# {}: manual (no schedule)\n", e.job->name);
    } else if (!e.error.empty()) {
      out += fmt::format("# {}: {}\n", e.job->name, e.error);
    } else {
      if (!e.note.empty()) out += fmt::format("# {}: {}\n", e.job->name, e.note);
      out += fmt::format("{} root {}\n", e.value, cron_command(g, *e.job));
    }
  }
  return out;
}

std::string next_text(const Entry& e) { return e.next ? iso8601_utc(*e.next) : std::string("-"); }

/// Runs systemctl (or whatever `systemctl` is first in PATH) without a shell.
void run_systemctl(const std::vector<std::string>& argv) {
  fmt::print("+ {}\n", shell_join(argv));
  ProcessOptions p;
  p.argv = argv;
  p.timeout = Millis(120'000);
  p.on_stdout_line = [](std::string_view line) { fmt::print("  {}\n", printable(line)); };
  p.on_stderr_line = [](std::string_view line) { fmt::print(stderr, "  {}\n", printable(line)); };
  p.capture_stdout = Capture::no;
  p.capture_stderr = Capture::no;
  p.cancel = &g_cancel;
  const auto r = unwrap(run_process(p));
  if (r.exit_code != 0) {
    leave(make_error(ExitCode::failure, "{} {}", shell_join(argv), describe_termination(r, p.timeout)));
  }
}

int cmd_schedule(const Globals& g, const ScheduleOptions& o) {
  const auto config = load(g);
  require_no_broken_jobs(config);  // timers written from a half-valid file would drop the broken jobs
  std::vector<const Job*> jobs;
  if (o.names.empty()) {
    for (const auto& job : config.jobs) jobs.push_back(&job);
  } else {
    jobs = select_jobs(config, o.names, false);
  }
  const bool cron = o.cron;
  const auto now = std::chrono::system_clock::now();
  std::vector<Entry> entries;
  bool conversion_failed = false;
  for (const Job* job : jobs) {
    if (!safe_instance_name(job->name)) {
      leave(make_error(ExitCode::config, "job name \"{}\" cannot be used in a unit or file name", printable(job->name)));
    }
    Entry e;
    e.job = job;
    const auto parsed = parse_schedule(job->schedule);
    if (!parsed) {
      e.manual = false;
      e.error = parsed.error().message;
    } else if (!parsed->is_manual()) {
      e.manual = false;
      e.utc = parsed->zone() == TimeZone::utc;
      e.next = parsed->next_run(now);
      if (cron) {
        // cron reads the fields in local time: a UTC schedule is moved by the local offset, which
        // must not change during the year.
        std::optional<std::chrono::minutes> offset = std::chrono::minutes(0);
        if (e.utc) offset = fixed_local_offset();
        if (!offset) {
          e.error = fmt::format(
              "\"{}\" is in UTC, and this machine's local time changes its UTC offset during the year (DST) while "
              "cron runs in local time: use the systemd timers (hozo schedule --install), or write the schedule as a "
              "cron expression in local time",
              job->schedule);
        } else if (auto value = parsed->to_cron_shifted(*offset)) {
          e.value = *value;
          if (offset->count() != 0) e.note = fmt::format("\"{}\" (UTC) in local time ({})", job->schedule, format_offset(*offset));
        } else {
          e.error = value.error().message;
        }
      } else {
        auto calendars = parsed->to_oncalendar_all();
        if (calendars) {
          e.calendars = *calendars;
        } else {
          e.error = calendars.error().message;
        }
      }
    }
    if (!e.manual && !e.error.empty()) conversion_failed = true;
    entries.push_back(std::move(e));
  }
  for (const auto& e : entries) {
    if (!e.error.empty()) {
      fmt::print(stderr, "hozo: job {}: schedule \"{}\": {}\n", e.job->name, e.job->schedule, e.error);
    }
  }
  if (o.install && conversion_failed) {
    leave(make_error(ExitCode::config, "nothing installed: fix the schedules above (or convert them with --{})",
                     cron ? "systemd" : "cron"));
  }
  if (cron && !o.install) {
    if (g.json) {
      auto arr = nlohmann::json::array();
      for (const auto& e : entries) {
        arr.push_back({{"name", e.job->name},
                       {"schedule", e.job->schedule},
                       {"manual", e.manual},
                       {"cron", e.error.empty() && !e.manual ? nlohmann::json(e.value) : nlohmann::json(nullptr)},
                       {"line", e.error.empty() && !e.manual
                                    ? nlohmann::json(fmt::format("{} root {}", e.value, cron_command(g, *e.job)))
                                    : nlohmann::json(nullptr)},
                       {"next_run", e.next ? nlohmann::json(iso8601_utc(*e.next)) : nlohmann::json(nullptr)},
                       {"error", e.error}});
      }
      print_json(arr);
    } else {
      fmt::print("{}", cron_text(g, entries));
    }
    return conversion_failed ? to_int(ExitCode::config) : 0;
  }
  if (cron) {  // --cron --install
    if (!o.names.empty()) {
      leave(make_error(ExitCode::usage, "--cron --install writes /etc/cron.d/{} for every job of the config; give no "
                                        "job names (or print single lines without --install)",
                       kCronFile));
    }
    const fs::path dir = o.dir.empty() ? fs::path(kCronDir) : fs::path(o.dir);
    unwrap(make_dirs(dir, 0755));
    const auto path = dir / kCronFile;
    unwrap(write_file_atomic(path, cron_text(g, entries), 0644));
    for (const auto& e : entries) {
      if (e.manual) fmt::print("{}: manual (no schedule), skipped\n", e.job->name);
    }
    fmt::print("wrote {} ({} job(s)); cron reads it by itself, nothing to reload\n", path.string(),
               std::count_if(entries.begin(), entries.end(), [](const Entry& e) { return !e.manual; }));
    return 0;
  }

  // systemd
  const auto config_drop_in = unwrap(config_drop_in_text(absolute_config(g)));
  if (config_drop_in) {
    if (const auto hidden = hidden_from_service(absolute_config(g))) {
      // Installing for real would give timers that fail with "config file does not exist".
      if (o.install && o.dir.empty()) leave(make_error(ExitCode::usage, "nothing installed: {}", *hidden));
      spdlog::warn("{}", *hidden);
    }
  }
  if (!o.install) {
    if (g.json) {
      auto arr = nlohmann::json::array();
      for (const auto& e : entries) {
        const bool has = !e.manual && e.error.empty();
        arr.push_back({{"name", e.job->name},
                       {"schedule", e.job->schedule},
                       {"manual", e.manual},
                       {"oncalendar", has ? nlohmann::json(e.calendars) : nlohmann::json(nullptr)},
                       {"timer", has ? nlohmann::json(timer_unit(*e.job)) : nlohmann::json(nullptr)},
                       {"drop_in", has ? nlohmann::json(fmt::format("hozo@{}.timer.d/{}", e.job->name, kDropInName))
                                       : nlohmann::json(nullptr)},
                       {"next_run", e.next ? nlohmann::json(iso8601_utc(*e.next)) : nlohmann::json(nullptr)},
                       {"error", e.error}});
      }
      print_json(arr);
    } else {
      bool first = true;
      for (const auto& e : entries) {
        if (!first) fmt::print("\n");
        first = false;
        if (e.manual) {
          fmt::print("# {}: manual (no schedule), skipped\n", e.job->name);
        } else if (!e.error.empty()) {
          fmt::print("# {}: cannot be converted: {}\n", e.job->name, e.error);
        } else {
          fmt::print("# hozo@{}.timer.d/{} (next run {})\n{}", e.job->name, kDropInName, next_text(e),
                     drop_in_text(e));
          if (config_drop_in) fmt::print("# hozo@{}.service.d/{}\n{}", e.job->name, kConfigDropInName, *config_drop_in);
        }
      }
    }
    return conversion_failed ? to_int(ExitCode::config) : 0;
  }

  // systemd --install [--enable]
  const fs::path dir = o.dir.empty() ? fs::path(kSystemdDir) : fs::path(o.dir);
  std::vector<std::string> enable_units;
  std::vector<std::string> disable_units;
  const auto remove_drop_in = [](const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return false;
    if (!fs::remove(path, ec) || ec) {
      leave(make_error(ExitCode::failure, "cannot remove {}: {}", path.string(), ec.message()));
    }
    fs::remove(path.parent_path(), ec);  // only if empty; other drop-ins stay
    return true;
  };
  for (const auto& e : entries) {
    const auto path = drop_in_path(dir, *e.job);
    if (e.manual) {
      // A manual job must not keep firing on an old drop-in, nor on hozo@.timer's default if its
      // timer was enabled by hand: its timer is disabled (harmless when it is not enabled).
      const bool removed = remove_drop_in(path);
      remove_drop_in(config_drop_in_path(dir, *e.job));
      fmt::print("{}: manual (no schedule){}; its timer is disabled\n", e.job->name,
                 removed ? fmt::format(": removed {}", path.string()) : std::string());
      disable_units.push_back(timer_unit(*e.job));
      continue;
    }
    unwrap(make_dirs(path.parent_path(), 0755));
    unwrap(write_file_atomic(path, drop_in_text(e), 0644));
    const auto config_path = config_drop_in_path(dir, *e.job);
    if (config_drop_in) {
      unwrap(make_dirs(config_path.parent_path(), 0755));
      unwrap(write_file_atomic(config_path, *config_drop_in, 0644));
      fmt::print("{}: wrote {} (the runs use {})\n", e.job->name, config_path.string(), absolute_config(g).string());
    } else {
      remove_drop_in(config_path);  // back to the default config
    }
    fmt::print("{}: wrote {} (OnCalendar={}, next run {})\n", e.job->name, path.string(), join(e.calendars, "; "),
               next_text(e));
    enable_units.push_back(timer_unit(*e.job));
  }
  std::vector<std::vector<std::string>> commands;
  if (!enable_units.empty() || !disable_units.empty()) commands.push_back({"systemctl", "daemon-reload"});
  if (!enable_units.empty()) {
    std::vector<std::string> argv{"systemctl", "enable", "--now"};
    argv.insert(argv.end(), enable_units.begin(), enable_units.end());
    commands.push_back(std::move(argv));
  }
  if (!disable_units.empty()) {
    std::vector<std::string> argv{"systemctl", "disable", "--now"};
    argv.insert(argv.end(), disable_units.begin(), disable_units.end());
    commands.push_back(std::move(argv));
  }
  if (commands.empty()) {
    fmt::print("no job has a schedule; nothing to enable\n");
    return 0;
  }
  if (!o.enable) {
    fmt::print("To activate, run:\n");
    for (const auto& argv : commands) fmt::print("  {}\n", shell_join(argv));
    return 0;
  }
  for (const auto& argv : commands) run_systemctl(argv);
  return 0;
}

}  // namespace

void add_schedule_command(CLI::App& app, Globals& g, Action& action) {
  auto o = std::make_shared<ScheduleOptions>();
  auto* cmd = app.add_subcommand("schedule", "systemd timer drop-ins (or cron lines) from the jobs' schedules");
  cmd->add_option("NAME", o->names, "job names (default: every job)");
  auto* systemd = cmd->add_flag("--systemd", o->systemd, "hozo@NAME.timer drop-ins (the default)");
  auto* cron = cmd->add_flag("--cron", o->cron, "lines for /etc/cron.d/hozo instead");
  systemd->excludes(cron);
  auto* install =
      cmd->add_flag("--install", o->install, "write the files (under /etc/systemd/system, or /etc/cron.d/hozo)");
  cmd->add_flag("--enable", o->enable, "then run systemctl daemon-reload and enable --now the timers")
      ->needs(install)
      ->excludes(cron);
  cmd->add_option("--dir", o->dir, "write under DIR instead of /etc/systemd/system or /etc/cron.d")->needs(install);
  cmd->callback([&g, &action, o] { action = [&g, o] { return cmd_schedule(g, *o); }; });
}

}  // namespace hozo::cli
