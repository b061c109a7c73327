#include "hozo/state.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <pwd.h>
#include <set>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/lock.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "state_json.hpp"

namespace hozo {

using nlohmann::json;
using namespace state_json;  // read_field, require_object, unknown_keys, start_object, shape_error

// ---------------------------------------------------------------------------------------------
// Enums

namespace {

constexpr std::array<std::pair<RunOutcome, std::string_view>, 4> kRunOutcomes{{
    {RunOutcome::running, "running"},
    {RunOutcome::success, "success"},
    {RunOutcome::failed, "failed"},
    {RunOutcome::interrupted, "interrupted"},
}};

constexpr std::array<std::pair<ShutdownOutcome, std::string_view>, 5> kShutdownOutcomes{{
    {ShutdownOutcome::not_requested, "not_requested"},
    {ShutdownOutcome::skipped_not_woken, "skipped_not_woken"},
    {ShutdownOutcome::skipped_in_use, "skipped_in_use"},
    {ShutdownOutcome::done, "done"},
    {ShutdownOutcome::failed, "failed"},
}};

}  // namespace

std::string_view to_string(RunOutcome outcome) noexcept {
  for (const auto& [value, name] : kRunOutcomes) {
    if (value == outcome) return name;
  }
  return "failed";
}

std::string_view to_string(ShutdownOutcome outcome) noexcept {
  for (const auto& [value, name] : kShutdownOutcomes) {
    if (value == outcome) return name;
  }
  return "not_requested";
}

std::optional<RunOutcome> parse_run_outcome(std::string_view text) noexcept {
  for (const auto& [value, name] : kRunOutcomes) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::optional<ShutdownOutcome> parse_shutdown_outcome(std::string_view text) noexcept {
  for (const auto& [value, name] : kShutdownOutcomes) {
    if (name == text) return value;
  }
  return std::nullopt;
}

// JSON converters of the records: state_json.cpp; their shared helpers: state_json.hpp.

const RunRecord* JobState::last() const noexcept { return runs.empty() ? nullptr : &runs.back(); }

const RunRecord* JobState::last_completed() const noexcept {
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    if (it->outcome != RunOutcome::running) return &*it;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Free helpers

std::filesystem::path default_state_path() {
  if (const char* dirs = std::getenv("STATE_DIRECTORY"); dirs != nullptr && *dirs != '\0') {
    const auto first = split(dirs, ':').front();
    if (!first.empty()) return std::filesystem::path(std::string(first)) / "state.json";
  }
  if (::geteuid() == 0) return "/var/lib/hozo/state.json";
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::filesystem::path(xdg) / "hozo" / "state.json";
  }
  std::filesystem::path home;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    home = h;
  } else if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_dir != nullptr) {
    home = pw->pw_dir;
  }
  return home / ".local" / "state" / "hozo" / "state.json";
}

std::string make_run_id(SystemTime t, std::int64_t pid) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, pid);
}

bool run_id_less(std::string_view a, std::string_view b) {
  const auto pa = split(a, '-');
  const auto pb = split(b, '-');
  const auto is_digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  const auto strip_zeros = [](std::string_view s) {
    while (s.size() > 1 && s.front() == '0') s.remove_prefix(1);
    return s;
  };
  for (std::size_t i = 0; i < pa.size() && i < pb.size(); ++i) {
    auto x = pa[i];
    auto y = pb[i];
    if (is_digits(x) && is_digits(y)) {
      x = strip_zeros(x);
      y = strip_zeros(y);
      if (x.size() != y.size()) return x.size() < y.size();
    }
    if (x != y) return x < y;
  }
  return pa.size() < pb.size();
}

namespace {

/// Fields of /proc/<pid>/stat after the command name: [0] = state (field 3), [19] = starttime (22).
std::optional<std::vector<std::string>> proc_stat_fields(std::int64_t pid) {
  auto text = read_file(fmt::format("/proc/{}/stat", pid));
  if (!text) return std::nullopt;
  const auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> fields;
  for (const auto part : split(trim(std::string_view(*text).substr(close + 1)), ' ')) {
    if (!part.empty()) fields.emplace_back(part);
  }
  if (fields.size() < 20) return std::nullopt;
  return fields;
}

const std::string& this_hostname() {
  static const std::string name = [] {
    std::array<char, 256> buf{};
    if (::gethostname(buf.data(), buf.size() - 1) != 0) return std::string();
    return std::string(buf.data());
  }();
  return name;
}

}  // namespace

