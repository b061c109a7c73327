#include "hozo/cli.hpp"

#include "cli_internal.hpp"

#include <algorithm>
#include <atomic>
#include <ctime>
#include <future>
#include <map>
#include <optional>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include "hozo/box.hpp"
#include "hozo/config.hpp"
#include "hozo/config_cache.hpp"
#include "hozo/config_json.hpp"
#include "hozo/job.hpp"
#include "hozo/keycheck.hpp"
#include "hozo/lock.hpp"
#include "hozo/log.hpp"
#include "hozo/net.hpp"
#include "hozo/notify.hpp"
#include "hozo/schedule.hpp"
#include "hozo/serve/metrics.hpp"
#include "hozo/ssh.hpp"
#include "hozo/state.hpp"
#include "hozo/status_json.hpp"
#include "hozo/transfer.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/version.hpp"
#include "hozo/wol.hpp"

namespace hozo {

namespace cli {

std::atomic<bool> g_cancel{false};

namespace {

extern "C" void on_terminate_signal(int /*sig*/) { g_cancel.store(true); }

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_terminate_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and notice the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, nullptr);
}

void leave(Error e) { throw ExitWith{std::move(e)}; }

void unwrap(Result<void> r) {
  if (!r) leave(std::move(r).error());
}

std::filesystem::path config_path(const Globals& g) {
  if (!g.config_path.empty()) return g.config_path;
  if (const char* env = std::getenv("HOZO_CONFIG"); env != nullptr && *env != '\0') return env;
  return default_config_path();
}

std::filesystem::path state_path(const Globals& g) {
  return g.state_path.empty() ? default_state_path() : std::filesystem::path(g.state_path);
}

Config load(const Globals& g, ConfigUse use) {
  // The display cache lives beside an existing state file: before the first run, nothing is created.
  const auto state = state_path(g);
  std::error_code ec;
  auto config = unwrap(use == ConfigUse::display && std::filesystem::exists(state, ec)
                           ? load_config_for_display(config_path(g), config_cache_path(state))
                           : load_config(config_path(g), nullptr, JobErrors::isolate));
  // Notices (an ignored auth: block, ...) are for `config validate`, not for every timer run.
  for (const auto& notice : config.notices) spdlog::debug("notice: {}", notice);
  for (const auto& broken : config.broken_jobs) {
    spdlog::warn("job \"{}\" CANNOT RUN until its configuration is fixed ({} error(s){}); the other jobs are not "
                 "affected; hozo config validate lists every problem",
                 broken.name, broken.issues.size(),
                 broken.issues.empty() ? std::string() : ", first: " + broken.issues.front().to_string());
  }
  return config;
}

namespace {

std::string broken_issues_text(const BrokenJob& broken) {
  std::vector<std::string> lines;
  for (const auto& issue : broken.issues) lines.push_back(issue.to_string());
  return join(lines, "\n");
}

}  // namespace

void require_no_broken_jobs(const Config& config) {
  if (config.broken_jobs.empty()) return;
  std::vector<std::string> lines;
  for (const auto& broken : config.broken_jobs) lines.push_back(broken_issues_text(broken));
  leave(make_error(ExitCode::config, "{}\n{} job(s) in {} have errors; fix them first (hozo config validate)",
                   join(lines, "\n"), config.broken_jobs.size(), config.path.string()));
}

StateStore open_state(const Globals& g, const Config* config) {
  const std::filesystem::path path = state_path(g);
  return unwrap(StateStore::open(path, config != nullptr ? config->history_limit : kDefaultHistoryLimit));
}

const Job& find_job(const Config& config, const std::string& name) {
  if (const Job* job = config.find_job(name)) return *job;
  if (const BrokenJob* broken = config.find_broken(name)) {
    leave(make_error(ExitCode::config, "{}\njob \"{}\" cannot be used until these errors in {} are fixed",
                     broken_issues_text(*broken), printable(name), config.path.string()));
  }
  std::vector<std::string> names;
  for (const auto& j : config.jobs) names.push_back(j.name);
  const auto hint = did_you_mean(name, names);
  leave(make_error(ExitCode::usage, "no job named \"{}\" in {}{}", printable(name), config.path.string(),
                   hint ? fmt::format(" (did you mean \"{}\"?)", *hint) : std::string()));
}

std::vector<const Job*> select_jobs(const Config& config, const std::vector<std::string>& names, bool all) {
  std::vector<const Job*> jobs;
  if (all) {
    if (!names.empty()) leave(make_error(ExitCode::usage, "give job names or --all, not both"));
    for (const auto& job : config.jobs) jobs.push_back(&job);
    return jobs;
  }
  if (names.empty()) leave(make_error(ExitCode::usage, "which job? give NAME... or --all"));
  for (const auto& n : names) jobs.push_back(&find_job(config, n));
  return jobs;
}

void print_json(const nlohmann::json& j) { fmt::print("{}\n", j.dump(2)); }

namespace {

std::string datasets_summary(const Job& job) {
  std::vector<std::string> parts;
  for (const auto& d : job.datasets) parts.push_back(fmt::format("{} → {}:{}", d.source, job.target_host, d.target));
  return join(parts, ", ");
}

std::string last_result_text(const RunRecord* r) {
  if (r == nullptr) return "never run";
  std::string s(to_string(r->outcome));
  if (!r->finished.empty()) s += " " + r->finished;
  else if (!r->started.empty()) s += " since " + r->started;
  if (!r->failed_stage.empty()) {
    s += fmt::format(" ({})", r->failed_stage);
  } else if (r->outcome == RunOutcome::interrupted && !r->error.empty()) {
    s += fmt::format(" ({})", r->error);
  }
  return s;
}

// ---------------------------------------------------------------- config

// ---------------------------------------------------------------- jobs list / show

int cmd_jobs_names(const Globals& g) {
  const auto config = load(g, ConfigUse::display);
  std::vector<std::string> names;
  for (const auto& job : config.jobs) names.push_back(job.name);
  for (const auto& broken : config.broken_jobs) names.push_back(broken.name);
  if (g.json) {
    print_json(names);
    return 0;
  }
  for (const auto& name : names) fmt::print("{}\n", name);
  return 0;
}

/// Whether `path` was given with --state and does not exist.
enum class MissingState { warn, fail };

/// The state for read-only commands: nullopt when there is no state file yet. Creates nothing.
/// A --state path that does not exist is most likely mistyped: a warning (or an error).
std::optional<StateStore> open_state_read(const Globals& g, const Config& config, MissingState missing) {
  const std::filesystem::path path = state_path(g);
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return open_state(g, &config);
  if (!g.state_path.empty()) {
    auto message = fmt::format("state file {} does not exist (a mistyped --state? the first jobs run creates it)",
                               path.string());
    if (missing == MissingState::fail) leave(make_error(ExitCode::usage, "{}", message));
    spdlog::warn("{}", message);
  }
  return std::nullopt;
}

/// The config, the state (nullopt without a state file, as open_state_read) and every job's
/// summary (last run, last success, running runs). The summaries are read on a second thread while
/// the config is parsed: with hundreds of jobs each takes milliseconds, and neither needs the other.
struct ConfigAndSummaries {
  Config config;
  std::optional<StateStore> store;
  std::map<std::string, JobSummary> summaries;
};

ConfigAndSummaries load_with_summaries(const Globals& g, MissingState missing) {
  const std::filesystem::path path = state_path(g);
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  std::future<Result<std::map<std::string, JobSummary>>> read;
  if (exists) {
    read = std::async(std::launch::async, [path]() -> Result<std::map<std::string, JobSummary>> {
      auto store = StateStore::open(path);  // reading only: the history limit does not matter
      if (!store) return std::move(store).error();
      return store->summaries();
    });
  }
  ConfigAndSummaries out{load(g, ConfigUse::display), std::nullopt, {}};  // a config error leaves; ~future waits for the read
  if (!exists) {
    out.store = open_state_read(g, out.config, missing);  // warns, or fails, as without the thread
    return out;
  }
  // Not open_state_read: the read may have moved a corrupt file aside, which is not a missing one.
  out.store = open_state(g, &out.config);
  out.summaries = unwrap(read.get());
  return out;
}

/// "2026-12-01T20:00:05Z" -> "2026-12-01 20:00" (UTC) for narrow tables.
std::string short_time(const std::string& iso) {
  if (iso.size() < 16) return iso;
  std::string out = iso.substr(0, 16);
  out[10] = ' ';
  return out;
}

/// The last result in a few words: "success 2026-12-01 20:00Z", "failed 2026-12-01 20:00Z (sync)".
std::string last_result_short(const RunRecord* r) {
  if (r == nullptr) return "never run";
  std::string s(to_string(r->outcome));
  if (!r->finished.empty()) {
    s += " " + short_time(r->finished) + "Z";
  } else if (!r->started.empty()) {
    s += " since " + short_time(r->started) + "Z";
  }
  if (!r->failed_stage.empty()) s += fmt::format(" ({})", r->failed_stage);
  else if (r->outcome == RunOutcome::interrupted) s += " (interrupted)";
  return s;
}

/// Cuts a cell to `width` display characters (UTF-8 aware enough for →), marking the cut with "…".
std::string fit(const std::string& text, std::size_t width) {
  std::size_t chars = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t len = 1;
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0xf0) len = 4;
    else if (c >= 0xe0) len = 3;
    else if (c >= 0xc0) len = 2;
    if (chars + 1 == width && i + len < text.size()) return text.substr(0, i) + "…";
    i += len;
    ++chars;
  }
  return text;
}

