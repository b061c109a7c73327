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

namespace hozo {

using nlohmann::json;

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

// ---------------------------------------------------------------------------------------------
// JSON converters

namespace {

/// Reads `key` into `out` when present and not null; wrong types throw nlohmann::json::type_error.
template <typename T>
void read_field(const json& j, const char* key, T& out) {
  const auto it = j.find(key);
  if (it != j.end() && !it->is_null()) it->get_to(out);
}

[[noreturn]] void shape_error(const json& j, std::string_view what) {
  throw json::type_error::create(302, fmt::format("{} (got {})", what, j.type_name()), &j);
}

void require_object(const json& j, std::string_view what) {
  if (!j.is_object()) shape_error(j, fmt::format("{} must be an object", what));
}

/// The keys of `j` that are not in `known`, to be written back unchanged.
json unknown_keys(const json& j, std::initializer_list<std::string_view> known) {
  json extra = json::object();
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) extra[key] = value;
  }
  return extra;
}

/// Starts an output object from the unknown keys kept at read time.
json start_object(const json& extra) { return extra.is_object() ? extra : json::object(); }

}  // namespace

void to_json(json& j, RunOutcome v) { j = std::string(to_string(v)); }
void from_json(const json& j, RunOutcome& v) {
  // A newer hozo may know more outcomes; such a run has ended somehow, so it is not "running".
  v = parse_run_outcome(j.get<std::string>()).value_or(RunOutcome::failed);
}

void to_json(json& j, ShutdownOutcome v) { j = std::string(to_string(v)); }
void from_json(const json& j, ShutdownOutcome& v) {
  v = parse_shutdown_outcome(j.get<std::string>()).value_or(ShutdownOutcome::not_requested);
}

void to_json(json& j, const StageTiming& v) {
  j = start_object(v.extra);
  j["name"] = v.name;
  j["started"] = v.started;
  j["seconds"] = v.seconds;
  j["ok"] = v.ok;
  j["message"] = v.message;
}

void from_json(const json& j, StageTiming& v) {
  require_object(j, "a stage");
  v = StageTiming{};
  read_field(j, "name", v.name);
  read_field(j, "started", v.started);
  read_field(j, "seconds", v.seconds);
  read_field(j, "ok", v.ok);
  read_field(j, "message", v.message);
  v.extra = unknown_keys(j, {"name", "started", "seconds", "ok", "message"});
}

void to_json(json& j, const DatasetVerification& v) {
  j = start_object(v.extra);
  j["source"] = v.source;
  j["target"] = v.target;
  j["newest_source_snapshot"] = v.newest_source_snapshot;
  j["newest_target_snapshot"] = v.newest_target_snapshot;
  j["guid_match"] = v.guid_match;
  j["remote_snapshot_count"] = v.remote_snapshot_count;
  j["source_guid"] = v.source_guid;
  j["held_snapshot"] = v.held_snapshot;
}

void from_json(const json& j, DatasetVerification& v) {
  require_object(j, "a dataset verification");
  v = DatasetVerification{};
  read_field(j, "source", v.source);
  read_field(j, "target", v.target);
  read_field(j, "newest_source_snapshot", v.newest_source_snapshot);
  read_field(j, "newest_target_snapshot", v.newest_target_snapshot);
  read_field(j, "guid_match", v.guid_match);
  read_field(j, "remote_snapshot_count", v.remote_snapshot_count);
  read_field(j, "source_guid", v.source_guid);
  read_field(j, "held_snapshot", v.held_snapshot);
  v.extra = unknown_keys(j, {"source", "target", "newest_source_snapshot", "newest_target_snapshot", "guid_match",
                             "remote_snapshot_count", "source_guid", "held_snapshot"});
}

void to_json(json& j, const ShutdownResult& v) { j = json{{"outcome", v.outcome}, {"message", v.message}}; }

void from_json(const json& j, ShutdownResult& v) {
  require_object(j, "shutdown");
  v = ShutdownResult{};
  read_field(j, "outcome", v.outcome);
  read_field(j, "message", v.message);
}

void to_json(json& j, const NotificationResult& v) {
  j = start_object(v.extra);
  j["channel"] = v.channel;
  j["ok"] = v.ok;
  j["message"] = v.message;
}

void from_json(const json& j, NotificationResult& v) {
  require_object(j, "a notification");
  v = NotificationResult{};
  read_field(j, "channel", v.channel);
  read_field(j, "ok", v.ok);
  read_field(j, "message", v.message);
  v.extra = unknown_keys(j, {"channel", "ok", "message"});
}

