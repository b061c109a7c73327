// What monitoring and people watching a run need: a job's health (last success, its age, overdue),
// `hozo status --check` (one Nagios-style line per job, exit 0/1/2/3) and `hozo logs NAME [--run ID] [-f]`.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "cli_internal.hpp"
#include "hozo/status_json.hpp"
#include "hozo/schedule.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"

namespace hozo::cli {

using Clock = std::chrono::system_clock;

// ---------------------------------------------------------------- status --check

int cmd_status_check(const Globals& g, const std::vector<std::string>& names) {
  const auto config = load(g, ConfigUse::display);
  auto store = open_state(g, &config);
  auto summaries = store.summaries();
  if (!summaries) {
    fmt::print("HOZO UNKNOWN - cannot read the state: {}\n", summaries.error().message);
    return 3;
  }
  std::vector<const Job*> jobs;
  if (names.empty()) {
    for (const auto& job : config.jobs) jobs.push_back(&job);
  } else {
    for (const auto& n : names) jobs.push_back(&find_job(config, n));
  }
  const auto now = Clock::now();
  int worst = 0;
  std::vector<std::string> lines;
  int n_ok = 0;
  int n_failed = 0;
  int n_overdue = 0;
  auto arr = nlohmann::json::array();
  for (const Job* job : jobs) {
    const auto it = summaries->find(job->name);
    const JobSummary* js = it == summaries->end() ? nullptr : &it->second;
    const auto h = assess_job(job, js, now);
    int code = 0;
    std::string word = "OK";
    if (h.overdue) {
      code = 2;
      word = "CRITICAL";
      ++n_overdue;
    } else if (h.failed) {
      code = 1;
      word = "WARNING";
      ++n_failed;
    } else {
      ++n_ok;
    }
    worst = std::max(worst, code);
    std::string detail;
    const RunRecord* last = js != nullptr && js->last ? &*js->last : nullptr;
    if (last == nullptr) {
      detail = h.running ? "first run in progress" : "never run";
    } else if (h.failed) {
      detail = fmt::format("last run {} {}{}{}", last->run_id, to_string(last->outcome),
                           last->failed_stage.empty() ? "" : " in " + last->failed_stage,
                           last->error.empty() ? "" : ": " + printable(last->error));
    } else {
      detail = fmt::format("last run {} ok", last->run_id);
    }
    std::string success = h.success_age ? fmt::format("last success {}", age_text(*h.success_age)) : "no success yet";
    if (h.overdue) success += fmt::format(" (overdue after {})", format_duration(h.overdue_after));
    const auto bytes = js != nullptr && js->last_success ? js->last_success->bytes_sent : 0;
    // Nagios/Icinga plugin output: STATUS - text | perfdata
    lines.push_back(fmt::format("HOZO {} - {}: {}; {}{} | age={}s;;{} bytes={}B", word, job->name, detail, success,
                                h.running ? "; running now" : "", h.success_age ? h.success_age->count() : -1,
                                h.overdue_after.count() > 0 ? std::to_string(h.overdue_after.count()) : "", bytes));
    auto j = health_json(h);
    j["name"] = job->name;
    j["exit_code"] = code;
    j["line"] = lines.back();
    arr.push_back(std::move(j));
  }
  if (g.json) {
    print_json({{"exit_code", worst}, {"ok", n_ok}, {"failed", n_failed}, {"overdue", n_overdue}, {"jobs", arr}});
  } else {
    for (const auto& l : lines) fmt::print("{}\n", l);
  }
  return worst;
}

namespace {

// ---------------------------------------------------------------- logs

bool valid_run_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

int cmd_logs(const Globals& g, const std::string& name, std::string run_id, bool follow) {
  const auto config = load(g, ConfigUse::display);
  auto store = open_state(g, &config);
  if (!run_id.empty() && !valid_run_id(run_id)) {
    leave(make_error(ExitCode::usage, "--run \"{}\" is not a run id (like 20261124T080000Z-4242; see hozo history {})",
                     printable(run_id), printable(name)));
  }
  const auto summaries = unwrap(store.summaries());
  const auto it = summaries.find(name);
  if (it == summaries.end()) {
    if (config.find_job(name) == nullptr) find_job(config, name);  // unknown job: error with hint
    leave(make_error(ExitCode::failure, "job {} has not run yet: no log", name));
  }
  RunRecord run;
  if (run_id.empty()) {
    const RunRecord* newest = it->second.newest();
    if (newest == nullptr) leave(make_error(ExitCode::failure, "job {} has not run yet: no log", name));
    run = *newest;
  } else {
    auto found = unwrap(store.find_run(run_id));
    if (!found || found->job != name) {
      leave(make_error(ExitCode::usage, "job {} has no run {} (see hozo history {})", name, run_id, name));
    }
    run = *found;
  }
  const auto path = store.log_path_for(run);
  std::ifstream in(path, std::ios::binary);
  if (!in) leave(make_error(ExitCode::failure, "no log for run {} of job {} ({} is gone; logs are kept per log_keep)",
                            run.run_id, name, path.string()));
  std::string buf(65536, '\0');
  const auto drain = [&] {
    for (;;) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const auto n = in.gcount();
      if (n <= 0) break;
      std::fwrite(buf.data(), 1, static_cast<std::size_t>(n), stdout);
    }
    std::fflush(stdout);
    in.clear();
  };
  drain();
  if (!follow) return 0;
  // Follow while the run is going: its summary entry leaves `running` when it ends (or its process dies).
  const auto still_running = [&] {
    auto js = store.summaries();
    if (!js) return false;
    const auto jt = js->find(name);
    if (jt == js->end()) return false;
    for (const auto& r : jt->second.running) {
      if (r.run_id == run.run_id) return true;
    }
    return false;
  };
  auto next_check = std::chrono::steady_clock::now();
  for (;;) {
    if (g_cancel.load()) return to_int(ExitCode::interrupted);
    drain();
    if (std::chrono::steady_clock::now() >= next_check) {
      if (!still_running()) {
        drain();
        return 0;
      }
      next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

void add_logs_command(CLI::App& app, Globals& g, Action& action) {
  static std::string name;
  static std::string run_id;
  static bool follow = false;
  auto* logs = app.add_subcommand("logs", "print a run's log (default: the newest run); -f follows a running one");
  logs->add_option("NAME", name, "job name")->required();
  logs->add_option("--run", run_id, "run id (from hozo history NAME)");
  logs->add_flag("-f,--follow", follow, "keep printing until the run ends");
  logs->callback([&] { action = [&] { return cmd_logs(g, name, run_id, follow); }; });
}

}  // namespace hozo::cli