std::size_t display_width(const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], display_width(row[i]));
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - display_width(row[i]) + 2, ' ');
    }
    fmt::print("{}\n", line);
  }
}

/// jobs list: -o wide adds the host and datasets and does not shorten cells.
enum class ListFormat { narrow, wide };

int cmd_jobs_list(const Globals& g, ListFormat format) {
  const auto [config, store, all] = load_with_summaries(g, MissingState::warn);
  const auto last_of = [&](const std::string& name) -> const RunRecord* {
    const auto it = all.find(name);
    return it == all.end() ? nullptr : it->second.newest();
  };
  if (g.json) {
    auto arr = nlohmann::json::array();
    for (const auto& job : config.jobs) {
      arr.push_back(job_list_json(job, last_of(job.name)));
    }
    for (const auto& broken : config.broken_jobs) {
      auto j = broken_json(broken);
      const RunRecord* last = last_of(broken.name);
      j["last"] = last != nullptr ? nlohmann::json(*last) : nlohmann::json(nullptr);
      arr.push_back(std::move(j));
    }
    print_json(arr);
    return 0;
  }
  const bool wide = format == ListFormat::wide;
  std::vector<std::vector<std::string>> rows;
  if (wide) {
    rows.push_back({"NAME", "HOST", "DATASETS", "SCHEDULE", "NEXT RUN", "LAST RESULT"});
  } else {
    rows.push_back({"NAME", "SCHEDULE", "NEXT RUN", "LAST RESULT"});
  }
  for (const auto& job : config.jobs) {
    if (wide) {
      rows.push_back({job.name, job.target_host, datasets_summary(job), schedule_text(job), next_run_text(job),
                      last_result_text(last_of(job.name))});
    } else {
      rows.push_back({fit(job.name, 20), fit(schedule_text(job), 34), next_run_text(job),
                      fit(last_result_short(last_of(job.name)), 34)});
    }
  }
  for (const auto& broken : config.broken_jobs) {
    const std::string error = "CONFIG ERROR (hozo config validate)";
    if (wide) {
      rows.push_back({broken.name, "-", "-", "-", "-", error});
    } else {
      rows.push_back({fit(broken.name, 20), "-", "-", error});
    }
  }
  print_table(rows);
  return 0;
}

