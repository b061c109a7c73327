#include "hozo/job.hpp"

#include <algorithm>
#include <future>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "hozo/box.hpp"
#include "hozo/chain.hpp"
#include "hozo/lock.hpp"
#include "hozo/log.hpp"
#include "hozo/notify.hpp"
#include "hozo/recover.hpp"
#include "hozo/ssh.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/syncoid_errors.hpp"
#include "hozo/transfer.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/verify.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

namespace {

constexpr std::chrono::seconds kRemoteCommandTimeout{120};
/// The early contact (made during preflight) stands for the wake stage's probe and the connect
/// stage's login only this long.
constexpr Millis kEarlyContactMaxAge{2000};
/// A host lease that took longer than this to get was held by another job.
constexpr Millis kLeaseWaitedAfter{100};

bool cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(); }

/// --create-bookmark for this run (decide_create_bookmark): asks `zpool get feature@bookmarks` of
/// each source pool only when the config leaves it to hozo and no_sync_snap is on.
BookmarkDecision bookmark_decision(CommandRunner& local, const Job& job) {
  const auto& s = job.syncoid;
  if (s.create_bookmark_set || !s.no_sync_snap) return decide_create_bookmark(s, BookmarkSupport::no, "");
  std::set<std::string> pools;
  for (const auto& pair : job.datasets) pools.insert(pool_of(pair.source));
  BookmarkDecision decision;
  for (const auto& pool : pools) {
    auto out = local.run({"zpool", "get", "feature@bookmarks", pool}, std::chrono::seconds(30));
    const auto support = out ? parse_bookmark_feature(*out) : BookmarkSupport::no;
    decision = decide_create_bookmark(s, support, pool);
    if (!decision.create) return decision;
  }
  return decision;
}

Error interrupted_error() { return Error{"interrupted by signal", ExitCode::interrupted}; }

/// The run's log file (run_log) for the lifetime of the run, with debug lines whatever the
/// console shows. Until the file is known (the run is recorded first) the lines are buffered:
/// the early contact logs its login while the run is still being recorded.
class RunLogSink {
 public:
  RunLogSink() {
    auto& logger = *spdlog::default_logger();
    if (logger.level() > spdlog::level::debug) {
      previous_level_ = logger.level();
      raised_ = true;
      // The console sinks keep (at least) their old threshold; the file gets debug lines too.
      for (auto& s : logger.sinks()) {
        if (s->level() < previous_level_) s->set_level(previous_level_);
      }
      logger.set_level(spdlog::level::debug);
    }
    run_log::begin();
  }
  RunLogSink(const RunLogSink&) = delete;
  RunLogSink& operator=(const RunLogSink&) = delete;
  ~RunLogSink() {
    run_log::end();
    if (raised_) spdlog::default_logger()->set_level(previous_level_);
  }

  /// From now on the lines go to `path`, starting with those buffered so far.
  void open(const std::filesystem::path& path) {
    if (auto problem = run_log::open(path); !problem.empty()) {
      spdlog::warn("cannot open run log {}: {}", path.string(), problem);
    }
  }

 private:
  spdlog::level::level_enum previous_level_ = spdlog::level::info;
  bool raised_ = false;  ///< the logger's level was lowered to debug for the run
};

/// The first contact with the box, made on a thread while the run is recorded and preflight and
/// lock check the local side: the probe (a TCP connect and the banner) and, when sshd answered,
/// the SSH login and the pool stage's listing (no other command runs). Used by wake, connect and
/// pool unless the lease had to wait or it is old.
struct EarlyContact {
  ProbeResult probe;
  std::optional<Result<std::unique_ptr<CommandRunner>>> session;  ///< only when the probe found sshd
  ListedPools pools;  ///< the pool stage's first round trips (pools_listable_early)
};

/// Starts the early contact. `abandon` (set when the run cannot begin) skips what is not done yet.
std::future<EarlyContact> start_early_contact(const Job& job, JobSystems& sys, const std::atomic<bool>* cancel,
                                              const std::atomic<bool>& abandon) {
  return std::async(std::launch::async, [&job, &sys, cancel, &abandon] {
    const auto go_on = [&] { return !cancelled(cancel) && !abandon.load(); };
    EarlyContact c;
    c.probe = sys.probe(job);
    if (c.probe.state == ProbeState::up && go_on()) c.session = sys.connect(job);
    if (c.session && *c.session && go_on() && pools_listable_early(job)) {
      c.pools = list_pools_early(***c.session, target_pools(job), kRemoteCommandTimeout);
    }
    return c;
  });
}

class Pipeline {
 public:
  Pipeline(const Job& job, StateStore& state, JobSystems& systems, const RunOptions& options, RunRecord record,
           std::future<EarlyContact> early_contact, std::chrono::steady_clock::time_point early_contact_at)
      : job_(job),
        state_(state),
        sys_(systems),
        opt_(options),
        rec_(std::move(record)),
        work_(job),
        early_contact_(std::move(early_contact)),
        early_contact_at_(early_contact_at) {}

  RunRecord run();

 private:
  template <typename Fn>
  Result<void> stage(std::string_view name, Fn&& body);
  void save();
  /// Stages whose record waits for the next save: quick, and nothing `hozo recover` needs.
  static bool quick_stage(std::string_view name) noexcept;
  void progress(std::string_view stage);  ///< the run's progress file: current stage
  void transfer_figure(const DatasetPair& pair);  ///< the progress file (at most every 2 s) during a send
  void record_transfer(const DatasetPair& pair, double seconds);
  void fail(std::string_view stage, const Error& error);
  Result<void> preflight(StageTiming& timing);
  Result<void> wake_and_wait();
  Result<void> connect();
  Result<void> disk();
  Result<void> pools();
  Result<void> sync();
  Result<void> sync_pair(const DatasetPair& pair);
  Result<void> verify();
  Result<void> reseed_select();
  Result<void> replace();
  void hold(StageTiming& t);
  /// The anchor run, when it left holds for this run to release and they were not released yet
  /// (marks them as released by this run); nullptr otherwise, or when holds are off.
  const RunRecord* release_due();
  /// ", previous hold(s) released (hozo:job)" or the first release warning, for a stage message.
  [[nodiscard]] std::string release_note(const std::vector<std::string>& warnings) const;
  const RunRecord* anchor_run();  ///< the job's last verified run (read once per run)
  void shutdown();
  void notify();
  bool sleep_cancellable(std::chrono::seconds d);