std::optional<std::uint64_t> process_start_ticks(std::int64_t pid) {
  const auto fields = proc_stat_fields(pid);
  if (!fields) return std::nullopt;
  const auto ticks = parse_int((*fields)[19]);
  if (!ticks) return std::nullopt;
  return static_cast<std::uint64_t>(*ticks);
}

bool run_is_orphaned(const RunRecord& run) {
  if (run.outcome != RunOutcome::running || run.pid <= 0) return false;
  if (!run.hostname.empty() && run.hostname != this_hostname()) return false;
  const auto pid = static_cast<pid_t>(run.pid);
  if (static_cast<std::int64_t>(pid) != run.pid) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const auto fields = proc_stat_fields(run.pid);
  if (!fields) return false;  // no /proc: kill() said it exists
  if ((*fields)[0] == "Z" || (*fields)[0] == "X") return true;
  if (run.pid_start_ticks != 0) {
    const auto ticks = parse_int((*fields)[19]);
    if (ticks && static_cast<std::uint64_t>(*ticks) != run.pid_start_ticks) return true;  // pid reused
  }
  return false;
}

bool resolve_orphaned(RunRecord& run) {
  if (!run_is_orphaned(run)) return false;
  run.outcome = RunOutcome::interrupted;
  run.exit_code = to_int(ExitCode::interrupted);
  if (run.error.empty()) {
    run.error = fmt::format("hozo process {} on {} ended without finishing the run (killed, crashed or rebooted)",
                            run.pid, run.hostname.empty() ? this_hostname() : run.hostname);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The summary file and the run files

namespace {
constexpr int kFormatVersion = 2;
}  // namespace

struct StateStore::Document {
  std::map<std::string, JobSummary> jobs;
  std::map<std::string, JobState> legacy;  ///< version 1 files: every job's full history, until migrated
  json extra = json::object();             ///< unknown top-level keys
  int version = kFormatVersion;
};

namespace {

/// The summary's copy of a run: everything but the per-stage and per-channel lists.
RunRecord slim(const RunRecord& r) {
  RunRecord s = r;
  s.stages.clear();
  s.notifications.clear();
  return s;
}

bool same_or_newer(const RunRecord& run, const std::optional<RunRecord>& than) {
  return !than || than->run_id == run.run_id || !run_id_less(run.run_id, than->run_id);
}

/// Applies `run` to its job's summary: a running run is listed under running; a finished one leaves
/// that list and becomes last (and last_success) unless a newer one is already there.
void apply_to_summary(JobSummary& js, const RunRecord& run) {
  std::erase_if(js.running, [&](const RunRecord& r) { return r.run_id == run.run_id; });
  if (run.outcome == RunOutcome::running) {
    js.running.push_back(slim(run));
    std::stable_sort(js.running.begin(), js.running.end(),
                     [](const RunRecord& a, const RunRecord& b) { return run_id_less(a.run_id, b.run_id); });
    return;
  }
  if (same_or_newer(run, js.last)) js.last = slim(run);
  if (run.outcome == RunOutcome::success) {
    if (same_or_newer(run, js.last_success)) js.last_success = slim(run);
  } else if (js.last_success && js.last_success->run_id == run.run_id) {
    js.last_success.reset();  // a run rewritten as not successful
  }
}

/// The summary of a version-1 job entry (its full history).
JobSummary summarize_history(const JobState& st) {
  JobSummary js;
  for (const auto& r : st.runs) apply_to_summary(js, r);
  if (!st.restores.empty()) js.last_restore = st.restores.back();
  js.extra = st.extra;
  return js;
}

/// Parses the file's text; an Error here means "corrupt" (its message says why).
Result<StateStore::Document> parse_document(const std::string& text) {
  StateStore::Document doc;
  if (auto fast = read_summaries_fast(text)) {
    doc.jobs = std::move(fast->jobs);
    doc.version = fast->version;
    return doc;
  }
  spdlog::debug("state: summary read by the full JSON reader (an unknown key, an older format, or damage)");
  try {
    const json root = json::parse(text);
    require_object(root, "the state file");
    doc.version = 1;
    read_field(root, "version", doc.version);
    if (const auto it = root.find("jobs"); it != root.end() && !it->is_null()) {
      require_object(*it, "jobs");
      for (const auto& [name, value] : it->items()) {
        require_object(value, "a job");
        if (doc.version < 2 || value.contains("runs")) {
          auto st = value.get<JobState>();
          doc.jobs.emplace(name, summarize_history(st));
          doc.legacy.emplace(name, std::move(st));
        } else {
          doc.jobs.emplace(name, value.get<JobSummary>());
        }
      }
    }
    doc.extra = unknown_keys(root, {"format", "version", "updated", "jobs"});
  } catch (const json::exception& e) {
    return make_error("{}", e.what());
  }
  return doc;
}

/// Compact JSON; error messages may carry invalid UTF-8 from remote tools: replaced, never thrown.
std::string dump_compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

std::string serialize_document(const StateStore::Document& doc, SystemTime now) {
  json root = start_object(doc.extra);
  root["format"] = "hozo-state";
  root["version"] = std::max(doc.version, kFormatVersion);
  root["updated"] = iso8601_utc(now);
  json jobs = json::object();
  for (const auto& [name, job] : doc.jobs) jobs[name] = job;
  root["jobs"] = std::move(jobs);
  return dump_compact(root);
}

std::string compact_utc(SystemTime t) {
  auto s = iso8601_utc(t);
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '-' || c == ':'; }), s.end());
  return s;
}

