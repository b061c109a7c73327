#include "hozo/recover.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/box.hpp"
#include "hozo/process.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

std::string local_hostname() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0) return {};
  return buffer;
}

/// pgrp (field 5) and starttime (field 22) of /proc/<pid>/stat.
std::optional<std::pair<long long, unsigned long long>> pgrp_and_start(std::string_view pid) {
  auto text = read_file(fmt::format("/proc/{}/stat", pid));
  if (!text) return std::nullopt;
  const std::size_t paren = text->rfind(')');
  if (paren == std::string::npos || paren + 2 >= text->size()) return std::nullopt;
  const auto fields = split(std::string_view(*text).substr(paren + 2), ' ');
  if (fields.size() < 20) return std::nullopt;
  const auto pgrp = parse_int(fields[2]);
  const auto start = parse_int(fields[19]);
  if (!pgrp || !start) return std::nullopt;
  return std::make_pair(static_cast<long long>(*pgrp), static_cast<unsigned long long>(*start));
}

bool tagged_with(std::string_view pid, const std::string& needle) {
  auto env = read_file(fmt::format("/proc/{}/environ", pid));
  if (!env) return false;
  // Entries are NUL-separated; match a whole entry.
  std::size_t pos = 0;
  while ((pos = env->find(needle, pos)) != std::string::npos) {
    const bool starts = pos == 0 || (*env)[pos - 1] == '\0';
    const std::size_t end = pos + needle.size();
    if (starts && (end == env->size() || (*env)[end] == '\0')) return true;
    pos = end;
  }
  return false;
}

/// The pids that belong to the dead run `run`.
std::vector<pid_t> find_leftovers(const RunRecord& run) {
  std::vector<pid_t> out;
  const std::set<long long> groups(run.child_pgids.begin(), run.child_pgids.end());
  const std::string needle = fmt::format("{}={}", kRunTagVariable, run.run_id);
  const pid_t self = ::getpid();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    const std::string_view name(entry->d_name);
    if (name.empty() || name.find_first_not_of("0123456789") != std::string_view::npos) continue;
    const auto pid = parse_int(name);
    if (!pid || *pid == self || *pid == run.pid) continue;
    const auto info = pgrp_and_start(name);
    if (!info) continue;
    const bool in_group = groups.count(info->first) != 0 && info->second >= run.pid_start_ticks;
    if (in_group || (!run.run_id.empty() && tagged_with(name, needle))) out.push_back(static_cast<pid_t>(*pid));
  }
  ::closedir(proc);
  return out;
}

}  // namespace