  const Job& job_;
  StateStore& state_;
  JobSystems& sys_;
  const RunOptions& opt_;
  RunRecord rec_;
  std::optional<HostLease> lease_;
  std::unique_ptr<CommandRunner> remote_;
  bool box_up_ = false;  ///< the box answered on SSH during this run
  SyncCause sync_cause_ = SyncCause::unknown;  ///< why the last syncoid failed
  std::chrono::steady_clock::time_point started_{};
  InstalledSyncoid syncoid_;  ///< found in preflight: which release the argv is built for
  /// The job as this run syncs and verifies it: the same as job_ apart from the decisions of this
  /// run (re-seed: only the chosen pairs, with their new targets).
  Job work_;
  std::vector<const ReseedPair*> reseeding_;  ///< re-seed: the pairs being sent in full
  TransferMeter meter_;       ///< figures of the current syncoid attempt
  std::chrono::steady_clock::time_point last_progress_{};  ///< last write of the progress file
  std::chrono::steady_clock::time_point last_figure_log_{};  ///< last progress line in the run log
  std::optional<std::optional<RunRecord>> anchor_;  ///< anchor_run(), once read
  bool unsaved_ = false;  ///< stage results not yet in the run file (quick_stage)
  bool released_previous_ = false;  ///< the anchor's holds left for this run were released
  std::future<EarlyContact> early_contact_;  ///< see EarlyContact
  std::optional<Result<std::unique_ptr<CommandRunner>>> early_session_;  ///< taken by connect()
  std::optional<ListedPools> early_pools_;  ///< the early listing, while remote_ is the early session
  std::chrono::steady_clock::time_point early_contact_at_{};
  bool lock_waited_ = false;  ///< the host lease was not free at once: the early contact is stale
  std::string_view current_stage_;  ///< the stage running now (a literal), empty between stages
};

constexpr std::chrono::seconds kProgressInterval{2};  ///< the progress file is written at most this often
constexpr std::chrono::seconds kFigureLogInterval{30};  ///< a progress line in the run log this often

template <typename Fn>
Result<void> Pipeline::stage(std::string_view name, Fn&& body) {
  if (cancelled(opt_.cancel)) {
    fail(name, interrupted_error());
    return interrupted_error();
  }
  if (opt_.reporter != nullptr) opt_.reporter->stage_started(job_.name, name);
  if (unsaved_ && !quick_stage(name)) save();  // before anything that may take long
  current_stage_ = name;
  progress(name);
  StageTiming timing;
  timing.name = std::string(name);
  timing.started = iso8601_utc(sys_.clock().now());
  const auto t0 = sys_.clock().steady_now();
  spdlog::debug("[{}] stage {} started", job_.name, name);
  Result<void> result = body(timing);
  current_stage_ = {};
  timing.seconds = std::chrono::duration<double>(sys_.clock().steady_now() - t0).count();
  timing.ok = result.ok();
  if (!result.ok()) timing.message = result.error().message;
  rec_.stages.push_back(timing);
  if (result.ok()) {
    spdlog::info("[{}] {} ok ({}){}{}", job_.name, name, format_duration(std::chrono::duration<double>(timing.seconds)),
                 timing.message.empty() ? "" : ": ", timing.message);
  } else {
    fail(name, result.error());
  }
  // Batched: the quick local checks are written with the next stage that may take long.
  if (result.ok() && quick_stage(name)) {
    unsaved_ = true;
  } else {
    save();
  }
  if (opt_.reporter != nullptr) opt_.reporter->stage_finished(job_.name, timing);
  return result;
}

void Pipeline::progress(std::string_view stage) {
  RunProgress p;
  p.run_id = rec_.run_id;
  p.job = rec_.job;
  p.stage = std::string(stage);
  p.updated = iso8601_utc(sys_.clock().now());
  last_progress_ = sys_.clock().steady_now();
  if (auto r = state_.write_progress(p); !r) spdlog::debug("[{}] progress: {}", job_.name, r.error().message);
}

void Pipeline::transfer_figure(const DatasetPair& pair) {
  const auto now = sys_.clock().steady_now();
  const std::string dataset = meter_.dataset().empty() ? pair.source : meter_.dataset();
  const auto text = [&] {
    return fmt::format("{}: {} of {}, {}/s, ETA {}", dataset, format_bytes(meter_.current_done()),
                       format_bytes(meter_.current_total()), format_bytes(static_cast<std::int64_t>(meter_.rate())),
                       meter_.eta_seconds() >= 0 ? format_duration(std::chrono::duration<double>(meter_.eta_seconds()))
                                                 : std::string("?"));
  };
  if (opt_.reporter != nullptr) opt_.reporter->transfer_line(job_.name, text());
  if (now - last_figure_log_ >= kFigureLogInterval) {
    last_figure_log_ = now;
    spdlog::debug("[{}] sent {}", job_.name, text());
  }
  if (now - last_progress_ < kProgressInterval) return;
  RunProgress p;
  p.run_id = rec_.run_id;
  p.job = rec_.job;
  p.stage = "sync";
  p.dataset = dataset;
  p.bytes_done = meter_.current_done();
  p.bytes_total = meter_.current_total();
  p.bytes_per_second = meter_.rate();
  p.eta_seconds = meter_.eta_seconds();
  p.updated = iso8601_utc(sys_.clock().now());
  last_progress_ = now;
  if (auto r = state_.write_progress(p); !r) spdlog::debug("[{}] progress: {}", job_.name, r.error().message);
}