void to_json(json& j, const RunRecord& v) {
  j = start_object(v.extra);
  j["run_id"] = v.run_id;
  j["job"] = v.job;
  j["started"] = v.started;
  j["finished"] = v.finished;
  j["duration_seconds"] = v.duration_seconds;
  j["outcome"] = v.outcome;
  j["exit_code"] = v.exit_code;
  j["failed_stage"] = v.failed_stage;
  j["error"] = v.error;
  j["stages"] = v.stages;
  j["datasets"] = v.datasets;
  j["attempts"] = v.attempts;
  j["woke_host"] = v.woke_host;
  j["was_up_before"] = v.was_up_before;
  j["shutdown"] = v.shutdown;
  j["notifications"] = v.notifications;
  j["pid"] = v.pid;
  j["pid_start_ticks"] = v.pid_start_ticks;
  j["hostname"] = v.hostname;
  j["log_file"] = v.log_file;
  j["child_pgids"] = v.child_pgids;
  j["error_cause"] = v.error_cause;
}

void from_json(const json& j, RunRecord& v) {
  require_object(j, "a run");
  v = RunRecord{};
  read_field(j, "run_id", v.run_id);
  read_field(j, "job", v.job);
  read_field(j, "started", v.started);
  read_field(j, "finished", v.finished);
  read_field(j, "duration_seconds", v.duration_seconds);
  read_field(j, "outcome", v.outcome);
  read_field(j, "exit_code", v.exit_code);
  read_field(j, "failed_stage", v.failed_stage);
  read_field(j, "error", v.error);
  read_field(j, "stages", v.stages);
  read_field(j, "datasets", v.datasets);
  read_field(j, "attempts", v.attempts);
  read_field(j, "woke_host", v.woke_host);
  read_field(j, "was_up_before", v.was_up_before);
  read_field(j, "shutdown", v.shutdown);
  read_field(j, "notifications", v.notifications);
  read_field(j, "pid", v.pid);
  read_field(j, "pid_start_ticks", v.pid_start_ticks);
  read_field(j, "hostname", v.hostname);
  read_field(j, "log_file", v.log_file);
  read_field(j, "child_pgids", v.child_pgids);
  read_field(j, "error_cause", v.error_cause);
  v.extra = unknown_keys(j, {"run_id", "job", "started", "finished", "duration_seconds", "outcome", "exit_code",
                             "failed_stage", "error", "stages", "datasets", "attempts", "woke_host", "was_up_before",
                             "shutdown", "notifications", "pid", "pid_start_ticks", "hostname", "log_file",
                             "child_pgids", "error_cause"});
}

void to_json(json& j, const RestoreRecord& v) {
  j = start_object(v.extra);
  j["restore_id"] = v.restore_id;
  j["job"] = v.job;
  j["started"] = v.started;
  j["finished"] = v.finished;
  j["duration_seconds"] = v.duration_seconds;
  j["outcome"] = v.outcome;
  j["exit_code"] = v.exit_code;
  j["failed_stage"] = v.failed_stage;
  j["error"] = v.error;
  j["source"] = v.source;
  j["backup"] = v.backup;
  j["target"] = v.target;
  j["snapshot"] = v.snapshot;
  j["restored_snapshot"] = v.restored_snapshot;
  j["in_place"] = v.in_place;
  j["woke_host"] = v.woke_host;
  j["was_up_before"] = v.was_up_before;
  j["shutdown"] = v.shutdown;
  j["pid"] = v.pid;
  j["pid_start_ticks"] = v.pid_start_ticks;
  j["hostname"] = v.hostname;
}

void from_json(const json& j, RestoreRecord& v) {
  require_object(j, "a restore");
  v = RestoreRecord{};
  read_field(j, "restore_id", v.restore_id);
  read_field(j, "job", v.job);
  read_field(j, "started", v.started);
  read_field(j, "finished", v.finished);
  read_field(j, "duration_seconds", v.duration_seconds);
  read_field(j, "outcome", v.outcome);
  read_field(j, "exit_code", v.exit_code);
  read_field(j, "failed_stage", v.failed_stage);
  read_field(j, "error", v.error);
  read_field(j, "source", v.source);
  read_field(j, "backup", v.backup);
  read_field(j, "target", v.target);
  read_field(j, "snapshot", v.snapshot);
  read_field(j, "restored_snapshot", v.restored_snapshot);
  read_field(j, "in_place", v.in_place);
  read_field(j, "woke_host", v.woke_host);
  read_field(j, "was_up_before", v.was_up_before);
  read_field(j, "shutdown", v.shutdown);
  read_field(j, "pid", v.pid);
  read_field(j, "pid_start_ticks", v.pid_start_ticks);
  read_field(j, "hostname", v.hostname);
  v.extra = unknown_keys(j, {"restore_id", "job", "started", "finished", "duration_seconds", "outcome", "exit_code",
                             "failed_stage", "error", "source", "backup", "target", "snapshot", "restored_snapshot",
                             "in_place", "woke_host", "was_up_before", "shutdown", "pid", "pid_start_ticks",
                             "hostname"});
}