int cmd_jobs_show(const Globals& g, const std::string& name) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  auto j = job_to_json(job);
  // The values the run will use: the identity file and known_hosts it resolves to.
  const auto ssh = ssh_options_for(job);
  auto key = resolve_identity_file(ssh);
  j["ssh_key"] = key ? nlohmann::ordered_json(key->string()) : nlohmann::ordered_json(nullptr);
  j["ssh_key_from"] = !job.ssh_key.empty() ? "ssh_key" : (key ? "default" : "none (no default key exists)");
  j["known_hosts"] = ssh.known_hosts.string();
  j["known_hosts_from"] = job.known_hosts.empty() ? "default" : "known_hosts";
  if (g.json) {
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("# effective configuration of job {} ({}), defaults resolved, secrets masked\n", job.name,
             config.path.string());
  fmt::print("{}\n", j.dump(2));
  return 0;
}

// ---------------------------------------------------------------- jobs run

/// Stage lines on a terminal, with a live progress line during the transfer.
class TtyReporter final : public RunReporter {
 public:
  void stage_started(std::string_view job, std::string_view stage) override {
    clear_progress();
    fmt::print("  … {:<9} {}\r", stage, job);
    std::fflush(stdout);
  }
  void stage_finished(std::string_view /*job*/, const StageTiming& s) override {
    clear_progress();
    fmt::print("\r\033[K  {} {:<9} {:>7}  {}\n", s.ok ? "✓" : "✗", s.name,
               format_duration(std::chrono::duration<double>(s.seconds)), s.message);
    std::fflush(stdout);
  }
  void transfer_line(std::string_view /*job*/, std::string_view line) override {
    std::string shown = printable(trim(line));
    if (shown.size() > 100) shown.resize(100);
    fmt::print("\r\033[K    {}", shown);
    progress_shown_ = true;
    std::fflush(stdout);
  }
  void run_finished(const RunRecord& r) override {
    clear_progress();
    fmt::print("{}\n", summarize(r));
  }

 private:
  void clear_progress() {
    if (progress_shown_) fmt::print("\r\033[K");
    progress_shown_ = false;
  }
  bool progress_shown_ = false;
};