void Pipeline::record_transfer(const DatasetPair& pair, double seconds) {
  DatasetTransfer t;
  t.source = pair.source;
  t.target = pair.target;
  t.bytes = meter_.bytes();
  t.estimated_bytes = meter_.estimated_bytes();
  t.bytes_from = std::string(to_string(meter_.source()));
  t.sends = meter_.sends();
  t.seconds = seconds;
  t.bytes_per_second = seconds > 0.0 ? static_cast<double>(t.bytes) / seconds : 0.0;
  rec_.bytes_sent += t.bytes;
  spdlog::info("[{}] {} -> {}: {} sent in {} ({}/s, {}{})", job_.name, t.source, t.target, format_bytes(t.bytes),
               format_duration(std::chrono::duration<double>(seconds)),
               format_bytes(static_cast<std::int64_t>(t.bytes_per_second)),
               t.bytes_from == "pv" ? "counted by pv" : (t.bytes_from == "estimate" ? "syncoid's estimate" : "no figure"),
               t.estimated_bytes >= 0 ? fmt::format(", estimated {}", format_bytes(t.estimated_bytes)) : "");
  rec_.transfers.push_back(std::move(t));
}

bool Pipeline::quick_stage(std::string_view name) noexcept {
  return name == "preflight" || name == "lock" || name == "connect" || name == "pool";
}

void Pipeline::save() {
  unsaved_ = false;
  if (auto r = state_.update_run(rec_); !r) spdlog::warn("[{}] cannot update state file: {}", job_.name, r.error().message);
}

void Pipeline::fail(std::string_view stage, const Error& error) {
  spdlog::error("[{}] {} failed: {}", job_.name, stage, error.message);
  if (rec_.failed_stage.empty()) {
    rec_.failed_stage = std::string(stage);
    rec_.error = error.message;
    rec_.exit_code = to_int(error.code == ExitCode::ok ? ExitCode::failure : error.code);
  }
}

bool Pipeline::sleep_cancellable(std::chrono::seconds d) {
  const auto deadline = sys_.clock().steady_now() + d;
  while (sys_.clock().steady_now() < deadline) {
    if (cancelled(opt_.cancel)) return false;
    sys_.clock().sleep_for(Millis(100));
  }
  return !cancelled(opt_.cancel);
}

Result<void> Pipeline::preflight(StageTiming& timing) {
  auto syncoid = find_syncoid(job_);
  if (!syncoid) return syncoid.error();
  syncoid_ = std::move(*syncoid);
  if (!syncoid_.version_known) spdlog::warn("[{}] {}; assuming syncoid {}", job_.name, syncoid_.problem, syncoid_.version.str());
  for (const auto& pair : job_.datasets) {
    if (auto r = validate_dataset_name(pair.source); !r) return r.error();
    if (auto r = validate_dataset_name(pair.target); !r) return r.error();
  }
  timing.message = fmt::format("{}, {} dataset pair(s)", syncoid_.describe(), job_.datasets.size());
  const auto bookmarks = bookmark_decision(sys_.local(), job_);
  work_.syncoid.create_bookmark = bookmarks.create;
  if (!job_.syncoid.create_bookmark_set && job_.syncoid.no_sync_snap) timing.message += ", " + bookmarks.why;
  if (opt_.reseed != nullptr) {
    timing.message += ", re-seed: the chain is checked on the box";
    return ok();
  }
  // The chain: the snapshot the box was last verified on must still be on the source, else no
  // incremental send is possible — say so now, without waking the box.
  if (const RunRecord* last = anchor_run()) {
    if (auto anchor = check_chain_anchor(sys_.local(), job_, *last, kRemoteCommandTimeout); !anchor) {
      rec_.error_cause = std::string(to_string(SyncCause::no_common_snapshot));
      return anchor.error();
    }
    timing.message += ", last verified snapshots present";
  }
  return ok();
}

const RunRecord* Pipeline::anchor_run() {
  if (!anchor_) {
    // The summary's last success is it, unless that was a re-seed whose datasets were not swapped
    // in: only then the history is read (every run file of the job).
    std::optional<RunRecord> found;
    if (auto all = state_.summaries()) {
      if (const auto it = all->find(job_.name); it != all->end() && it->second.last_success) {
        const RunRecord& s = *it->second.last_success;
        if (s.reseed.empty() || s.reseed == "replaced") found = s;
      }
    }
    if (!found) {
      if (auto js = state_.job(job_.name)) {
        if (const RunRecord* last = last_verified_run(*js)) found = *last;
      }
    }
    anchor_ = std::move(found);
  }
  return *anchor_ ? &**anchor_ : nullptr;
}

Result<void> Pipeline::wake_and_wait() {
  bool up = false;
  auto r = stage("wake", [&](StageTiming& t) -> Result<void> {
    ProbeResult probe;
    if (early_contact_.valid()) {
      auto early = early_contact_.get();
      probe = std::move(early.probe);
      early_session_ = std::move(early.session);
      if (early_session_) early_pools_ = std::move(early.pools);  // empty unless pools_listable_early
    }
    // The early contact was made before the lease was ours: when the lease was busy, another job
    // may have powered the box off (or on) meanwhile; probe (and log in) again then, or when it is old.
    if (lock_waited_ || sys_.clock().steady_now() - early_contact_at_ > kEarlyContactMaxAge) {
      early_session_.reset();
      early_pools_.reset();
      probe = sys_.probe(job_);
    }
    if (probe.state == ProbeState::up) {
      up = true;
      rec_.was_up_before = true;
      t.message = fmt::format("already up ({}), no packet sent", probe.banner);
      // A marker left by a crashed run must not make us power off a box someone else switched on
      // (unless the box is only up late after hozo's own wake).
      if (lease_ && settle_woken_marker(*lease_, state_, job_)) t.message += "; woken late by an earlier run";
      return ok();
    }
    // The marker goes first: a run killed while sending must still own the box it is waking.
    if (lease_) {
      if (auto m = lease_->mark_woken(rec_.run_id); !m) spdlog::warn("[{}] {}", job_.name, m.error().message);
    }
    auto sent = sys_.wake(job_);
    if (!sent) {
      if (lease_) (void)lease_->clear_woken();
      return sent.error();
    }
    rec_.woke_host = true;
    t.message = job_.wol_relay ? fmt::format("wake command sent through relay {}", job_.wol_relay->host)
                               : fmt::format("{} magic packet(s) sent to {}:{}", *sent, job_.wol_broadcast, job_.wol_port);
    return ok();
  });
  if (!r) return r;
  if (up) {
    box_up_ = true;
    return ok();
  }
  return stage("wait", [&](StageTiming& t) -> Result<void> {
    auto outcome = wait_for_box(sys_, job_, opt_.cancel);
    if (!outcome) return outcome.error();
    box_up_ = true;
    t.message = fmt::format("{}:{} answered after {} ({} probes, {} resends)", job_.target_host, job_.ssh_port,
                            format_duration(outcome->elapsed), outcome->probes, outcome->resends);
    return ok();
  });
}