std::size_t resolve_job(JobState& job) {
  std::size_t changed = 0;
  for (auto& run : job.runs) changed += resolve_orphaned(run) ? 1 : 0;
  return changed;
}

const SystemClock& system_clock_instance() {
  static const SystemClock clock;
  return clock;
}

std::filesystem::path lock_path_of(const std::filesystem::path& state) {
  auto p = state;
  p += ".lock";
  return p;
}

Error lock_failed(const Error& e, const std::filesystem::path& what) {
  if (e.code != ExitCode::tempfail) return e;
  return make_error(ExitCode::tempfail, "{} is locked by another hozo process: {}", what.string(), e.message);
}

/// Removes temp files of killed writers (`.<name>.tmp-*`) from `dir`; the caller holds the lock of
/// every file written there, so none of them can be in use.
void remove_stray_temps(const std::filesystem::path& dir, std::string_view only_for = {}) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (!starts_with(name, ".") || name.find(".tmp-") == std::string::npos) continue;
    if (!only_for.empty() && !starts_with(name, "." + std::string(only_for) + ".tmp-")) continue;
    std::error_code rm_ec;
    std::filesystem::remove(entry.path(), rm_ec);
    spdlog::debug("removed stray temporary file {}", entry.path().string());
  }
}

/// Reads the summary file; a missing file is an empty document. Corrupt content goes to `problem`.
Result<StateStore::Document> read_document(const std::filesystem::path& path, std::string& problem) {
  auto text = read_file(path);
  if (!text) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) return StateStore::Document{};
    return std::move(text).error();
  }
  auto doc = parse_document(*text);
  if (doc) return doc;
  problem = doc.error().message;
  return StateStore::Document{};
}

/// A run file's record; nullopt (with a warning) when it is missing or does not parse.
template <typename T>
std::optional<T> read_json_file(const std::filesystem::path& path, bool warn_missing = false) {
  auto text = read_file(path);
  if (!text) {
    if (warn_missing) spdlog::warn("{}", text.error().message);
    return std::nullopt;
  }
  try {
    return json::parse(*text).get<T>();
  } catch (const json::exception& e) {
    spdlog::warn("state: skipping {}: it does not parse ({})", path.string(), e.what());
    return std::nullopt;
  }
}

bool is_run_file(const std::filesystem::path& p) {
  const auto name = p.filename().string();
  return p.extension() == ".json" && !starts_with(name, ".") && name != "restores.json";
}

/// The run files of a job directory, oldest first.
std::vector<std::filesystem::path> list_run_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (is_run_file(entry.path())) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return run_id_less(a.stem().string(), b.stem().string()); });
  return files;
}

void sort_runs(std::vector<RunRecord>& runs) {
  std::stable_sort(runs.begin(), runs.end(),
                   [](const RunRecord& a, const RunRecord& b) { return run_id_less(a.run_id, b.run_id); });
}

/// A restore whose process is gone is marked interrupted (same test as for runs).
bool resolve_orphaned_restore(RestoreRecord& restore) {
  RunRecord probe;
  probe.outcome = restore.outcome;
  probe.pid = restore.pid;
  probe.pid_start_ticks = restore.pid_start_ticks;
  probe.hostname = restore.hostname;
  if (!resolve_orphaned(probe)) return false;
  restore.outcome = probe.outcome;
  restore.exit_code = probe.exit_code;
  if (restore.error.empty()) restore.error = probe.error;
  return true;
}