int cmd_jobs_run(const Globals& g, const std::vector<std::string>& names, bool all, bool dry_run, bool force_rollback) {
  const auto config = load(g);
  const std::vector<const Job*> jobs = select_jobs(config, names, all);
  // --all runs the usable jobs; the broken ones still make the exit code 78.
  const int broken_rc = all && !config.broken_jobs.empty() ? to_int(ExitCode::config) : 0;
  if (dry_run) {
    int rc = 0;
    auto plans = nlohmann::json::array();
    for (const Job* job : jobs) {
      const auto plan = unwrap(describe_plan(*job));
      auto problems = check_ssh_files(*job);
      for (const auto& w : config.warnings) {
        if (w.job == job->name) problems.push_back(w);
      }
      const bool failed = std::any_of(problems.begin(), problems.end(),
                                      [](const ConfigIssue& i) { return i.severity == Severity::error; });
      if (failed) rc = to_int(ExitCode::config);
      if (g.json) {
        auto lines = nlohmann::json::array();
        for (const auto line : split_lines(plan)) {
          if (!line.empty()) lines.push_back(std::string(line));
        }
        auto issues = nlohmann::json::array();
        for (const auto& issue : problems) issues.push_back(issue_json(issue));
        plans.push_back({{"job", job->name}, {"dry_run", true}, {"ok", !failed}, {"plan", lines}, {"issues", issues}});
        continue;
      }
      fmt::print("{}", plan);
      for (const auto& issue : problems) {
        fmt::print("  {}  {}\n", issue.severity == Severity::error ? "ERROR  " : "warning", issue.path + ": " + issue.message);
      }
      if (failed) fmt::print("  => this run would fail: fix the error(s) above\n");
    }
    if (g.json) print_json(plans.size() == 1 ? plans[0] : plans);
    return rc != 0 ? rc : broken_rc;
  }
  auto store = open_state(g, &config);
  auto systems = make_real_systems(&g_cancel);
  TtyReporter tty;
  const bool on_tty = ::isatty(STDOUT_FILENO) == 1 && !g.json;
  if (on_tty && g.verbose == 0) {
    // The stage lines show progress; the console log keeps warnings and errors (the run log has all).
    for (auto& sink : spdlog::default_logger()->sinks()) sink->set_level(spdlog::level::warn);
  }
  RunOptions options;
  options.cancel = &g_cancel;
  options.reporter = on_tty ? &tty : nullptr;
  options.log_keep = config.log_keep;
  options.target_changes = force_rollback ? TargetChanges::discard : TargetChanges::as_configured;
  int exit_code = 0;
  auto results = nlohmann::json::array();
  for (const Job* job : jobs) {
    if (g_cancel.load()) {
      exit_code = to_int(ExitCode::interrupted);
      break;
    }
    if (on_tty) fmt::print("{} ({}):\n", job->name, datasets_summary(*job));
    auto record = unwrap(run_job(*job, store, *systems, options));
    if (auto written = serve::write_metrics_textfile(config, store); !written) spdlog::warn("{}", written.error().message);
    results.push_back(record);
    if (record.exit_code != 0 && (exit_code == 0 || record.exit_code == to_int(ExitCode::interrupted))) {
      exit_code = record.exit_code;
    }
  }
  if (g.json) print_json(results.size() == 1 ? results[0] : results);
  return exit_code != 0 ? exit_code : broken_rc;
}

// ---------------------------------------------------------------- status / history

void print_run_details(const RunRecord& r) {
  fmt::print("  run        {}\n", r.run_id);
  const bool running = r.outcome == RunOutcome::running;
  if (running) {
    fmt::print("  outcome    running (pid {}{}{})\n", r.pid, r.hostname.empty() ? "" : " on ", r.hostname);
  } else {
    fmt::print("  outcome    {} (exit {})\n", to_string(r.outcome), r.exit_code);
  }
  fmt::print("  started    {}\n", r.started);
  if (!r.finished.empty()) {
    fmt::print("  finished   {} ({})\n", r.finished, format_duration(std::chrono::duration<double>(r.duration_seconds)));
  }
  if (!r.failed_stage.empty()) {
    fmt::print("  failed     {}: {}\n", r.failed_stage, r.error);
  } else if (!r.error.empty()) {
    fmt::print("  reason     {}\n", r.error);  // e.g. why a run was interrupted
  }
  fmt::print("  box        {}\n", r.woke_host ? "woken by hozo" : (r.was_up_before ? "was already up" : "-"));
  if (!running) {
    fmt::print("  shutdown   {}{}{}\n", to_string(r.shutdown.outcome), r.shutdown.message.empty() ? "" : ": ",
               r.shutdown.message);
  }
  if (r.attempts > 0) fmt::print("  attempts   {}\n", r.attempts);
  if (!r.reseed.empty()) {
    fmt::print("  re-seed    {}\n", r.reseed == "none"   ? "nothing re-seeded (every chain intact)"
                                   : r.reseed == "sent" ? "full send into new datasets, not swapped in (--replace)"
                                                        : "full send, swapped into place");
  }
  for (const auto& s : r.stages) {
    fmt::print("  stage      {} {:<9} {:>7}  {}\n", s.ok ? "✓" : "✗", s.name,
               format_duration(std::chrono::duration<double>(s.seconds)), s.message);
  }
  for (const auto& d : r.datasets) {
    fmt::print("  dataset    {} → {}: {} (newest {}, {} snapshot(s) on target)\n", d.source, d.target,
               d.guid_match ? "verified" : "NOT verified", d.newest_source_snapshot.empty() ? "-" : d.newest_source_snapshot,
               d.remote_snapshot_count);
  }
  for (const auto& t : r.transfers) {
    fmt::print("  sent       {} → {}: {} in {} ({}/s){}\n", t.source, t.target, format_bytes(t.bytes),
               format_duration(std::chrono::duration<double>(t.seconds)),
               format_bytes(static_cast<std::int64_t>(t.bytes_per_second)),
               t.estimated_bytes >= 0 ? fmt::format(", syncoid estimated {}", format_bytes(t.estimated_bytes)) : "");
  }
  for (const auto& n : r.notifications) {
    fmt::print("  notify     {} {}{}{}\n", n.channel, n.ok ? "ok" : "FAILED", n.message.empty() ? "" : ": ", n.message);
  }
  if (!r.log_file.empty()) fmt::print("  log        {}\n", r.log_file);
}