Result<void> Pipeline::connect() {
  return stage("connect", [&](StageTiming& t) -> Result<void> {
    auto remote = early_session_ ? std::move(*early_session_) : sys_.connect(job_);
    early_session_.reset();
    if (!remote) return remote.error();
    remote_ = std::move(*remote);
    t.message = remote_->where();
    return ok();
  });
}

Result<void> Pipeline::disk() {
  return stage("disk", [&](StageTiming& t) -> Result<void> {
    auto ready = ready_backup_disk(sys_, job_, *remote_, opt_.cancel);
    if (!ready) return ready.error();
    t.message = std::move(*ready);
    return ok();
  });
}

Result<void> Pipeline::pools() {
  return stage("pool", [&](StageTiming& t) -> Result<void> {
    auto prepared = prepare_target_pools(sys_, job_, *remote_, target_pools(job_), kRemoteCommandTimeout,
                                         early_pools_ ? &*early_pools_ : nullptr);
    early_pools_.reset();
    if (!prepared) return prepared.error();
    t.message = std::move(*prepared);
    return ok();
  });
}

Result<void> Pipeline::sync_pair(const DatasetPair& pair) {
  const auto trust = syncoid_trust(job_);
  auto argv = build_syncoid_argv(work_, pair, trust, syncoid_.version);
  if (!argv) return argv.error();
  if (opt_.target_changes == TargetChanges::discard) {
    const auto before = argv->size();
    std::erase(*argv, std::string("--no-rollback"));
    if (argv->size() != before) spdlog::warn("[{}] --force-rollback: syncoid may discard changes on the target", job_.name);
  }
  for (int attempt = 1;; ++attempt) {
    ++rec_.attempts;
    spdlog::info("[{}] syncoid {} -> {}:{} (attempt {}/{})", job_.name, pair.source, job_.target_host, pair.target,
                 attempt, job_.retries + 1);
    spdlog::debug("[{}] running: {}", job_.name, describe_command(*argv));
    std::string stderr_tail;
    std::string stdout_tail;  // syncoid 2.1.x reports a skipped (missing) source on stdout only
    std::string output_tail;  // both streams, for the cause: syncoid prints some CRITICAL ERRORs on stdout
    meter_ = TransferMeter{};
    const auto on_line = [&](std::string_view prefix) {
      return [this, prefix, &pair, &stderr_tail, &stdout_tail, &output_tail](std::string_view line) {
        if (line.empty()) return;
        const bool figure = meter_.feed(line, sys_.clock().steady_now());
        if (figure && parse_pv_bytes(line)) {  // pv's counts: progress, not messages
          transfer_figure(pair);
          return;
        }
        spdlog::debug("[{}] syncoid{}: {}", job_.name, prefix, printable(line));
        if (opt_.reporter != nullptr) opt_.reporter->transfer_line(job_.name, line);
        const auto keep = [&](std::string& tail) {
          tail += std::string(line) + "\n";
          if (tail.size() > 16384) tail.erase(0, tail.size() - 16384);
        };
        if (prefix == "!") {
          keep(stderr_tail);
        } else {
          // syncoid 2.1/2.2 print some errors ("ERROR: cannot open ...") on stdout only.
          if (line.starts_with("ERROR") || line.starts_with("CRITICAL")) keep(stderr_tail);
          keep(stdout_tail);
        }
        // pv's progress lines carry no message; keep the tail for the cause free of them.
        if (line.find_first_not_of("0123456789.,:[]<>=%/ BKMGTiEbpsETA-") != std::string_view::npos) keep(output_tail);
      };
    };
    if (syncoid_needs_start_spacing(syncoid_.version)) space_syncoid_start(state_.dir(), job_.target_host, sys_.clock());
    auto result = sys_.run_syncoid(*argv, job_.syncoid.timeout, on_line(""), on_line("!"), opt_.cancel);
    if (!result) return result.error();
    if (result->cancelled || cancelled(opt_.cancel)) return interrupted_error();
    if (result->timed_out) {
      return make_error("syncoid timed out after {} (syncoid.timeout) and was killed",
                        format_duration(std::chrono::duration<double>(job_.syncoid.timeout)));
    }
    if (result->term_signal != 0) return make_error("syncoid {}", describe_termination(*result));
    const int exit_code = syncoid_effective_exit(syncoid_.version, result->exit_code, stdout_tail, pair.source);
    std::string skipped;  // syncoid 2.1.x exits 0 when it skips a missing source: say so in the error
    if (exit_code != result->exit_code) {
      skipped = fmt::format("{} does not exist (syncoid {} skipped it and exited 0)", pair.source,
                            syncoid_.version.str());
      stderr_tail += skipped + "\n";
      output_tail += skipped + "\n";
    }
    const auto outcome = classify_syncoid_exit(exit_code, stderr_tail);
    if (outcome.status == SyncoidStatus::ok) return ok();
    const std::string last_line = [&] {
      const auto lines = split_lines(stderr_tail);
      for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        if (!trim(*it).empty()) return std::string(trim(*it));
      }
      return std::string();
    }();
    const auto failure = classify_syncoid_output(output_tail);
    sync_cause_ = failure.cause;
    const std::string exit_text = fmt::format("syncoid exited with status {} ({})", outcome.exit_code, outcome.reason);
    std::string why;
    if (failure.cause == SyncCause::unknown) {
      why = fmt::format("{}{}{}", exit_text, last_line.empty() ? "" : ": ", printable(last_line));
      if (!failure.critical.empty() && failure.critical != printable(last_line)) why += "\nsyncoid: " + failure.critical;
    } else {
      why = describe_cause(failure, SyncContext{job_.name, pair.source, job_.target_host, pair.target});
      if (!failure.critical.empty()) why += "\nsyncoid: " + failure.critical;
      if (!failure.evidence.empty() && failure.evidence != failure.critical) why += "\ncause: " + failure.evidence;
      if (!skipped.empty()) why += "\n" + skipped;
      why += "\n" + exit_text;
    }
    if (!retry_can_help(failure.cause) || !should_retry(outcome, attempt, job_.retries)) return make_error("{}", why);
    spdlog::warn("[{}] {}; retrying in {}", job_.name, why,
                 format_duration(std::chrono::duration<double>(job_.retry_delay)));
    if (!sleep_cancellable(job_.retry_delay)) return interrupted_error();
  }
}