void to_json(json& j, const JobState& v) {
  j = start_object(v.extra);
  j["runs"] = v.runs;
  if (const auto* last = v.last()) j["last"] = *last;
  // Only when there is one, so a job that was never restored looks exactly as before.
  if (!v.restores.empty()) j["restores"] = v.restores;
}

void from_json(const json& j, JobState& v) {
  require_object(j, "a job");
  v = JobState{};
  if (const auto it = j.find("runs"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) shape_error(*it, "runs must be an array");
    it->get_to(v.runs);
  }
  if (const auto it = j.find("restores"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) shape_error(*it, "restores must be an array");
    it->get_to(v.restores);
  }
  v.extra = unknown_keys(j, {"runs", "last", "restores"});
}

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
// The document and its file

struct StateStore::Document {
  std::map<std::string, JobState> jobs;
  json extra = json::object();  ///< unknown top-level keys
  int version = 1;
};

namespace {

constexpr int kFormatVersion = 1;

/// Parses the file's text; an Error here means "corrupt" (its message says why).
Result<StateStore::Document> parse_document(const std::string& text) {
  StateStore::Document doc;
  try {
    const json root = json::parse(text);
    require_object(root, "the state file");
    read_field(root, "version", doc.version);
    if (const auto it = root.find("jobs"); it != root.end() && !it->is_null()) {
      require_object(*it, "jobs");
      for (const auto& [name, value] : it->items()) doc.jobs.emplace(name, value.get<JobState>());
    }
    doc.extra = unknown_keys(root, {"format", "version", "updated", "jobs"});
  } catch (const json::exception& e) {
    return make_error("{}", e.what());
  }
  return doc;
}

std::string serialize_document(const StateStore::Document& doc, SystemTime now) {
  json root = start_object(doc.extra);
  root["format"] = "hozo-state";
  root["version"] = std::max(doc.version, kFormatVersion);
  root["updated"] = iso8601_utc(now);
  json jobs = json::object();
  for (const auto& [name, job] : doc.jobs) jobs[name] = job;
  root["jobs"] = std::move(jobs);
  // Compact: with 200 jobs x 50 runs indentation would double the size and the parse time
  // (`jq . state.json` pretty-prints). Error messages may carry invalid UTF-8 from remote tools:
  // replace it rather than throw.
  return root.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string compact_utc(SystemTime t) {
  auto s = iso8601_utc(t);
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '-' || c == ':'; }), s.end());
  return s;
}

/// Keeps runs sorted by run id and at most `limit` long (finished runs are dropped before running ones).
void normalize_job(JobState& job, std::size_t limit) {
  std::stable_sort(job.runs.begin(), job.runs.end(),
                   [](const RunRecord& a, const RunRecord& b) { return run_id_less(a.run_id, b.run_id); });
  for (auto it = job.runs.begin(); job.runs.size() > limit && it != job.runs.end();) {
    it = it->outcome == RunOutcome::running ? it + 1 : job.runs.erase(it);
  }
  if (job.runs.size() > limit) {
    job.runs.erase(job.runs.begin(), job.runs.begin() + static_cast<std::ptrdiff_t>(job.runs.size() - limit));
  }
}

/// Replaces the run with the same id (keeping unknown keys the file had) or adds it.
void upsert_run(JobState& job, const RunRecord& run) {
  for (auto& existing : job.runs) {
    if (existing.run_id != run.run_id) continue;
    json extra = existing.extra;
    extra.update(run.extra);
    existing = run;
    existing.extra = std::move(extra);
    return;
  }
  job.runs.push_back(run);
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

namespace {

std::filesystem::path lock_path_of(const std::filesystem::path& state) {
  auto p = state;
  p += ".lock";
  return p;
}

/// Reads the file; a missing file is an empty document. Corrupt content is reported through `problem`.
Result<StateStore::Document> read_document(const std::filesystem::path& path, std::string& problem) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec) return make_error("cannot check state file {}: {}", path.string(), ec.message());
    return StateStore::Document{};
  }
  auto text = read_file(path);
  if (!text) return std::move(text).error();
  auto doc = parse_document(*text);
  if (doc) return doc;
  problem = doc.error().message;
  return StateStore::Document{};
}