std::string last_success_text(const JobHealth& h, const JobSummary* js) {
  if (js == nullptr || !js->last_success) return "never";
  const auto& r = *js->last_success;
  std::string s = r.finished.empty() ? r.started : r.finished;
  if (h.success_age) s += " (" + age_text(*h.success_age) + ")";
  return s;
}

int cmd_status(const Globals& g, const std::string& name) {
  const auto [config, store, all] = load_with_summaries(g, MissingState::fail);
  const auto now = std::chrono::system_clock::now();
  const auto summary_of = [&](const std::string& n) -> const JobSummary* {
    const auto it = all.find(n);
    return it == all.end() ? nullptr : &it->second;
  };
  if (!name.empty()) {
    const BrokenJob* broken = config.find_broken(name);
    const Job* job = broken != nullptr ? nullptr : &find_job(config, name);
    const JobSummary* js = summary_of(name);
    const auto st = store ? unwrap(store->job(name)) : JobState{};
    const RunRecord* last = st.last();
    std::optional<RunProgress> progress;
    if (store && last != nullptr && last->outcome == RunOutcome::running) {
      progress = store->read_progress(name, last->run_id);
    }
    const auto health = assess_job(job, js, now);
    if (g.json) {
      auto j = status_json(job, name, js, last, progress);
      j["config_error"] = broken != nullptr ? broken_json(*broken)["config_error"] : nlohmann::json(nullptr);
      print_json(j);
      return broken != nullptr ? to_int(ExitCode::config) : 0;
    }
    if (broken != nullptr) {
      fmt::print("{} (CONFIG ERROR: this job cannot run until its configuration is fixed)\n", name);
      for (const auto& issue : broken->issues) fmt::print("  error      {}\n", issue.to_string());
    } else {
      fmt::print("{} ({})\n", job->name, datasets_summary(*job));
      fmt::print("  schedule   {} (next: {})\n", schedule_text(*job), next_run_text(*job));
    }
    fmt::print("  health     {}{}\n", health.status,
               health.overdue_after.count() > 0
                   ? fmt::format(" (overdue without a success for {})", format_duration(health.overdue_after))
                   : "");
    fmt::print("  success    {}\n", last_success_text(health, js));
    if (last == nullptr) {
      fmt::print("  never run\n");
    } else {
      print_run_details(*last);
    }
    if (progress) {
      fmt::print("  progress   {}\n", progress_text(*progress));
    }
    if (js != nullptr && js->last_restore) {
      const auto& r = *js->last_restore;
      fmt::print("  restore    {} {} {} → {}{}{} ({} restore(s) recorded)\n", r.restore_id, to_string(r.outcome),
                 r.backup, r.target, r.restored_snapshot.empty() ? "" : " (" + r.restored_snapshot + ")",
                 r.error.empty() ? "" : ": " + r.error, st.restores.size());
    }
    return broken != nullptr ? to_int(ExitCode::config) : 0;
  }
  auto arr = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "HEALTH", "LAST RESULT", "LAST SUCCESS"});
  for (const auto& job : config.jobs) {
    const JobSummary* js = summary_of(job.name);
    if (g.json) {
      auto j = status_json(&job, job.name, js, nullptr, std::nullopt);
      j["config_error"] = nullptr;
      arr.push_back(std::move(j));
    } else {
      const auto health = assess_job(&job, js, now);
      rows.push_back({job.name, health.status + (health.running && health.status != "running" ? ", running" : ""),
                      last_result_text(js != nullptr ? js->newest() : nullptr), last_success_text(health, js)});
    }
  }
  for (const auto& broken : config.broken_jobs) {
    const JobSummary* js = summary_of(broken.name);
    if (g.json) {
      auto j = status_json(nullptr, broken.name, js, nullptr, std::nullopt);
      j["config_error"] = broken_json(broken)["config_error"];
      arr.push_back(std::move(j));
    } else {
      const auto health = assess_job(nullptr, js, now);
      rows.push_back({broken.name,
                      fmt::format("CONFIG ERROR, cannot run ({} error(s); hozo config validate)", broken.issues.size()),
                      last_result_text(js != nullptr ? js->newest() : nullptr), last_success_text(health, js)});
    }
  }
  if (g.json) {
    print_json(arr);
    return 0;
  }
  print_table(rows);
  return 0;
}

int cmd_history(const Globals& g, const std::string& name, int count) {
  const auto config = load(g, ConfigUse::display);
  const auto store = open_state_read(g, config, MissingState::warn);
  const auto st = store ? unwrap(store->job(name)) : JobState{};
  if (config.find_job(name) == nullptr && config.find_broken(name) == nullptr && st.runs.empty()) {
    find_job(config, name);  // unknown job: error with hint
  }
  std::vector<const RunRecord*> runs;
  for (auto it = st.runs.rbegin(); it != st.runs.rend() && static_cast<int>(runs.size()) < count; ++it) runs.push_back(&*it);
  if (g.json) {
    auto arr = nlohmann::json::array();
    for (const auto* r : runs) arr.push_back(*r);
    print_json(arr);
    return 0;
  }
  if (runs.empty()) {
    fmt::print("{}: never run\n", name);
    return 0;
  }
  fmt::print("{:<26} {:<12} {:>8} {:>10}  {}\n", "RUN", "OUTCOME", "DURATION", "SENT", "DETAIL");
  for (const auto* r : runs) {
    std::string detail = r->failed_stage.empty() ? fmt::format("shutdown: {}", to_string(r->shutdown.outcome))
                                                 : fmt::format("{}: {}", r->failed_stage, r->error);
    fmt::print("{:<26} {:<12} {:>8} {:>10}  {}\n", r->run_id, to_string(r->outcome),
               format_duration(std::chrono::duration<double>(r->duration_seconds)),
               r->transfers.empty() ? std::string("-") : format_bytes(r->bytes_sent), detail);
  }
  return 0;
}