const RunRecord* Pipeline::release_due() {
  const RunRecord* anchor = anchor_run();
  if (released_previous_ || !job_.hold_snapshots || !remote_ || anchor == nullptr || !has_holds_to_release(*anchor)) {
    return nullptr;
  }
  released_previous_ = true;
  return anchor;
}

Result<void> Pipeline::sync() {
  return stage("sync", [&](StageTiming& t) -> Result<void> {
    // The holds the last verified run left for this one to release go while syncoid runs: its
    // newer holds stay, so the chain keeps a held snapshot at every moment.
    std::future<std::vector<std::string>> releasing;
    if (const RunRecord* anchor = release_due()) {
      releasing = std::async(std::launch::async, [this, anchor] {
        // Tagged like the run's other children (`hozo recover` finds them by it); their process
        // groups are not recorded, as only the pipeline's thread writes the record.
        SpawnWatch watch;
        watch.tag = rec_.run_id;
        ScopedSpawnWatch watching(watch);
        return release_previous_holds(sys_.local(), *remote_, job_, *anchor, kRemoteCommandTimeout);
      });
    }
    rec_.transfers.clear();
    rec_.bytes_sent = 0;
    auto result = [&]() -> Result<void> {
      for (const auto& pair : work_.datasets) {
        const auto t0 = sys_.clock().steady_now();
        meter_ = TransferMeter{};
        auto r = sync_pair(pair);
        record_transfer(pair, std::chrono::duration<double>(sys_.clock().steady_now() - t0).count());
        if (!r) {
          if (sync_cause_ != SyncCause::unknown) rec_.error_cause = std::string(to_string(sync_cause_));
          return r;
        }
      }
      return ok();
    }();
    const bool released = releasing.valid();
    const auto release_warnings = released ? releasing.get() : std::vector<std::string>{};
    if (!result) return result;
    t.message = fmt::format("{} dataset(s){}, {} attempt(s), {} sent", work_.datasets.size(),
                            opt_.reseed != nullptr ? " sent in full into new datasets" : "", rec_.attempts,
                            format_bytes(rec_.bytes_sent));
    if (released) t.message += release_note(release_warnings);
    return ok();
  });
}

std::string Pipeline::release_note(const std::vector<std::string>& warnings) const {
  return warnings.empty() ? fmt::format(", previous hold(s) released ({})", hold_tag(job_))
                          : fmt::format(", {} release warning(s): {}", warnings.size(), warnings.front());
}

Result<void> Pipeline::verify() {
  return stage("verify", [&](StageTiming& t) -> Result<void> {
    const auto report = verify_job(sys_.local(), *remote_, work_, kRemoteCommandTimeout);
    rec_.datasets.clear();
    for (const auto& d : report.datasets) {
      DatasetVerification v;
      v.source = d.source_dataset;
      v.target = d.target_dataset;
      v.newest_source_snapshot = d.source_snapshot.empty() ? "" : d.source_dataset + "@" + d.source_snapshot;
      v.newest_target_snapshot = d.target_snapshot.empty() ? "" : d.target_dataset + "@" + d.target_snapshot;
      v.guid_match = d.match;
      v.remote_snapshot_count = static_cast<std::int64_t>(d.target_snapshot_count);
      v.source_guid = d.source_guid;
      rec_.datasets.push_back(std::move(v));
    }
    if (!report.ok) return make_error("{}", report.error);
    t.message = fmt::format("{} dataset(s) verified", report.datasets.size());
    if (opt_.reseed == nullptr) hold(t);  // a re-seed holds once its datasets are in place (replace)
    return ok();
  });
}

void Pipeline::hold(StageTiming& t) {
  if (!job_.hold_snapshots) return;
  const auto warnings =
      hold_verified_snapshots(sys_.local(), *remote_, job_, rec_.datasets, anchor_run(), kRemoteCommandTimeout);
  t.message += warnings.empty() ? fmt::format(", held ({})", hold_tag(job_))
                                : fmt::format(", {} hold warning(s): {}", warnings.size(), warnings.front());
  // No sync stage released what the last verified run left held (nothing was sent): now, then.
  if (const RunRecord* anchor = release_due()) {
    t.message += release_note(release_previous_holds(sys_.local(), *remote_, job_, *anchor, kRemoteCommandTimeout));
  }
}

