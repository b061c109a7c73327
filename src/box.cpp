#include "hozo/box.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/process.hpp"
#include "hozo/recover.hpp"
#include "hozo/ssh.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

SyncoidSshTrust syncoid_trust(const Job& job) {
  const SshOptions ssh = ssh_options_for(job);
  auto key = resolve_identity_file(ssh);
  // No key at all: the connect stage reports that; syncoid (and --dry-run) show the usual default.
  const std::string key_path = key ? key->string() : expand_home("~/.ssh/id_ed25519").string();
  return syncoid_trust_for(job, key_path, ssh.known_hosts.string());
}

std::string InstalledSyncoid::describe() const {
  return version_known ? fmt::format("syncoid {} at {}", version.str(), program.string())
                       : fmt::format("syncoid (version unknown, assuming {}) at {}", version.str(), program.string());
}

Result<InstalledSyncoid> find_syncoid(const Job& job) {
  const auto program = find_program(job.syncoid.path);
  if (!program) {
    if (job.syncoid.path.find('/') != std::string::npos) {
      return make_error(ExitCode::unavailable, "syncoid not found at {} (syncoid.path); install the sanoid package",
                        job.syncoid.path);
    }
    return make_error(ExitCode::unavailable,
                      "syncoid not found (looked for \"{}\" in PATH and {}); install the sanoid package or set "
                      "syncoid.path",
                      job.syncoid.path, kSbinDirs);
  }
  InstalledSyncoid found;
  found.program = std::filesystem::absolute(*program);
  if (auto v = detect_syncoid_version(found.program)) {
    found.version = *v;
    found.version_known = true;
  } else {
    found.problem = v.error().message;
  }
  return found;
}

void space_syncoid_start(const std::filesystem::path& state_dir, const std::string& host, Clock& clock) {
  constexpr double kSpacingSeconds = 1.5;
  const auto hosts = state_dir / "hosts";
  (void)make_dirs(hosts);
  const auto base = sanitize_file_component(host);
  auto lock = FileLock::acquire(hosts / (base + ".spawn"), LockMode::exclusive, Millis(60000));
  if (!lock) {
    spdlog::warn("cannot serialize syncoid starts for {}: {}", host, lock.error().message);
    return;
  }
  const auto stamp_path = hosts / (base + ".spawned");
  const auto now_seconds = [&] { return std::chrono::duration<double>(clock.now().time_since_epoch()).count(); };
  if (auto text = read_file(stamp_path)) {
    try {
      const double last = std::stod(*text);
      const double wait = kSpacingSeconds - (now_seconds() - last);
      if (wait > 0 && wait <= kSpacingSeconds) {
        clock.sleep_for(Millis(static_cast<long long>(wait * 1000.0) + 1));
      }
    } catch (const std::exception&) {
      // unreadable stamp: ignore it, it is rewritten below
    }
  }
  (void)write_file_atomic(stamp_path, fmt::format("{:.3f}\n", now_seconds()), 0600);
}

Result<bool> import_pool_if_needed(CommandRunner& remote, const Job& job, std::string_view pool,
                                   std::chrono::seconds timeout) {
  auto imported = pool_imported(remote, pool, timeout);
  if (!imported) return imported.error();
  if (*imported) return false;
  if (!job.target_pool_import) {
    return make_error("target pool {} is not imported on {} (target_pool_import is off)", pool, job.target_host);
  }
  spdlog::info("[{}] importing target pool {}", job.name, pool);
  if (auto imp = zpool_import(remote, pool, timeout, job.target_pool_import_dirs); !imp) return imp.error();
  return true;
}

Result<WaitOutcome> wait_for_box(JobSystems& systems, const Job& job, const std::atomic<bool>* cancel,
                                 Resend resend) {
  return systems.wait_up(
      job,
      [&] {
        if (resend == Resend::no) return;
        if (auto again = systems.wake(job); !again) {
          spdlog::warn("[{}] resending wake failed: {}", job.name, again.error().message);
        }
      },
      cancel);
}

Result<std::string> ready_backup_disk(JobSystems& systems, const Job& job, CommandRunner& remote,
                                      const std::atomic<bool>* cancel) {
  auto control = systems.disk_control(job, remote);
  spdlog::info("[{}] checking backup disk {} via {}", job.name, job.backup_device, control->describe());
  auto ready = ensure_disk_ready(*control, systems.clock(), job.disk_spinup_timeout, cancel);
  if (!ready) return ready.error();
  return fmt::format("{}: {}", job.backup_device, ready->message);
}

std::set<std::string> target_pools(const Job& job) {
  std::set<std::string> pools;
  for (const auto& pair : job.datasets) pools.insert(pool_of(pair.target));
  return pools;
}

bool pools_listable_early(const Job& job) { return job.backup_device.empty() && !job.agent; }

ListedPools list_pools_early(CommandRunner& remote, const std::set<std::string>& pools, std::chrono::seconds timeout) {
  ListedPools out;
  for (const auto& pool : pools) out.emplace(pool, zpool_health_if_imported(remote, pool, timeout));
  return out;
}