// ---------------------------------------------------------------- wake / wait

int cmd_wake(const Globals& g, const std::string& name) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  auto systems = make_real_systems(&g_cancel);
  const int sent = unwrap(systems->wake(job));
  if (job.wol_relay) {
    fmt::print("{}: wake command sent through relay {}\n", job.name, job.wol_relay->host);
  } else {
    fmt::print("{}: {} magic packet(s) for {} sent to {}:{}\n", job.name, sent, job.mac_address, job.wol_broadcast,
               job.wol_port);
  }
  return 0;
}

int cmd_wait(const Globals& g, const std::string& name, bool no_resend) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  auto systems = make_real_systems(&g_cancel);
  const auto first = systems->probe(job);
  if (first.state == ProbeState::up) {
    if (g.json) {
      print_json({{"job", job.name}, {"up", true}, {"was_up_before", true}, {"banner", first.banner}});
    } else {
      fmt::print("{}: {}:{} is already up ({})\n", job.name, job.target_host, job.ssh_port, first.banner);
    }
    return 0;
  }
  const auto outcome = unwrap(wait_for_box(*systems, job, &g_cancel, no_resend ? Resend::no : Resend::yes));
  if (g.json) {
    print_json({{"job", job.name},
                {"up", true},
                {"was_up_before", false},
                {"seconds", std::chrono::duration<double>(outcome.elapsed).count()},
                {"probes", outcome.probes},
                {"resends", outcome.resends},
                {"banner", outcome.last.banner}});
  } else {
    fmt::print("{}: {}:{} is up after {} ({} probes, {} resends): {}\n", job.name, job.target_host, job.ssh_port,
               format_duration(outcome.elapsed), outcome.probes, outcome.resends, outcome.last.banner);
  }
  return 0;
}

// ---------------------------------------------------------------- hostkey / shutdown

int cmd_hostkey(const Globals& g, const std::string& name, bool accept) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  const auto opts = ssh_options_for(job);
  const auto info = unwrap(fetch_host_key(opts));
  fmt::print("{}: {}:{} presents {} key {}\n", job.name, job.target_host, job.ssh_port, info.key_type, info.fingerprint);
  fmt::print("known_hosts {}: {}\n", opts.known_hosts.string(), to_string(info.state));
  if (!accept) {
    if (info.state != HostKeyState::known) {
      fmt::print("Check the fingerprint on the box (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run:\n"
                 "  hozo hostkey {} --accept\n", job.name);
    }
    return (info.state == HostKeyState::changed || info.state == HostKeyState::other) ? to_int(ExitCode::failure) : 0;
  }
  if (info.state == HostKeyState::known) {
    fmt::print("already trusted\n");
    return 0;
  }
  if (info.state == HostKeyState::changed || info.state == HostKeyState::other) {
    leave(make_error("the host key of {} CHANGED; refusing to replace it. If the box was reinstalled, remove the old "
                     "entry from {} (ssh-keygen -R '[{}]:{}' -f {}) and run this again",
                     job.target_host, opts.known_hosts.string(), job.target_host, job.ssh_port, opts.known_hosts.string()));
  }
  unwrap(pin_host_key(opts, info.fingerprint));  // exactly the key shown above
  fmt::print("pinned {} in {}\n", info.fingerprint, opts.known_hosts.string());
  return 0;
}

int cmd_shutdown(const Globals& g, const std::string& name, bool force) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  auto store = open_state(g, &config);
  const bool busy = unwrap(HostLease::in_use_by_others(store.dir(), job.target_host));
  if (busy && !force) {
    leave(make_error(ExitCode::tempfail, "{} is in use by a running job; not powering it off (use --force to override)",
                     job.target_host));
  }
  auto systems = make_real_systems(&g_cancel);
  unwrap(systems->power_off(job));
  fmt::print("{}: {}: {}\n", job.name, job.target_host, power_off_detail(*systems, job));
  return 0;
}

// ---------------------------------------------------------------- notify test