Result<void> Pipeline::reseed_select() {
  return stage("reseed", [&](StageTiming& t) -> Result<void> {
    work_.datasets.clear();
    std::vector<std::string> notes;
    for (const auto& p : opt_.reseed->pairs) {
      auto fresh = list_snapshots(*remote_, p.new_target, Recursive::no, kRemoteCommandTimeout);
      if (!fresh) return fresh.error();
      if (fresh->status == ListStatus::found) {
        return make_error("{} already exists on {}; a re-seed never writes into an existing dataset", p.new_target,
                          job_.target_host);
      }
      auto chain = chain_on_box(sys_.local(), *remote_, p.pair, kRemoteCommandTimeout);
      if (!chain) return chain.error();
      const bool broken = chain->target_exists && !chain->common;
      spdlog::info("[{}] re-seed: {} -> {}: {}", job_.name, p.pair.source, p.pair.target, chain->detail);
      if (!broken && !p.named) {
        notes.push_back(fmt::format("{} left alone ({})", p.pair.source, chain->detail));
        continue;
      }
      reseeding_.push_back(&p);
      work_.datasets.push_back(DatasetPair{p.pair.source, p.new_target, p.pair.recursive});
      notes.push_back(fmt::format("{} -> {} ({}{})", p.pair.source, p.new_target, broken ? "broken: " : "on request: ",
                                  chain->detail));
    }
    if (work_.datasets.empty()) notes.insert(notes.begin(), "nothing to re-seed: every chain is intact");
    t.message = join(notes, "; ");
    return ok();
  });
}

Result<void> Pipeline::replace() {
  return stage("replace", [&](StageTiming& t) -> Result<void> {
    std::optional<JobState> js;
    if (auto j = state_.job(job_.name)) js = std::move(*j);
    const RunRecord* previous = js ? last_verified_run(*js) : nullptr;
    std::vector<std::string> done;
    for (const ReseedPair* p : reseeding_) {
      auto r = replace_target(*remote_, job_, *p, opt_.reseed->replace, previous, kRemoteCommandTimeout);
      if (!r) return r.error();
      done.push_back(*r);
      // From now on the verified copy is the job's target: record it under that name.
      for (auto& d : rec_.datasets) {
        if (d.target == p->new_target || d.target.starts_with(p->new_target + "/")) {
          d.target = p->pair.target + d.target.substr(p->new_target.size());
          if (const auto at = d.newest_target_snapshot.find('@'); at != std::string::npos) {
            d.newest_target_snapshot = d.target + d.newest_target_snapshot.substr(at);
          }
        }
      }
    }
    rec_.reseed = "replaced";
    t.message = join(done, "; ");
    hold(t);
    return ok();
  });
}

void Pipeline::shutdown() {
  auto& sd = rec_.shutdown;
  if (!job_.shutdown_after) {
    sd.outcome = ShutdownOutcome::not_requested;
    sd.message = "shutdown_after is off";
    return;
  }
  if (!lease_) {
    sd.outcome = ShutdownOutcome::not_requested;
    sd.message = "host lease not held";
    return;
  }
  // The shutdown stage runs even after a failure or a signal: it is how the box gets switched off again.
  StageTiming timing;
  timing.name = "shutdown";
  timing.started = iso8601_utc(sys_.clock().now());
  const auto t0 = sys_.clock().steady_now();
  if (opt_.reporter != nullptr) opt_.reporter->stage_started(job_.name, "shutdown");
  progress("shutdown");
  sd = finish_host_use(*lease_, sys_, job_, box_up_, PowerOffRules{true, job_.shutdown_only_if_woken});
  timing.seconds = std::chrono::duration<double>(sys_.clock().steady_now() - t0).count();
  timing.ok = sd.outcome != ShutdownOutcome::failed;
  timing.message = fmt::format("{}: {}", to_string(sd.outcome), sd.message);
  rec_.stages.push_back(timing);
  if (timing.ok) {
    spdlog::info("[{}] shutdown: {}", job_.name, timing.message);
  } else {
    spdlog::error("[{}] shutdown failed: {}", job_.name, sd.message);
    if (rec_.failed_stage.empty()) fail("shutdown", Error{sd.message, ExitCode::failure});
  }
  // Batched: a skipped power-off changed nothing on the box, and the record is written when the
  // run finishes (or by notify, before anything is sent).
  if (sd.outcome == ShutdownOutcome::skipped_not_woken || sd.outcome == ShutdownOutcome::skipped_in_use) {
    unsaved_ = true;
  } else {
    save();
  }
  if (opt_.reporter != nullptr) opt_.reporter->stage_finished(job_.name, timing);
}

// Notifications run last (after shutdown, so they can say whether the box is off), for every outcome.
// A channel that fails is recorded and logged; it never changes the run's outcome or exit code.
void Pipeline::notify() {
  if (configured_channels(job_.notifications).empty()) return;
  if (unsaved_) save();  // a channel may hang until its timeout
  StageTiming timing;
  timing.name = "notify";
  timing.started = iso8601_utc(sys_.clock().now());
  const auto t0 = sys_.clock().steady_now();
  if (opt_.reporter != nullptr) opt_.reporter->stage_started(job_.name, "notify");
  RunRecord snapshot = rec_;
  snapshot.duration_seconds = std::chrono::duration<double>(t0 - started_).count();
  const auto results = sys_.notify(job_, snapshot);
  std::vector<std::string> parts;
  bool all_ok = true;
  for (const auto& n : results) {
    all_ok = all_ok && n.ok;
    parts.push_back(n.ok ? fmt::format("{} ok", n.channel) : fmt::format("{} FAILED: {}", n.channel, n.message));
  }
  rec_.notifications.insert(rec_.notifications.end(), results.begin(), results.end());
  timing.seconds = std::chrono::duration<double>(sys_.clock().steady_now() - t0).count();
  timing.ok = all_ok;
  timing.message = parts.empty() ? fmt::format("nothing to send ({} is not in notify_on)", to_string(rec_.outcome))
                                 : join(parts, "; ");
  rec_.stages.push_back(timing);
  if (all_ok) {
    spdlog::info("[{}] notify: {}", job_.name, timing.message);
  } else {
    spdlog::warn("[{}] notify: {}", job_.name, timing.message);
  }
  save();
  if (opt_.reporter != nullptr) opt_.reporter->stage_finished(job_.name, timing);
}