Error lock_failed(const Error& e, const std::filesystem::path& state) {
  if (e.code != ExitCode::tempfail) return e;
  return make_error(ExitCode::tempfail, "state file {} is locked by another hozo process: {}", state.string(),
                    e.message);
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
  quarantined_.reset();
  auto lock = FileLock::acquire(lock_path_of(path_), LockMode::exclusive, options_.lock_timeout);
  if (!lock) return lock_failed(lock.error(), path_);
  auto doc = load_exclusive();
  if (!doc) return std::move(doc).error();

  // Every writer holds the exclusive lock, so any temp file of ours left here is from a killed writer.
  const std::string stray_prefix = "." + path_.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir(), ec)) {
    if (starts_with(entry.path().filename().string(), stray_prefix)) {
      std::error_code rm_ec;
      std::filesystem::remove(entry.path(), rm_ec);
      spdlog::debug("removed stray temporary file {}", entry.path().string());
    }
  }

  if (auto changed = change(*doc); !changed) return changed;
  std::string text;
  try {
    text = serialize_document(*doc, now());
  } catch (const json::exception& e) {
    return make_error(ExitCode::software, "cannot serialize state for {}: {}", path_.string(), e.what());
  }
  return write_file_atomic(path_, text, 0600);
}

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

  auto stored = mutate([&](Document& doc) -> Result<void> {
    std::set<std::string, std::less<>> taken;
    for (const auto& [name, state] : doc.jobs) {
      for (const auto& r : state.runs) taken.insert(r.run_id);
    }
    // Time + pid is unique per process and second; a process that begins several runs (tests, a
    // future daemon) numbers them so ids stay unique even after old entries were trimmed.
    const auto base = make_run_id(started, run.pid);
    static std::atomic<unsigned> runs_begun{0};
    unsigned n = ++runs_begun;
    run.run_id = n == 1 ? base : fmt::format("{}-{}", base, n);
    std::error_code ec;
    while (taken.contains(run.run_id) || std::filesystem::exists(log_path_for(run), ec)) {
      run.run_id = fmt::format("{}-{}", base, ++n);
    }
    run.log_file = log_path_for(run).string();
    auto& state = doc.jobs[run.job];
    resolve_job(state);
    state.runs.push_back(run);
    normalize_job(state, history_limit_);
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
  return mutate([&](Document& doc) -> Result<void> {
    auto& state = doc.jobs[run.job];
    upsert_run(state, run);
    resolve_job(state);
    normalize_job(state, history_limit_);
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
  return done;
}

namespace {

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

void normalize_restores(JobState& job, std::size_t limit) {
  std::stable_sort(job.restores.begin(), job.restores.end(), [](const RestoreRecord& a, const RestoreRecord& b) {
    return run_id_less(a.restore_id, b.restore_id);
  });
  if (job.restores.size() > limit) {
    job.restores.erase(job.restores.begin(),
                       job.restores.begin() + static_cast<std::ptrdiff_t>(job.restores.size() - limit));
  }
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
  auto stored = mutate([&](Document& doc) -> Result<void> {
    auto& state = doc.jobs[restore.job];
    std::set<std::string, std::less<>> taken;
    for (auto& r : state.restores) {
      taken.insert(r.restore_id);
      resolve_orphaned_restore(r);
    }
    const auto base = make_run_id(started, restore.pid);
    restore.restore_id = base;
    for (unsigned n = 2; taken.contains(restore.restore_id); ++n) restore.restore_id = fmt::format("{}-{}", base, n);
    state.restores.push_back(restore);
    normalize_restores(state, history_limit_);
    return ok();
  });
  if (!stored) return std::move(stored).error();
  return restore;
}

Result<RestoreRecord> StateStore::update_restore(const RestoreRecord& restore) {
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
  auto stored = mutate([&](Document& doc) -> Result<void> {
    auto& state = doc.jobs[done.job];
    bool found = false;
    for (auto& existing : state.restores) {
      if (existing.restore_id != done.restore_id) continue;
      json extra = existing.extra;
      extra.update(done.extra);
      existing = done;
      existing.extra = std::move(extra);
      found = true;
      break;
    }
    if (!found) state.restores.push_back(done);
    normalize_restores(state, history_limit_);
    return ok();
  });
  if (!stored) return std::move(stored).error();
  return done;
}

Result<JobState> StateStore::job(std::string_view name) const {
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  const auto it = doc->jobs.find(std::string(name));
  if (it == doc->jobs.end()) return JobState{};
  resolve_job(it->second);
  return std::move(it->second);
}

Result<std::map<std::string, JobState>> StateStore::all() const {
  auto doc = read_shared();
  if (!doc) return std::move(doc).error();
  for (auto& [name, state] : doc->jobs) resolve_job(state);
  return std::move(doc->jobs);
}

Result<std::size_t> StateStore::reap_orphaned() {
  std::size_t changed = 0;
  auto stored = mutate([&](Document& doc) -> Result<void> {
    for (auto& [name, state] : doc.jobs) changed += resolve_job(state);
    return ok();
  });
  if (!stored) return std::move(stored).error();
  return changed;
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