int cmd_notify_test(const Globals& g, const std::string& name) {
  const auto config = load(g);
  std::vector<const Job*> jobs;
  if (name.empty()) {
    for (const auto& job : config.jobs) jobs.push_back(&job);
  } else {
    jobs.push_back(&find_job(config, name));
  }
  std::size_t sent = 0;
  std::size_t failed = 0;
  nlohmann::json out = nlohmann::json::array();
  for (const Job* job : jobs) {
    if (configured_channels(job->notifications).empty()) {
      if (!g.json) fmt::print("{}: no notification channels configured\n", job->name);
      continue;
    }
    for (const auto& r : notify_test(*job)) {
      ++sent;
      if (!r.ok) ++failed;
      if (g.json) {
        out.push_back({{"job", job->name}, {"channel", r.channel}, {"ok", r.ok}, {"message", r.message}});
      } else {
        fmt::print("{} {}: {} {}\n", job->name, r.channel, r.ok ? "ok" : "FAILED", r.message);
      }
    }
  }
  if (g.json) print_json(out);
  if (sent == 0) leave(make_error("no notification channel is configured; nothing was sent"));
  return failed == 0 ? 0 : to_int(ExitCode::failure);
}

/// The commands that honour --json; the same list is in README.md and hozo(1) (a CLI test compares them).
constexpr const char* kJsonCommands =
    "config validate, jobs list, jobs show, jobs run, status, history, wait, check, restore, notify test, schedule";

/// Global options that take a value (as separate word).
bool takes_value(std::string_view arg) { return arg == "-c" || arg == "--config" || arg == "--state"; }

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  return names;
}