RunRecord Pipeline::run() {
  // Every child is tagged with the run id and its process group recorded in the running entry, so
  // that `hozo recover` or the next run can kill what a hard-killed run left behind.
  SpawnWatch watch;
  watch.tag = rec_.run_id;
  watch.on_spawn = [this](int pgid) {
    if (rec_.child_pgids.size() >= 64) rec_.child_pgids.erase(rec_.child_pgids.begin());
    rec_.child_pgids.push_back(pgid);
    // The short local zfs calls of preflight and verify are written with their stage; anything
    // that may run long (syncoid, a relay's ssh) is on disk before it gets going.
    if (current_stage_ == "preflight" || current_stage_ == "verify") {
      unsaved_ = true;
    } else {
      save();
    }
  };
  ScopedSpawnWatch watching(watch);
  started_ = sys_.clock().steady_now();
  spdlog::info("[{}] run {} started (pid {})", job_.name, rec_.run_id, rec_.pid);
  // The healthchecks /start ping; a failure is recorded, never fatal.
  for (auto& n : sys_.notify_start(job_)) {
    if (n.ok) continue;
    n.message = "start ping: " + n.message;
    rec_.notifications.push_back(std::move(n));
  }
  const auto steps = [&]() -> Result<void> {
    if (auto r = stage("preflight", [&](StageTiming& t) { return preflight(t); }); !r) return r;
    if (auto r = stage("lock", [&](StageTiming& t) -> Result<void> {
          const auto asked = sys_.clock().steady_now();
          auto lease = HostLease::acquire(state_.dir(), job_.target_host, job_.host_sharing,
                                          std::chrono::duration_cast<Millis>(job_.host_lock_timeout));
          lock_waited_ = sys_.clock().steady_now() - asked > kLeaseWaitedAfter;
          if (!lease) return lease.error();
          lease_.emplace(std::move(*lease));
          t.message = lease_->first_user() ? "first user of the host" : "sharing the host with another job";
          return ok();
        });
        !r) {
      return r;
    }
    if (auto r = wake_and_wait(); !r) return r;
    if (auto r = connect(); !r) return r;
    if (!job_.backup_device.empty()) {
      if (auto r = disk(); !r) return r;
    }
    if (auto r = pools(); !r) return r;
    if (opt_.reseed != nullptr) {
      rec_.reseed = "none";
      if (auto r = reseed_select(); !r) return r;
      if (reseeding_.empty()) return ok();
      if (auto r = sync(); !r) return r;
      if (auto r = verify(); !r) return r;
      rec_.reseed = "sent";
      if (opt_.reseed->replace == ReplaceTarget::keep) return ok();
      return replace();
    }
    if (auto r = sync(); !r) return r;
    return verify();
  };
  (void)steps();
  if (early_contact_.valid()) early_contact_.wait();  // preflight failed: bounded by the probe's and login's timeouts
  early_contact_ = {};
  early_session_.reset();
  early_pools_.reset();
  if (remote_) remote_.reset();  // close our SSH session before the box goes down
  shutdown();
  if (cancelled(opt_.cancel) || rec_.exit_code == to_int(ExitCode::interrupted)) {
    rec_.outcome = RunOutcome::interrupted;
    rec_.exit_code = to_int(ExitCode::interrupted);
    if (rec_.error.empty()) rec_.error = "interrupted by signal";
  } else if (rec_.failed_stage.empty()) {
    rec_.outcome = RunOutcome::success;
    rec_.exit_code = 0;
  } else {
    rec_.outcome = RunOutcome::failed;
  }
  notify();
  rec_.child_pgids.clear();  // all reaped by run_process
  return rec_;
}

}  // namespace

Result<RunRecord> run_job(const Job& job, StateStore& state, JobSystems& systems, const RunOptions& options) {
  RunRecord record;
  {
    RunLogSink log_sink;  // buffered until the run (and so its log file) exists
    // First of all, so the probe and login run while the run is recorded and during the start ping.
    std::atomic<bool> abandon{false};
    const auto early_at = systems.clock().steady_now();
    auto early = start_early_contact(job, systems, options.cancel, abandon);
    // Orphans of a hard-killed run go first.
    if (auto reaped = reap_dead_runs(state, job.name, ReapScope::latest); !reaped) {
      spdlog::warn("[{}] cannot clean up after dead runs: {}", job.name, reaped.error().message);
    }
    auto begun = state.begin_run(job.name);
    if (!begun) {
      abandon = true;
      return begun.error();  // ~future waits for the probe (its timeouts bound it)
    }
    RunRecord started = std::move(*begun);
    if (started.log_file.empty()) started.log_file = state.log_path_for(started).string();
    if (auto d = make_dirs(std::filesystem::path(started.log_file).parent_path()); !d) {
      spdlog::warn("[{}] {}", job.name, d.error().message);
    }
    log_sink.open(started.log_file);
    Pipeline pipeline(job, state, systems, options, std::move(started), std::move(early), early_at);
    record = pipeline.run();
  }
  auto finished = state.finish_run(record);
  if (!finished) {
    spdlog::error("[{}] cannot record the result: {}", job.name, finished.error().message);
  } else {
    record = std::move(*finished);
  }
  if (auto pruned = state.prune_logs(job.name, options.log_keep); !pruned) {
    spdlog::warn("[{}] {}", job.name, pruned.error().message);
  }
  spdlog::info("{}", summarize(record));
  if (options.reporter != nullptr) options.reporter->run_finished(record);
  return record;
}

