#include "hozo/cli.hpp"

#include "cli_internal.hpp"

#include <atomic>
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
#include "hozo/config_json.hpp"
#include "hozo/job.hpp"
#include "hozo/lock.hpp"
#include "hozo/log.hpp"
#include "hozo/net.hpp"
#include "hozo/notify.hpp"
#include "hozo/schedule.hpp"
#include "hozo/serve/metrics.hpp"
#include "hozo/ssh.hpp"
#include "hozo/state.hpp"
#include "hozo/status_json.hpp"
#include "hozo/util/exit_code.hpp"
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

Config load(const Globals& g) {
  auto config = unwrap(load_config(config_path(g)));
  for (const auto& notice : config.notices) spdlog::info("notice: {}", notice);
  return config;
}

StateStore open_state(const Globals& g, const Config* config) {
  const std::filesystem::path path = g.state_path.empty() ? default_state_path() : std::filesystem::path(g.state_path);
  return unwrap(StateStore::open(path, config != nullptr ? config->history_limit : kDefaultHistoryLimit));
}

const Job& find_job(const Config& config, const std::string& name) {
  if (const Job* job = config.find_job(name)) return *job;
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
  if (!r->failed_stage.empty()) s += fmt::format(" ({})", r->failed_stage);
  return s;
}

// ---------------------------------------------------------------- config

int cmd_config_validate(const Globals& g, const std::string& file) {
  const std::filesystem::path path = file.empty() ? config_path(g) : std::filesystem::path(file);
  auto config = load_config(path);
  if (!config) {
    fmt::print(stderr, "{}\n", config.error().message);
    fmt::print(stderr, "hozo: {} is not valid\n", path.string());
    return to_int(config.error().code);
  }
  for (const auto& notice : config->notices) fmt::print(stderr, "notice: {}\n", notice);
  if (!g.quiet) fmt::print("{}: OK, {} job(s)\n", path.string(), config->jobs.size());
  return 0;
}

// ---------------------------------------------------------------- jobs list / show

int cmd_jobs_names(const Globals& g) {
  for (const auto& job : load(g).jobs) fmt::print("{}\n", job.name);
  return 0;
}

int cmd_jobs_list(const Globals& g) {
  const auto config = load(g);
  auto store = open_state(g, &config);
  const auto all = unwrap(store.all());
  if (g.json) {
    auto arr = nlohmann::json::array();
    for (const auto& job : config.jobs) {
      const auto it = all.find(job.name);
      arr.push_back(job_list_json(job, it == all.end() ? nullptr : &it->second));
    }
    print_json(arr);
    return 0;
  }
  std::vector<std::array<std::string, 5>> rows;
  rows.push_back({"NAME", "DATASETS", "SCHEDULE", "NEXT RUN", "LAST RESULT"});
  for (const auto& job : config.jobs) {
    const auto it = all.find(job.name);
    rows.push_back({job.name, datasets_summary(job), job.schedule.empty() ? "-" : job.schedule, next_run_text(job),
                    last_result_text(it == all.end() ? nullptr : it->second.last())});
  }
  std::array<std::size_t, 5> width{};
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", row[0], width[0], row[1], width[1], row[2], width[2], row[3],
               width[3], row[4]);
  }
  return 0;
}

int cmd_jobs_show(const Globals& g, const std::string& name) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  const auto j = job_to_json(job);
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