std::size_t kill_run_leftovers(const RunRecord& run) {
  if (!run.hostname.empty() && run.hostname != local_hostname()) return 0;
  std::set<pid_t> killed;
  for (int round = 0; round < 40; ++round) {
    const auto pids = find_leftovers(run);
    std::size_t alive = 0;
    for (const pid_t pid : pids) {
      auto stat = read_file(fmt::format("/proc/{}/stat", pid));
      if (!stat || stat->find(") Z ") != std::string::npos) continue;  // a zombie waits for its parent
      ++alive;
      if (::kill(pid, SIGKILL) == 0) killed.insert(pid);
    }
    if (alive == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return killed.size();
}

Result<std::vector<std::string>> reap_dead_runs(StateStore& state, std::string_view job, ReapScope scope) {
  // Whoever marks a dead run interrupted cleans up after it, whatever its job: a run is marked
  // once, so its leftovers cannot be missed by a later run that only looks at its own job's last.
  auto reaped = state.reap_orphaned();
  if (!reaped) return std::move(reaped).error();
  std::vector<RunRecord> runs = std::move(*reaped);
  if (scope == ReapScope::history) {
    auto js = state.job(job);
    if (!js) return std::move(js).error();
    runs.insert(runs.end(), js->runs.begin(), js->runs.end());
  } else {
    // A run marked earlier whose cleanup did not finish (hozo killed in between) is still the last.
    auto all = state.summaries();
    if (!all) return std::move(all).error();
    if (const auto it = all->find(std::string(job));
        it != all->end() && it->second.last && it->second.last->outcome == RunOutcome::interrupted) {
      if (auto full = state.job_run(job, it->second.last->run_id)) runs.push_back(std::move(*full));
    }
  }
  std::vector<std::string> lines;
  std::set<std::string> done;
  for (auto run : runs) {
    if (!done.insert(run.job + "/" + run.run_id).second) continue;
    if (run.outcome != RunOutcome::interrupted || run.child_pgids.empty()) continue;
    const std::size_t n = kill_run_leftovers(run);
    lines.push_back(fmt::format("run {}: {} leftover process(es) killed", run.run_id, n));
    if (n > 0) spdlog::warn("[{}] killed {} leftover process(es) of the dead run {}", run.job, n, run.run_id);
    run.child_pgids.clear();
    if (auto u = state.update_run(run); !u) return std::move(u).error();
  }
  return lines;
}

bool marker_of_dead_run(const WokenMarker& marker, const StateStore& state) {
  if (marker.run_id.empty()) return false;
  auto all = state.all();  // orphaned running entries already show as interrupted
  if (!all) return false;
  for (const auto& [name, js] : *all) {
    for (const auto& r : js.runs) {
      if (r.run_id == marker.run_id) return r.outcome == RunOutcome::interrupted;
    }
    for (const auto& r : js.restores) {
      if (r.restore_id == marker.run_id) return r.outcome == RunOutcome::interrupted;
    }
  }
  return false;
}

namespace {

/// The dead run of the marker reached the box (some stage after the wait succeeded).
bool dead_run_reached_box(const WokenMarker& marker, const StateStore& state) {
  auto all = state.all();
  if (!all) return false;
  for (const auto& [name, js] : *all) {
    for (const auto& r : js.runs) {
      if (r.run_id != marker.run_id) continue;
      return std::any_of(r.stages.begin(), r.stages.end(), [](const StageTiming& s) {
        return s.ok && (s.name == "wait" || s.name == "connect");
      });
    }
  }
  return false;
}

}  // namespace

Result<RecoverReport> recover_job(const Job& job, StateStore& state, JobSystems& systems,
                                  const std::atomic<bool>* cancel) {
  RecoverReport report;
  auto cleaned = reap_dead_runs(state, job.name);
  if (!cleaned) return std::move(cleaned).error();
  report.cleaned = std::move(*cleaned);
  report.shutdown = {ShutdownOutcome::not_requested, "no woken marker of a dead run: nothing to power off"};
  if (!job.shutdown_after) {
    report.shutdown = {ShutdownOutcome::not_requested, "shutdown_after is off"};
    return report;
  }
  // Without waiting: a live hozo holding the host powers the box off itself by the last-user rule
  // (and keeps the dead run's marker: settle_woken_marker).
  auto lease = HostLease::acquire(state.dir(), job.target_host, HostSharing::concurrent, Millis{0});
  if (!lease) {
    if (lease.error().code == ExitCode::tempfail) {
      report.shutdown = {ShutdownOutcome::skipped_in_use, "another hozo uses the host; the last one powers it off"};
      return report;
    }
    return std::move(lease).error();
  }
  if (!lease->first_user()) {
    report.shutdown = {ShutdownOutcome::skipped_in_use, "another hozo uses the host; the last one powers it off"};
    return report;
  }
  auto marker = lease->woken_marker();
  if (!marker) return std::move(marker).error();
  if (!*marker || !marker_of_dead_run(**marker, state)) return report;
  const WokenMarker& m = **marker;
  bool up = systems.probe(job).state == ProbeState::up;
  if (!up && !dead_run_reached_box(m, state)) {
    // Killed while waking or waiting: the box may still be booting from that wake.
    spdlog::info("[{}] waiting for {} (woken by the dead run {}) to power it off", job.name, job.target_host, m.run_id);
    auto waited = wait_for_box(systems, job, cancel, Resend::no);
    up = waited.ok();
  }
  if (!up) {
    if (dead_run_reached_box(m, state)) {
      // It answered during the dead run and is down now: it was powered off (or went down) since.
      if (auto c = lease->clear_woken(); !c) spdlog::warn("[{}] {}", job.name, c.error().message);
      report.shutdown = {ShutdownOutcome::not_requested, fmt::format("the box woken by {} is already off", m.run_id)};
    } else {
      report.shutdown = {ShutdownOutcome::failed,
                         fmt::format("the box woken by {} never answered on SSH; cannot power it off (the marker stays: "
                                     "the next run that reaches it powers it off)",
                                     m.run_id)};
      report.exit_code = to_int(ExitCode::failure);
    }
    return report;
  }
  report.shutdown = finish_host_use(*lease, systems, job, true, PowerOffRules{true, true});
  if (report.shutdown.outcome == ShutdownOutcome::done) {
    report.shutdown.message = fmt::format("powered off the box woken by the dead run {}: {}", m.run_id, report.shutdown.message);
  } else if (report.shutdown.outcome == ShutdownOutcome::failed) {
    report.exit_code = to_int(ExitCode::failure);
  }
  return report;
}

}  // namespace hozo