/// A mistyped command or subcommand ("hozo staus", "hozo jobs ls", "hozo help"), found before
/// CLI11 parses (it would only say "A subcommand is required"): the message with a hint.
std::optional<std::string> misspelt_command(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string_view> words;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "--version") return std::nullopt;
    if (takes_value(arg)) {
      ++i;
      continue;
    }
    if (arg.starts_with("-")) continue;
    words.push_back(arg);
  }
  const CLI::App* level = &app;
  std::string prefix = "hozo";
  for (const auto word : words) {
    auto names = subcommand_names(*level);
    if (names.empty()) return std::nullopt;  // the rest are arguments (job names, files)
    const auto it = std::find(names.begin(), names.end(), word);
    if (it != names.end()) {
      level = level->get_subcommand(std::string(word));
      prefix += " " + std::string(word);
      continue;
    }
    if (level != &app && level->get_require_subcommand_min() == 0) return std::nullopt;  // e.g. status NAME
    std::optional<std::string> hint;
    if (word == "help") {
      return fmt::format("{}: there is no \"help\" command; use {} --help (or hozo COMMAND --help)", prefix, prefix);
    }
    if (word == "ls") hint = "list";
    if (word == "ps" || word == "stat") hint = "status";
    if (word == "rm" || word == "del") hint.reset();
    if (!hint) hint = did_you_mean(word, names);
    std::string message = fmt::format("{}: unknown command \"{}\"", prefix, printable(word));
    if (hint) message += fmt::format(" (did you mean \"{} {}\"?)", prefix, *hint);
    message += fmt::format("; commands: {} (see {} --help)", join(names, ", "), prefix);
    return message;
  }
  if (level->get_require_subcommand_min() > 0) {
    return fmt::format("{}: which one? {} (see {} --help)", prefix, join(subcommand_names(*level), ", "), prefix);
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<RunReporter> make_tty_reporter() { return std::make_unique<TtyReporter>(); }

int run(int argc, char** argv) {
  CLI::App app{"hozo - off-site ZFS backups to a backup box that sleeps.\n"
               "Exit codes: 0 ok, 1 job failed, 2 usage, 69 unavailable, 70 internal error, 75 busy/locked, "
               "78 config error, 130 interrupted."};
  app.set_version_flag("--version", std::string("hozo ") + kVersion);
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  app.add_option("-c,--config", g.config_path, "config file (default: $HOZO_CONFIG, /etc/hozo/hozo.yaml as root, "
                                               "else ~/.config/hozo/config.yaml)");
  app.add_option("--state", g.state_path, "state file (default: $STATE_DIRECTORY/state.json, /var/lib/hozo/state.json "
                                          "as root, else ~/.local/state/hozo/state.json)");
  app.add_flag("-v,--verbose", g.verbose, "more output (repeat for trace)");
  app.add_flag("-q,--quiet", g.quiet, "only warnings and errors");
  app.add_flag("--json", g.json, fmt::format("machine-readable output ({})", kJsonCommands));

  Action action;

  add_config_command(app, g, action);

  auto* jobs_cmd = app.add_subcommand("jobs", "list, show and run jobs");
  jobs_cmd->require_subcommand(1);
  bool list_names = false;
  auto* list = jobs_cmd->add_subcommand("list", "table of jobs with their last result");
  std::string list_output;
  list->add_flag("--names", list_names, "only the job names, one per line (a JSON array with --json)");
  list->add_option("-o,--output", list_output, "wide: also the host and datasets, nothing shortened")
      ->check(CLI::IsMember({"wide"}));
  list->callback([&] {
    action = [&] {
      return list_names ? cmd_jobs_names(g)
                        : cmd_jobs_list(g, list_output == "wide" ? ListFormat::wide : ListFormat::narrow);
    };
  });
  std::string show_name;
  auto* show = jobs_cmd->add_subcommand("show", "effective config of a job (defaults resolved, secrets masked)");
  show->add_option("NAME", show_name, "job name")->required();
  show->callback([&] { action = [&] { return cmd_jobs_show(g, show_name); }; });
  std::vector<std::string> run_names;
  bool run_all = false;
  bool dry_run = false;
  auto* run = jobs_cmd->add_subcommand("run", "run jobs: wake, wait, sync, verify, shut down, notify");
  run->add_option("NAME", run_names, "job names");
  run->add_flag("--all", run_all, "run every job in the config, one after the other");
  run->add_flag("-n,--dry-run", dry_run, "print the plan and the exact commands; touch nothing");
  bool force_rollback = false;
  run->add_flag("--force-rollback", force_rollback,
                "this run only: let syncoid roll the target back to the last common snapshot, discarding changes made "
                "on the box (drops --no-rollback from syncoid's arguments)");
  run->callback([&] { action = [&] { return cmd_jobs_run(g, run_names, run_all, dry_run, force_rollback); }; });
  add_reseed_command(*jobs_cmd, g, action);

  std::vector<std::string> status_names;
  bool status_check = false;
  auto* status = app.add_subcommand("status", "health and last result of each job (or details of one)");
  status->add_option("NAME", status_names, "job name (--check: several)");
  status->add_flag("--check", status_check,
                   "for monitoring: one Nagios-style line per job; exit 0 ok, 1 a last run failed, 2 overdue, 3 unknown");
  status->callback([&] {
    action = [&] {
      if (status_check) return cmd_status_check(g, status_names);
      if (status_names.size() > 1) leave(make_error(ExitCode::usage, "status takes one job name (or --check NAME...)"));
      return cmd_status(g, status_names.empty() ? std::string() : status_names.front());
    };
  });
  add_logs_command(app, g, action);

  std::string history_name;
  int history_count = 20;
  auto* history = app.add_subcommand("history", "past runs of a job, newest first");
  history->add_option("NAME", history_name, "job name")->required();
  history->add_option("-n,--count", history_count, "how many runs")->check(CLI::Range(1, 100000));
  history->callback([&] { action = [&] { return cmd_history(g, history_name, history_count); }; });

  std::string wake_name;
  auto* wake = app.add_subcommand("wake", "send the Wake-on-LAN packet(s) of a job's box");
  wake->add_option("NAME", wake_name, "job name")->required();
  wake->callback([&] { action = [&] { return cmd_wake(g, wake_name); }; });

  std::string wait_name;
  bool no_resend = false;
  auto* wait = app.add_subcommand("wait", "wait until a job's box answers on SSH (exit 69 after ssh_timeout)");
  wait->add_option("NAME", wait_name, "job name")->required();
  wait->add_flag("--no-resend", no_resend, "do not resend the wake packet while waiting");
  wait->callback([&] { action = [&] { return cmd_wait(g, wait_name, no_resend); }; });

  std::string hostkey_name;
  bool hostkey_accept = false;
  auto* hostkey = app.add_subcommand("hostkey", "show the box's SSH host key fingerprint; --accept pins it");
  hostkey->add_option("NAME", hostkey_name, "job name")->required();
  hostkey->add_flag("--accept", hostkey_accept, "pin the key in the job's known_hosts file");
  hostkey->callback([&] { action = [&] { return cmd_hostkey(g, hostkey_name, hostkey_accept); }; });

  std::string shutdown_name;
  bool shutdown_force = false;
  auto* shutdown = app.add_subcommand("shutdown", "power the box off over SSH (refuses while a job uses it)");
  shutdown->add_option("NAME", shutdown_name, "job name")->required();
  shutdown->add_flag("--force", shutdown_force, "power off even while another job uses the box");
  shutdown->callback([&] { action = [&] { return cmd_shutdown(g, shutdown_name, shutdown_force); }; });
  add_check_command(app, g, action);
  add_init_command(app, g, action);
  add_restore_command(app, g, action);
  add_recover_command(app, g, action);

  std::string notify_name;
  auto* notify_cmd = app.add_subcommand("notify", "notification channels");
  notify_cmd->require_subcommand(1);
  auto* notify_test_cmd =
      notify_cmd->add_subcommand("test", "send a test message through every channel of a job (or of all jobs)");
  notify_test_cmd->add_option("NAME", notify_name, "job name (default: every job)");
  notify_test_cmd->callback([&] { action = [&] { return cmd_notify_test(g, notify_name); }; });

  add_schedule_command(app, g, action);
  add_serve_command(app, g, action);

  if (const auto misspelt = misspelt_command(app, argc, argv)) {
    fmt::print(stderr, "{}\n", *misspelt);
    return to_int(ExitCode::usage);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : to_int(ExitCode::usage);
  }

  setup_logging(g.quiet ? -1 : g.verbose);
  install_signal_handlers();
  try {
    return action ? action() : to_int(ExitCode::usage);
  } catch (const ExitWith& e) {
    spdlog::error("{}", e.error.message);
    return to_int(e.error.code);
  } catch (const std::exception& e) {
    spdlog::critical("internal error: {}", e.what());
    return to_int(ExitCode::software);
  }
}

}  // namespace cli

int run_cli(int argc, char** argv) { return cli::run(argc, argv); }

}  // namespace hozo