int cmd_jobs_run(const Globals& g, const std::vector<std::string>& names, bool all, bool dry_run) {
  const auto config = load(g);
  const std::vector<const Job*> jobs = select_jobs(config, names, all);
  if (dry_run) {
    for (const Job* job : jobs) fmt::print("{}", unwrap(describe_plan(*job)));
    return 0;
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
  return exit_code;
}

// ---------------------------------------------------------------- status / history

void print_run_details(const RunRecord& r) {
  fmt::print("  run        {}\n", r.run_id);
  fmt::print("  outcome    {} (exit {})\n", to_string(r.outcome), r.exit_code);
  fmt::print("  started    {}\n", r.started);
  if (!r.finished.empty()) {
    fmt::print("  finished   {} ({})\n", r.finished, format_duration(std::chrono::duration<double>(r.duration_seconds)));
  }
  if (!r.failed_stage.empty()) fmt::print("  failed     {}: {}\n", r.failed_stage, r.error);
  fmt::print("  box        {}\n", r.woke_host ? "woken by hozo" : (r.was_up_before ? "was already up" : "-"));
  fmt::print("  shutdown   {}{}{}\n", to_string(r.shutdown.outcome), r.shutdown.message.empty() ? "" : ": ",
             r.shutdown.message);
  if (r.attempts > 0) fmt::print("  attempts   {}\n", r.attempts);
  for (const auto& s : r.stages) {
    fmt::print("  stage      {} {:<9} {:>7}  {}\n", s.ok ? "✓" : "✗", s.name,
               format_duration(std::chrono::duration<double>(s.seconds)), s.message);
  }
  for (const auto& d : r.datasets) {
    fmt::print("  dataset    {} → {}: {} (newest {}, {} snapshot(s) on target)\n", d.source, d.target,
               d.guid_match ? "verified" : "NOT verified", d.newest_source_snapshot.empty() ? "-" : d.newest_source_snapshot,
               d.remote_snapshot_count);
  }
  for (const auto& n : r.notifications) {
    fmt::print("  notify     {} {}{}{}\n", n.channel, n.ok ? "ok" : "FAILED", n.message.empty() ? "" : ": ", n.message);
  }
  if (!r.log_file.empty()) fmt::print("  log        {}\n", r.log_file);
}

int cmd_status(const Globals& g, const std::string& name) {
  const auto config = load(g);
  auto store = open_state(g, &config);
  const auto all = unwrap(store.all());
  if (!name.empty()) {
    const Job& job = find_job(config, name);
    const auto it = all.find(name);
    const JobState* st = it == all.end() ? nullptr : &it->second;
    if (g.json) {
      print_json(status_json(&job, name, st));
      return 0;
    }
    fmt::print("{} ({})\n", job.name, datasets_summary(job));
    fmt::print("  schedule   {} (next: {})\n", job.schedule.empty() ? "manual" : job.schedule, next_run_text(job));
    if (st == nullptr || st->last() == nullptr) {
      fmt::print("  never run\n");
    } else {
      print_run_details(*st->last());
    }
    if (st != nullptr && !st->restores.empty()) {
      const auto& r = st->restores.back();
      fmt::print("  restore    {} {} {} → {}{}{} ({} restore(s) recorded)\n", r.restore_id, to_string(r.outcome),
                 r.backup, r.target, r.restored_snapshot.empty() ? "" : " (" + r.restored_snapshot + ")",
                 r.error.empty() ? "" : ": " + r.error, st->restores.size());
    }
    return 0;
  }
  auto arr = nlohmann::json::array();
  for (const auto& job : config.jobs) {
    const auto it = all.find(job.name);
    const JobState* st = it == all.end() ? nullptr : &it->second;
    if (g.json) {
      arr.push_back(status_json(&job, job.name, st));
    } else {
      fmt::print("{:<20} {}\n", job.name, last_result_text(st != nullptr ? st->last() : nullptr));
    }
  }
  if (g.json) print_json(arr);
  return 0;
}

int cmd_history(const Globals& g, const std::string& name, int count) {
  const auto config = load(g);
  auto store = open_state(g, &config);
  const auto st = unwrap(store.job(name));
  if (config.find_job(name) == nullptr && st.runs.empty()) find_job(config, name);  // unknown job: error with hint
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
  fmt::print("{:<26} {:<12} {:>8}  {}\n", "RUN", "OUTCOME", "DURATION", "DETAIL");
  for (const auto* r : runs) {
    std::string detail = r->failed_stage.empty() ? fmt::format("shutdown: {}", to_string(r->shutdown.outcome))
                                                 : fmt::format("{}: {}", r->failed_stage, r->error);
    fmt::print("{:<26} {:<12} {:>8}  {}\n", r->run_id, to_string(r->outcome),
               format_duration(std::chrono::duration<double>(r->duration_seconds)), detail);
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
  unwrap(pin_host_key(opts));
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

}  // namespace

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
  app.add_flag("--json", g.json, "machine-readable output (jobs list/show/run, status, history, wait)");

  Action action;

  auto* config_cmd = app.add_subcommand("config", "check or print configuration");
  config_cmd->require_subcommand(1);
  std::string validate_file;
  auto* validate = config_cmd->add_subcommand("validate", "validate a config file (exit 0, or 78 with every issue)");
  validate->add_option("FILE", validate_file, "config file (default: the one hozo would use)");
  validate->callback([&] { action = [&] { return cmd_config_validate(g, validate_file); }; });
  config_cmd->add_subcommand("example", "print an annotated example config")->callback([&] {
    action = [] {
      fmt::print("{}", example_config());
      return 0;
    };
  });

  auto* jobs_cmd = app.add_subcommand("jobs", "list, show and run jobs");
  jobs_cmd->require_subcommand(1);
  bool list_names = false;
  auto* list = jobs_cmd->add_subcommand("list", "table of jobs with their last result");
  list->add_flag("--names", list_names, "only the job names, one per line (for scripts and completion)");
  list->callback([&] { action = [&] { return list_names ? cmd_jobs_names(g) : cmd_jobs_list(g); }; });
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
  run->callback([&] { action = [&] { return cmd_jobs_run(g, run_names, run_all, dry_run); }; });

  std::string status_name;
  auto* status = app.add_subcommand("status", "last result of each job (or details of one)");
  status->add_option("NAME", status_name, "job name");
  status->callback([&] { action = [&] { return cmd_status(g, status_name); }; });

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
  add_restore_command(app, g, action);

  std::string notify_name;
  auto* notify_cmd = app.add_subcommand("notify", "notification channels");
  notify_cmd->require_subcommand(1);
  auto* notify_test_cmd =
      notify_cmd->add_subcommand("test", "send a test message through every channel of a job (or of all jobs)");
  notify_test_cmd->add_option("NAME", notify_name, "job name (default: every job)");
  notify_test_cmd->callback([&] { action = [&] { return cmd_notify_test(g, notify_name); }; });

  add_schedule_command(app, g, action);
  add_serve_command(app, g, action);

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