void normalize_restores(std::vector<RestoreRecord>& restores, std::size_t limit) {
  std::stable_sort(restores.begin(), restores.end(), [](const RestoreRecord& a, const RestoreRecord& b) {
    return run_id_less(a.restore_id, b.restore_id);
  });
  if (restores.size() > limit) {
    restores.erase(restores.begin(), restores.begin() + static_cast<std::ptrdiff_t>(restores.size() - limit));
  }
}

/// Adds the entries of `from` whose id is not in `into` yet.
template <typename T, typename Id>
void merge_missing(std::vector<T>& into, const std::vector<T>& from, Id id) {
  std::set<std::string, std::less<>> have;
  for (const auto& x : into) have.insert(id(x));
  for (const auto& x : from) {
    if (!have.contains(id(x))) into.push_back(x);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// StateStore

StateStore::StateStore(std::filesystem::path path, std::size_t history_limit, StateOptions options)
    : path_(std::move(path)), history_limit_(std::max<std::size_t>(history_limit, 1)), options_(options) {}

Result<StateStore> StateStore::open(std::filesystem::path path, std::size_t history_limit, StateOptions options) {
  if (path.empty()) return make_error(ExitCode::usage, "the state file path is empty");
  std::error_code ec;
  auto absolute = std::filesystem::absolute(path, ec);
  if (ec) return make_error("cannot resolve state file path {}: {}", path.string(), ec.message());
  if (!absolute.has_filename()) return make_error(ExitCode::usage, "the state file path {} names a directory", path.string());
  if (auto made = make_dirs(absolute.parent_path(), 0700); !made) return std::move(made).error();
  return StateStore(std::move(absolute), history_limit, options);
}

SystemTime StateStore::now() const {
  return options_.clock != nullptr ? options_.clock->now() : system_clock_instance().now();
}

std::filesystem::path StateStore::runs_dir(std::string_view job) const {
  return dir() / "runs" / sanitize_file_component(job);
}

namespace {

std::filesystem::path run_file_in(const std::filesystem::path& job_dir, std::string_view run_id) {
  return job_dir / (sanitize_file_component(run_id) + ".json");
}

std::filesystem::path progress_file_in(const std::filesystem::path& job_dir, std::string_view run_id) {
  return job_dir / (sanitize_file_component(run_id) + ".progress");
}

/// Takes the lock of a job's files (creating the job directory first).
Result<FileLock> lock_job_dir(const std::filesystem::path& job_dir, LockMode mode, Millis timeout) {
  if (auto made = make_dirs(job_dir, 0700); !made) return std::move(made).error();
  auto lock = FileLock::acquire(job_dir / ".lock", mode, timeout);
  if (!lock) return lock_failed(lock.error(), job_dir);
  return lock;
}

}  // namespace

Result<StateStore::Document> StateStore::load_exclusive() const {
  std::string problem;
  auto doc = read_document(path_, problem);
  if (!doc || problem.empty()) return doc;

  auto aside = path_;
  aside += ".corrupt-" + compact_utc(now());
  std::error_code ec;
  for (int n = 1; std::filesystem::exists(aside, ec) && n < 1000; ++n) {
    aside = path_;
    aside += fmt::format(".corrupt-{}-{}", compact_utc(now()), n);
  }
  if (::rename(path_.c_str(), aside.c_str()) != 0) {
    return make_error("state file {} is corrupt ({}) and could not be moved aside: {}", path_.string(), problem,
                      std::strerror(errno));
  }
  spdlog::warn("state file {} is corrupt ({}); moved it to {} and started a fresh state", path_.string(),
               printable(problem), aside.string());
  quarantined_ = aside;
  return StateStore::Document{};
}

Result<StateStore::Document> StateStore::read_shared() const {
  quarantined_.reset();
  {
    auto lock = FileLock::acquire(lock_path_of(path_), LockMode::shared, options_.lock_timeout);
    if (!lock) return lock_failed(lock.error(), path_);
    std::string problem;
    auto doc = read_document(path_, problem);
    if (!doc || problem.empty()) return doc;
  }
  // Corrupt: moving it aside needs the exclusive lock (and another process may have done it already).
  auto lock = FileLock::acquire(lock_path_of(path_), LockMode::exclusive, options_.lock_timeout);
  if (!lock) return lock_failed(lock.error(), path_);
  return load_exclusive();
}

template <typename Fn>
Result<void> StateStore::mutate(Fn&& change) {
  auto lock = FileLock::acquire(lock_path_of(path_), LockMode::exclusive, options_.lock_timeout);
  if (!lock) return lock_failed(lock.error(), path_);
  auto doc = load_exclusive();
  if (!doc) return std::move(doc).error();
  // Every writer of state.json holds the exclusive lock: a temp file of it left here is from a killed writer.
  remove_stray_temps(dir(), path_.filename().string());

  // Version 1: give every run and restore its own file first (never overwriting one), then the summary
  // replaces the old document. A crash in between repeats the migration on the next write.
  for (const auto& [name, st] : doc->legacy) {
    const auto job_dir = runs_dir(name);
    if (auto made = make_dirs(job_dir, 0700); !made) return std::move(made).error();
    std::error_code ec;
    for (const auto& run : st.runs) {
      const auto file = run_file_in(job_dir, run.run_id);
      if (std::filesystem::exists(file, ec)) continue;
      if (auto w = write_file_atomic(file, dump_compact(run), 0600); !w) return w;
    }
    if (!st.restores.empty()) {
      const auto file = job_dir / "restores.json";
      std::vector<RestoreRecord> restores;
      if (auto existing = read_json_file<JobState>(file)) restores = existing->restores;
      merge_missing(restores, st.restores, [](const RestoreRecord& r) { return r.restore_id; });
      normalize_restores(restores, history_limit_);
      if (auto w = write_file_atomic(file, dump_compact(json{{"restores", restores}}), 0600); !w) return w;
    }
    spdlog::info("state: migrated {} run(s) of job {} to {}", st.runs.size(), name, job_dir.string());
  }
  doc->legacy.clear();

  if (auto changed = change(*doc); !changed) return changed;
  std::string text;
  try {
    text = serialize_document(*doc, now());
  } catch (const json::exception& e) {
    return make_error(ExitCode::software, "cannot serialize state for {}: {}", path_.string(), e.what());
  }
  return write_file_atomic(path_, text, 0600);
}

Result<void> StateStore::store_run_file(const RunRecord& run) const {
  const auto file = run_file_in(runs_dir(run.job), run.run_id);
  RunRecord stored = run;
  // Keep the unknown keys the file had (written by a newer hozo, say).
  if (auto existing = read_json_file<RunRecord>(file); existing && !existing->extra.empty()) {
    json extra = existing->extra;
    extra.update(run.extra);
    stored.extra = std::move(extra);
  }
  try {
    return write_file_atomic(file, dump_compact(stored), 0600);
  } catch (const json::exception& e) {
    return make_error(ExitCode::software, "cannot serialize run {} of job {}: {}", run.run_id, run.job, e.what());
  }
}

Result<void> StateStore::prune_run_files(std::string_view job) const {
  const auto job_dir = runs_dir(job);
  remove_stray_temps(job_dir);
  auto files = list_run_files(job_dir);
  if (files.size() <= history_limit_) return ok();
  std::size_t count = files.size();
  std::vector<std::filesystem::path> running;
  std::error_code ec;
  // Finished runs go first, oldest first; runs still going are kept unless there are too many of them.
  for (const auto& file : files) {
    if (count <= history_limit_) break;
    const auto run = read_json_file<RunRecord>(file);
    if (run && run->outcome == RunOutcome::running && !run_is_orphaned(*run)) {
      running.push_back(file);
      continue;
    }
    std::filesystem::remove(file, ec);
    std::filesystem::remove(progress_file_in(job_dir, file.stem().string()), ec);
    --count;
  }
  for (const auto& file : running) {
    if (count <= history_limit_) break;
    std::filesystem::remove(file, ec);
    --count;
  }
  return ok();
}

namespace {

/// The full record of a run listed in a summary: its file, else the version-1 copy, else the slim one.
RunRecord full_record(const std::filesystem::path& job_dir, const RunRecord& listed, const StateStore::Document& doc) {
  if (auto rec = read_json_file<RunRecord>(run_file_in(job_dir, listed.run_id))) return *rec;
  if (const auto it = doc.legacy.find(listed.job); it != doc.legacy.end()) {
    for (const auto& r : it->second.runs) {
      if (r.run_id == listed.run_id) return r;
    }
  }
  return listed;
}

}  // namespace

Result<RunRecord> StateStore::begin_run(std::string_view job) {
  if (job.empty()) return make_error(ExitCode::software, "begin_run: empty job name");
  const auto started = now();
  RunRecord run;
  run.job = std::string(job);
  run.started = iso8601_utc(started);
  run.outcome = RunOutcome::running;
  run.pid = static_cast<std::int64_t>(::getpid());
  run.pid_start_ticks = process_start_ticks(run.pid).value_or(0);
  run.hostname = this_hostname();

  const auto job_dir = runs_dir(job);
  auto lock = lock_job_dir(job_dir, LockMode::exclusive, options_.lock_timeout);
  if (!lock) return std::move(lock).error();
  remove_stray_temps(job_dir);

  // Runs of this job whose process is gone are settled as interrupted.
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  std::vector<RunRecord> settled;
  if (const auto it = doc->jobs.find(run.job); it != doc->jobs.end()) {
    for (const auto& listed : it->second.running) {
      if (!run_is_orphaned(listed)) continue;
      auto full = full_record(job_dir, listed, *doc);
      resolve_orphaned(full);
      if (auto w = store_run_file(full); !w) return std::move(w).error();
      settled.push_back(std::move(full));
    }
  }

  // Time + pid is unique per process and second; a process that begins several runs (tests, a
  // future daemon) numbers them so ids stay unique even after old entries were trimmed.
  const auto base = make_run_id(started, run.pid);
  static std::atomic<unsigned> runs_begun{0};
  unsigned n = ++runs_begun;
  run.run_id = n == 1 ? base : fmt::format("{}-{}", base, n);
  std::error_code ec;
  while (std::filesystem::exists(run_file_in(job_dir, run.run_id), ec) || std::filesystem::exists(log_path_for(run), ec)) {
    run.run_id = fmt::format("{}-{}", base, ++n);
  }
  run.log_file = log_path_for(run).string();
  if (auto w = store_run_file(run); !w) return std::move(w).error();
  auto stored = mutate([&](Document& d) -> Result<void> {
    auto& js = d.jobs[run.job];
    for (const auto& s : settled) apply_to_summary(js, s);
    apply_to_summary(js, run);
    return ok();
  });
  if (!stored) return std::move(stored).error();
  if (auto made = make_dirs(std::filesystem::path(run.log_file).parent_path(), 0700); !made) {
    return std::move(made).error();
  }
  return run;
}

Result<void> StateStore::update_run(const RunRecord& run) {
  if (run.job.empty() || run.run_id.empty()) {
    return make_error(ExitCode::software, "update_run: the record has no job name or run id");
  }
  quarantined_.reset();
  const auto job_dir = runs_dir(run.job);
  auto lock = lock_job_dir(job_dir, LockMode::exclusive, options_.lock_timeout);
  if (!lock) return std::move(lock).error();
  const bool known = std::filesystem::exists(run_file_in(job_dir, run.run_id));
  if (auto w = store_run_file(run); !w) return w;
  // A stage update of a running run touches its own file only; the summary changes when it ends.
  if (run.outcome == RunOutcome::running && known) return ok();
  if (auto pruned = prune_run_files(run.job); !pruned) return pruned;
  return mutate([&](Document& d) -> Result<void> {
    apply_to_summary(d.jobs[run.job], run);
    return ok();
  });
}

Result<RunRecord> StateStore::finish_run(const RunRecord& run) {
  if (run.outcome == RunOutcome::running) {
    return make_error(ExitCode::software, "finish_run: run {} of job {} still has outcome running", run.run_id,
                      run.job);
  }
  RunRecord done = run;
  const auto finished = now();
  if (done.finished.empty()) done.finished = iso8601_utc(finished);
  if (done.duration_seconds <= 0.0) {
    const auto start = parse_iso8601_utc(done.started);
    const auto end = parse_iso8601_utc(done.finished);
    if (start && end && *end >= *start) {
      done.duration_seconds = std::chrono::duration<double>(*end - *start).count();
    }
  }
  if (auto stored = update_run(done); !stored) return std::move(stored).error();
  remove_progress(done.job, done.run_id);
  return done;
}

namespace {

std::vector<RestoreRecord> read_restores(const std::filesystem::path& job_dir) {
  if (auto st = read_json_file<JobState>(job_dir / "restores.json")) return st->restores;
  return {};
}

}  // namespace

Result<RestoreRecord> StateStore::begin_restore(std::string_view job) {
  if (job.empty()) return make_error(ExitCode::software, "begin_restore: empty job name");
  const auto started = now();
  RestoreRecord restore;
  restore.job = std::string(job);
  restore.started = iso8601_utc(started);
  restore.outcome = RunOutcome::running;
  restore.pid = static_cast<std::int64_t>(::getpid());
  restore.pid_start_ticks = process_start_ticks(restore.pid).value_or(0);
  restore.hostname = this_hostname();
  restore.restore_id = make_run_id(started, restore.pid);
  return write_restore(restore, true);
}

Result<RestoreRecord> StateStore::update_restore(const RestoreRecord& restore) { return write_restore(restore, false); }

Result<RestoreRecord> StateStore::write_restore(const RestoreRecord& restore, bool is_new) {
  quarantined_.reset();
  if (restore.job.empty() || restore.restore_id.empty()) {
    return make_error(ExitCode::software, "update_restore: the record has no job name or restore id");
  }
  RestoreRecord done = restore;
  if (done.outcome != RunOutcome::running) {
    if (done.finished.empty()) done.finished = iso8601_utc(now());
    if (done.duration_seconds <= 0.0) {
      const auto start = parse_iso8601_utc(done.started);
      const auto end = parse_iso8601_utc(done.finished);
      if (start && end && *end >= *start) done.duration_seconds = std::chrono::duration<double>(*end - *start).count();
    }
  }
  const auto job_dir = runs_dir(done.job);
  auto lock = lock_job_dir(job_dir, LockMode::exclusive, options_.lock_timeout);
  if (!lock) return std::move(lock).error();
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  auto restores = read_restores(job_dir);
  if (const auto it = doc->legacy.find(done.job); it != doc->legacy.end()) {
    merge_missing(restores, it->second.restores, [](const RestoreRecord& r) { return r.restore_id; });
  }
  bool found = false;
  for (auto& existing : restores) {
    if (is_new || existing.restore_id != done.restore_id) {
      resolve_orphaned_restore(existing);
      continue;
    }
    json extra = existing.extra;
    extra.update(done.extra);
    existing = done;
    existing.extra = std::move(extra);
    found = true;
  }
  if (!found) {
    // A new restore: its id must be unique within the job.
    std::set<std::string, std::less<>> taken;
    for (const auto& r : restores) taken.insert(r.restore_id);
    const auto base = done.restore_id;
    for (unsigned n = 2; taken.contains(done.restore_id); ++n) done.restore_id = fmt::format("{}-{}", base, n);
    restores.push_back(done);
  }
  normalize_restores(restores, history_limit_);
  remove_stray_temps(job_dir);
  if (auto w = write_file_atomic(job_dir / "restores.json", dump_compact(json{{"restores", restores}}), 0600); !w) {
    return std::move(w).error();
  }
  auto stored = mutate([&](Document& d) -> Result<void> {
    auto& js = d.jobs[done.job];
    if (!restores.empty()) js.last_restore = restores.back();
    return ok();
  });
  if (!stored) return std::move(stored).error();
  return done;
}

Result<JobState> StateStore::read_job(std::string_view name, const Document* doc) const {
  JobState st;
  const auto job_dir = runs_dir(name);
  std::error_code ec;
  if (std::filesystem::is_directory(job_dir, ec)) {
    auto lock = FileLock::acquire(job_dir / ".lock", LockMode::shared, options_.lock_timeout);
    if (!lock) return lock_failed(lock.error(), job_dir);
    for (const auto& file : list_run_files(job_dir)) {
      if (auto run = read_json_file<RunRecord>(file)) st.runs.push_back(std::move(*run));
    }
    st.restores = read_restores(job_dir);
  }
  if (doc != nullptr) {
    if (const auto it = doc->legacy.find(std::string(name)); it != doc->legacy.end()) {
      merge_missing(st.runs, it->second.runs, [](const RunRecord& r) { return r.run_id; });
      merge_missing(st.restores, it->second.restores, [](const RestoreRecord& r) { return r.restore_id; });
      st.extra = it->second.extra;
    } else if (const auto js = doc->jobs.find(std::string(name)); js != doc->jobs.end()) {
      st.extra = js->second.extra;
    }
  }
  sort_runs(st.runs);
  normalize_restores(st.restores, std::max(history_limit_, st.restores.size()));
  resolve_job(st);
  for (auto& r : st.restores) resolve_orphaned_restore(r);
  return st;
}

Result<JobState> StateStore::job(std::string_view name) const {
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  return read_job(name, &*doc);
}

Result<std::map<std::string, JobState>> StateStore::all() const {
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  std::map<std::string, JobState> out;
  for (const auto& [name, js] : doc->jobs) {
    auto st = read_job(name, &*doc);
    if (!st) return std::move(st).error();
    out.emplace(name, std::move(*st));
  }
  return out;
}

Result<std::map<std::string, JobSummary>> StateStore::summaries() const {
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  for (auto& [name, js] : doc->jobs) {
    const auto running = js.running;
    for (auto run : running) {
      if (resolve_orphaned(run)) apply_to_summary(js, run);
    }
  }
  return std::move(doc->jobs);
}

Result<std::optional<RunRecord>> StateStore::find_run(std::string_view run_id) const {
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  for (const auto& [name, st] : doc->legacy) {
    for (const auto& r : st.runs) {
      if (r.run_id == run_id) return std::optional<RunRecord>(r);
    }
  }
  for (const auto& [name, js] : doc->jobs) {
    if (auto rec = job_run(name, run_id)) return rec;
  }
  return std::optional<RunRecord>();
}

std::optional<RunRecord> StateStore::job_run(std::string_view job, std::string_view run_id) const {
  auto rec = read_json_file<RunRecord>(run_file_in(runs_dir(job), run_id));
  if (rec) resolve_orphaned(*rec);
  return rec;
}

Result<std::vector<RunRecord>> StateStore::reap_orphaned() {
  quarantined_.reset();
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  std::vector<RunRecord> changed;
  for (const auto& [name, js] : doc->jobs) {
    std::vector<RunRecord> orphans;
    for (const auto& r : js.running) {
      if (run_is_orphaned(r)) orphans.push_back(r);
    }
    if (orphans.empty()) continue;
    const auto job_dir = runs_dir(name);
    auto lock = lock_job_dir(job_dir, LockMode::exclusive, options_.lock_timeout);
    if (!lock) return std::move(lock).error();
    for (auto& listed : orphans) {
      listed = full_record(job_dir, listed, *doc);
      resolve_orphaned(listed);
      if (auto w = store_run_file(listed); !w) return std::move(w).error();
    }
    auto stored = mutate([&](Document& d) -> Result<void> {
      for (const auto& r : orphans) apply_to_summary(d.jobs[name], r);
      return ok();
    });
    if (!stored) return std::move(stored).error();
    changed.insert(changed.end(), std::make_move_iterator(orphans.begin()), std::make_move_iterator(orphans.end()));
  }
  // A version-1 file's running entries that were never listed in a summary of their own.
  if (changed.empty() && !doc->legacy.empty()) {
    auto stored = mutate([](Document&) -> Result<void> { return ok(); });
    if (!stored) return std::move(stored).error();
  }
  return changed;
}

Result<void> StateStore::write_progress(const RunProgress& progress) const {
  const auto job_dir = runs_dir(progress.job);
  if (auto made = make_dirs(job_dir, 0700); !made) return made;
  // Only read while the run goes on (a crash ends the run: it is then shown as interrupted), so
  // not fsynced: two fewer disk flushes per stage and per progress update.
  return write_file_atomic(progress_file_in(job_dir, progress.run_id), dump_compact(progress), 0600,
                           Durability::volatile_);
}

std::optional<RunProgress> StateStore::read_progress(std::string_view job, std::string_view run_id) const {
  return read_json_file<RunProgress>(progress_file_in(runs_dir(job), run_id));
}

void StateStore::remove_progress(std::string_view job, std::string_view run_id) const {
  std::error_code ec;
  std::filesystem::remove(progress_file_in(runs_dir(job), run_id), ec);
}

std::filesystem::path StateStore::log_path_for(const RunRecord& run) const {
  return logs_dir() / sanitize_file_component(run.job) / (sanitize_file_component(run.run_id) + ".log");
}

Result<std::size_t> StateStore::prune_logs(std::string_view job, std::size_t keep) const {
  const auto job_dir = logs_dir() / sanitize_file_component(job);
  std::error_code ec;
  if (!std::filesystem::exists(job_dir, ec)) return std::size_t{0};
  std::vector<std::filesystem::path> logs;
  for (const auto& entry : std::filesystem::directory_iterator(job_dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".log") logs.push_back(entry.path());
  }
  if (ec) return make_error("cannot list {}: {}", job_dir.string(), ec.message());
  std::sort(logs.begin(), logs.end(), [](const auto& a, const auto& b) {
    return run_id_less(b.stem().string(), a.stem().string());  // newest first
  });
  std::size_t removed = 0;
  for (std::size_t i = keep; i < logs.size(); ++i) {
    if (!std::filesystem::remove(logs[i], ec) && ec) {
      return make_error("cannot remove old log {}: {}", logs[i].string(), ec.message());
    }
    ++removed;
  }
  return removed;
}

}  // namespace hozo