std::string summarize(const RunRecord& r) {
  std::string s = fmt::format("{}: {} in {}", r.job, to_string(r.outcome),
                              format_duration(std::chrono::duration<double>(r.duration_seconds)));
  if (!r.failed_stage.empty()) s += fmt::format(" (stage {}: {})", r.failed_stage, r.error);
  if (r.outcome == RunOutcome::success) {
    s += fmt::format(", {} dataset(s) verified", r.datasets.size());
  }
  if (r.reseed == "none") s += ", nothing re-seeded (every chain intact)";
  if (r.reseed == "sent") s += ", re-seeded into new datasets (not swapped in: --replace does that)";
  if (r.reseed == "replaced") s += ", re-seeded and swapped into place";
  s += r.woke_host ? ", woke the box" : (r.was_up_before ? ", box was already up" : "");
  s += fmt::format(", shutdown: {}", to_string(r.shutdown.outcome));
  return s;
}

Result<std::string> describe_plan(const Job& job) {
  std::string out = fmt::format("job {}: dry run, nothing is executed\n", job.name);
  out += fmt::format("  lock     host lease {} ({})\n", job.target_host,
                     job.host_sharing == HostSharing::concurrent ? "shared" : "exclusive");
  if (job.wol_relay) {
    out += fmt::format("  wake     via relay {}@{}:{}\n", job.wol_relay->user, job.wol_relay->host, job.wol_relay->port);
  } else {
    out += fmt::format("  wake     {}x magic packet for {} to {}:{}{}\n", job.wol_repeat, job.mac_address,
                       job.wol_broadcast, job.wol_port,
                       job.wol_interface.empty() ? "" : fmt::format(" via {}", job.wol_interface));
  }
  out += fmt::format("  wait     for an SSH banner on {}:{} (up to {})\n", job.target_host, job.ssh_port,
                     format_duration(std::chrono::duration<double>(job.ssh_timeout)));
  out += fmt::format("  connect  {}@{}:{} (host keys: {}, known_hosts {})\n", job.ssh_user, job.target_host,
                     job.ssh_port, job.host_key_policy == HostKeyPolicy::strict ? "strict" : "accept-new",
                     ssh_options_for(job).known_hosts.string());
  if (!job.backup_device.empty()) {
    out += fmt::format("  disk     wait for {} and spin it up ({}; up to {})\n", job.backup_device,
                       job.agent && agent_can_address(job.backup_device) ? "through backupd" : "hdparm -C and dd over SSH",
                       format_duration(std::chrono::duration<double>(job.disk_spinup_timeout)));
  }
  {
    std::set<std::string> pools;
    for (const auto& pair : job.datasets) pools.insert(pool_of(pair.target));
    std::vector<std::string> dirs;
    for (const auto& d : job.target_pool_import_dirs) dirs.push_back("-d " + d);
    out += fmt::format("  pool     {}: health{}{}\n", join(std::vector<std::string>(pools.begin(), pools.end()), ", "),
                       job.agent ? " from backupd" : " from zpool over SSH",
                       job.target_pool_import
                           ? fmt::format(", zpool import{} if not imported", dirs.empty() ? "" : " " + join(dirs, " "))
                           : std::string(", no import (target_pool_import: false)"));
  }
  // The tools hozo runs on this machine: syncoid (which runs zfs itself) and zfs (verify).
  SyncoidVersion version = kSyncoid210;
  std::vector<std::string> tools;
  if (auto syncoid = find_syncoid(job)) {
    version = syncoid->version;
    tools.push_back(syncoid->describe());
  } else {
    spdlog::warn("[{}] {}", job.name, syncoid.error().message);
    tools.push_back("syncoid NOT FOUND");
  }
  if (const auto zfs = find_program("zfs")) {
    tools.push_back(fmt::format("zfs at {}", zfs->string()));
  } else {
    spdlog::warn("[{}] zfs not found (looked in PATH and {}); install ZFS (apt install zfsutils-linux)", job.name,
                 kSbinDirs);
    tools.emplace_back("zfs NOT FOUND");
  }
  out += fmt::format("  tools    {}\n", join(tools, ", "));
  const auto trust = syncoid_trust(job);
  Job work = job;
  {
    LocalCommandRunner local;
    const auto bookmarks = bookmark_decision(local, job);
    work.syncoid.create_bookmark = bookmarks.create;
    if (!job.syncoid.create_bookmark_set && job.syncoid.no_sync_snap) out += fmt::format("  bookmark {}\n", bookmarks.why);
  }
  for (const auto& pair : job.datasets) {
    auto argv = build_syncoid_argv(work, pair, trust, version);
    if (!argv) return argv.error();
    out += fmt::format("  sync     {}\n", describe_command(*argv));
  }
  for (const auto& pair : job.datasets) {
    out += fmt::format("  verify   newest snapshot of {} on {}:{} ({})\n", pair.source, job.target_host, pair.target,
                       describe_command(snapshot_listing_argv(pair.source, pair.recursive ? Recursive::yes : Recursive::no)));
  }
  if (!job.shutdown_after) {
    out += "  shutdown not requested (shutdown_after: false)\n";
  } else {
    out += fmt::format("  shutdown {} if hozo woke the box{} and no other job uses it\n",
                       job.agent ? fmt::format("backupd POST /shutdown (exports the pools; fallback \"{}\" over SSH)",
                                               job.shutdown_command)
                                 : fmt::format("\"{}\" over SSH", job.shutdown_command),
                       job.shutdown_only_if_woken ? "" : " (or it was already up)");
  }
  if (const auto channels = configured_channels(job.notifications); !channels.empty()) {
    std::vector<std::string> on;
    for (const auto n : job.notifications.notify_on) on.emplace_back(n == NotifyOn::success ? "success" : "failure");
    out += fmt::format("  notify   {} (notify_on: {})\n", join(channels, ", "), join(on, ", "));
  }
  return out;
}

}  // namespace hozo