Result<std::string> prepare_target_pools(JobSystems& systems, const Job& job, CommandRunner& remote,
                                         const std::set<std::string>& pools, std::chrono::seconds timeout,
                                         const ListedPools* listed) {
  std::optional<AgentStatus> agent;
  if (auto st = systems.agent_status(job)) {
    agent = std::move(*st);
  } else {
    spdlog::warn("[{}] backupd status: {}; asking zpool over SSH instead", job.name, st.error().message);
  }
  std::vector<std::string> notes;
  bool health_from_agent = false;
  for (const auto& pool : pools) {
    const AgentPool* from_agent = agent ? agent->find_pool(pool) : nullptr;
    Result<PoolHealth> health = from_agent != nullptr ? Result<PoolHealth>(PoolHealth{pool, from_agent->health})
                                                      : make_error("pool {} not listed", pool);
    if (from_agent == nullptr) {  // backupd lists imported pools only
      // One round trip for an imported pool (the usual case): its health says it is there.
      const auto* early = listed != nullptr && listed->contains(pool) ? &listed->at(pool) : nullptr;
      auto imported_health = early != nullptr && early->ok() ? *early : zpool_health_if_imported(remote, pool, timeout);
      if (!imported_health) return imported_health.error();
      if (*imported_health) {
        health = std::move(**imported_health);
      } else {
        auto imported = import_pool_if_needed(remote, job, pool, timeout);
        if (!imported) return imported.error();
        if (*imported) notes.push_back(fmt::format("{} imported", pool));
        health = zpool_health(remote, pool, timeout);
      }
    }
    if (!health) return health.error();
    health_from_agent = health_from_agent || from_agent != nullptr;
    if (health->health == "DEGRADED") {
      spdlog::warn("[{}] target pool {} is DEGRADED; using it anyway", job.name, pool);
      notes.push_back(fmt::format("{} DEGRADED", pool));
    } else if (!health->online()) {
      return make_error("target pool {} is {}; refusing to use it", pool, health->health);
    } else {
      notes.push_back(fmt::format("{} ONLINE", pool));
    }
  }
  if (health_from_agent) notes.emplace_back("health from backupd");
  return join(notes, ", ");
}

bool settle_woken_marker(HostLease& lease, const StateStore& state, const Job& job) {
  if (!lease.first_user()) return false;
  auto marker = lease.woken_marker();
  if (!marker || !*marker) return false;
  const std::string& id = (*marker)->run_id;
  bool late_wake = false;
  if (auto run = state.find_run(id); run && *run) {
    late_wake = (*run)->failed_stage == "wait" && (*run)->woke_host;
  } else if (auto js = state.summaries()) {
    for (const auto& [name, summary] : *js) {
      const auto& r = summary.last_restore;
      late_wake = late_wake || (r && r->restore_id == id && r->failed_stage == "wake" && r->woke_host);
    }
  }
  if (!late_wake && marker_of_dead_run(**marker, state)) {
    spdlog::info("[{}] {} was woken by {}, which died without powering it off; hozo powers it off at the end",
                 job.name, job.target_host, id);
    return true;
  }
  if (late_wake) {
    spdlog::info("[{}] {} is up after the wake of {} (which gave up waiting for it); hozo powers it off at the end",
                 job.name, job.target_host, id);
    return true;
  }
  if (auto c = lease.clear_woken(); !c) spdlog::warn("[{}] {}", job.name, c.error().message);
  return false;
}

std::string power_off_detail(const JobSystems& systems, const Job& job) {
  auto detail = systems.last_power_off_detail();
  return detail.empty() ? fmt::format("\"{}\" sent; SSH port closed", job.shutdown_command) : detail;
}

ShutdownResult finish_host_use(HostLease& lease, JobSystems& systems, const Job& job, bool box_up, PowerOffRules rules) {
  ShutdownResult sd;
  if (!rules.requested) {
    sd = {ShutdownOutcome::not_requested, "shutdown_after is off"};
  } else if (auto last = lease.try_become_last(); !last) {
    sd = {ShutdownOutcome::failed, last.error().message};
  } else if (!*last) {
    sd = {ShutdownOutcome::skipped_in_use, "another job still uses the host; the last one powers it off"};
  } else {
    const auto woken = lease.woken_by_hozo();
    const bool hozo_woke = woken && *woken;
    if (!box_up && !hozo_woke) {
      sd = {ShutdownOutcome::not_requested, "the box was never reached"};
    } else if (!box_up) {
      // hozo woke it but it never answered: there is no SSH to send a shutdown over. The marker
      // stays: a later run that reaches the box powers it off.
      sd = {ShutdownOutcome::failed, "hozo sent a wake but the box never answered on SSH; cannot power it off"};
    } else if (rules.only_if_woken && !hozo_woke) {
      sd = {ShutdownOutcome::skipped_not_woken,
            "the box was already up when hozo came; leaving it on (shutdown_only_if_woken)"};
    } else if (auto off = systems.power_off(job); !off) {
      sd = {ShutdownOutcome::failed, off.error().message};
    } else {
      sd = {ShutdownOutcome::done, power_off_detail(systems, job)};
      if (auto c = lease.clear_woken(); !c) spdlog::warn("[{}] {}", job.name, c.error().message);
    }
  }
  lease.release();
  return sd;
}

}  // namespace hozo
