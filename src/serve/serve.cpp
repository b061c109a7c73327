#include "hozo/serve/serve.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <variant>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/backupd.hpp"
#include "hozo/config_json.hpp"
#include "hozo/http/server.hpp"
#include "hozo/job.hpp"
#include "hozo/lock.hpp"
#include "hozo/process.hpp"
#include "hozo/serve/auth.hpp"
#include "hozo/serve/html.hpp"
#include "hozo/serve/metrics.hpp"
#include "hozo/serve/pages.hpp"
#include "hozo/serve/view.hpp"
#include "hozo/state.hpp"
#include "hozo/status_json.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/version.hpp"

namespace hozo::serve {

using http::Request;
using http::Response;
using json = nlohmann::json;

bool is_loopback_host(std::string_view host) {
  return host == "localhost" || host == "::1" || starts_with(host, "127.") || host == "::ffff:127.0.0.1";
}

Result<void> check_exposure(std::string_view host, const ServeSettings& settings, const std::string& password_hash) {
  if (is_loopback_host(host) || !password_hash.empty() || !settings.token.empty()) return {};
  return make_error(ExitCode::config,
                    "refusing to serve on {} without credentials: anyone on the network could start runs and power "
                    "the box off. Set serve.password_hash_file (make the hash with: mkpasswd -m yescrypt) and/or "
                    "serve.token_file, or listen on 127.0.0.1",
                    printable(host));
}

Result<std::string> load_password_hash(const ServeSettings& settings) {
  if (settings.password_hash_file.empty()) return std::string();
  auto text = read_file(settings.password_hash_file);
  if (!text) return make_error(ExitCode::config, "serve.password_hash_file: {}", text.error().message);
  std::string hash(trim(split_lines(*text).empty() ? std::string_view() : split_lines(*text).front()));
  if (hash.size() < 8 || hash.front() != '$' || hash.find(':') != std::string::npos) {
    return make_error(ExitCode::config,
                      "serve.password_hash_file: {} does not hold a crypt(3) hash (expected one line like $y$...; make "
                      "it with: mkpasswd -m yescrypt > {})",
                      settings.password_hash_file, settings.password_hash_file);
  }
  return hash;
}

namespace {

constexpr const char* kCsp = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
constexpr std::size_t kRunPageLogBytes = 512 * 1024;
constexpr std::size_t kLogChunkDefault = 256 * 1024;
constexpr std::size_t kLogChunkMax = 1024 * 1024;

Response secured(Response r) {
  r.header("Content-Security-Policy", kCsp);
  r.header("X-Frame-Options", "DENY");
  r.header("Referrer-Policy", "same-origin");
  if (std::none_of(r.headers.begin(), r.headers.end(), [](const auto& kv) { return kv.first == "Cache-Control"; })) {
    r.header("Cache-Control", "no-store");
  }
  return r;
}

Response redirect(std::string location) {
  Response r = Response::text(303, "see " + location + "\n");
  r.header("Location", std::move(location));
  return r;
}

bool wants_json(const Request& req) { return starts_with(req.path, "/api/"); }

/// Run ids look like 20261124T080000Z-4242 (maybe with a -N suffix): letters, digits, '-' only.
bool valid_run_id(std::string_view id) {
  if (id.empty() || id.size() > 80) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
  });
}

struct FileStamp {
  std::int64_t mtime_ns = -1;
  std::int64_t size = -1;
  std::uint64_t ino = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return {};
  return FileStamp{static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                   static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
}

/// Reads up to `length` bytes of `path` from `offset`; also returns the file size.
Result<std::pair<std::string, std::size_t>> read_range(const std::filesystem::path& path, std::size_t offset,
                                                       std::size_t length) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return make_error("cannot open the log: {}", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const auto size = static_cast<std::size_t>(std::max<off_t>(0, st.st_size));
  std::string out;
  if (offset < size) {
    out.resize(std::min(length, size - offset));
    std::size_t got = 0;
    while (got < out.size()) {
      const auto n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    out.resize(got);
  }
  ::close(fd);
  return std::make_pair(std::move(out), size);
}

/// Starts argv in its own session, detached (double fork: serve never waits for it), stdin,
/// stdout and stderr on /dev/null, a clean signal mask, no inherited descriptors.
Result<void> spawn_detached(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return make_error("fork: {}", std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    const pid_t grandchild = ::fork();
    if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return make_error("could not start {}", argv[0]);
  return {};
}

bool systemd_unit_installed() {
  std::error_code ec;
  if (!std::filesystem::is_directory("/run/systemd/system", ec)) return false;
  for (const char* dir : {"/etc/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}) {
    if (std::filesystem::exists(std::filesystem::path(dir) / "hozo@.service", ec)) return true;
  }
  return false;
}

}  // namespace

namespace {

StateStore open_store(const std::filesystem::path& path, std::size_t history) {
  auto store = StateStore::open(path, history);
  if (!store) throw std::runtime_error(store.error().message);  // run_serve() opened it before
  return std::move(*store);
}

}  // namespace

struct Dashboard::Impl {
  DashboardOptions options;
  Auth auth;
  StateStore store;

  std::mutex mutex;
  std::shared_ptr<const Config> config_;
  FileStamp config_stamp;
  std::shared_ptr<const std::map<std::string, JobState>> states;
  FileStamp state_stamp;

  Impl(Config c, std::string password_hash, DashboardOptions o)
      : options(std::move(o)),
        auth(AuthSettings{std::move(password_hash), c.serve.token, c.serve.session_lifetime, c.serve.secure_cookies}),
        store(open_store(options.state_path, c.history_limit)),
        config_(std::make_shared<const Config>(std::move(c))),
        config_stamp(stamp_of(options.config_path)) {
    if (options.hozo_binary.empty()) {
      std::error_code ec;
      options.hozo_binary = std::filesystem::read_symlink("/proc/self/exe", ec);
    }
  }

  std::shared_ptr<const Config> current_config() {
    const auto now = stamp_of(options.config_path);
    std::lock_guard lock(mutex);
    if (!(now == config_stamp) && now.size >= 0) {
      config_stamp = now;
      auto loaded = load_config(options.config_path);
      if (loaded) {
        spdlog::info("{}: re-read ({} job(s))", options.config_path.string(), loaded->jobs.size());
        config_ = std::make_shared<const Config>(std::move(*loaded));
      } else {
        spdlog::warn("{} changed but does not load; keeping the previous configuration: {}",
                     options.config_path.string(), loaded.error().message);
      }
    }
    return config_;
  }

  Result<std::shared_ptr<const std::map<std::string, JobState>>> current_states() {
    const auto now = stamp_of(options.state_path);
    {
      std::lock_guard lock(mutex);
      if (states && now == state_stamp) return states;
    }
    auto all = store.all();
    if (!all) return all.error();
    auto fresh = std::make_shared<const std::map<std::string, JobState>>(std::move(*all));
    std::lock_guard lock(mutex);
    states = fresh;
    state_stamp = now;
    return fresh;
  }

  /// Every job's summary (small: read on each request; stage updates do not touch state.json).
  Result<std::map<std::string, JobSummary>> current_summaries() const { return store.summaries(); }

  /// status_json of one job from its summary, its newest full run and its live progress.
  json job_status_json(const Job& job, const std::map<std::string, JobSummary>& summaries, const JobState* state) const {
    const auto it = summaries.find(job.name);
    const JobSummary* summary = it == summaries.end() ? nullptr : &it->second;
    const RunRecord* last = state != nullptr ? state->last() : nullptr;
    std::optional<RunProgress> progress;
    if (last != nullptr && last->outcome == RunOutcome::running) progress = store.read_progress(job.name, last->run_id);
    auto j = status_json(&job, job.name, summary, last, progress);
    j["config_error"] = nullptr;
    return j;
  }

  PageContext page_context(const Request& req) {
    const auto who = auth.identify(req);
    PageContext ctx;
    ctx.csrf = who.csrf;
    ctx.local_only = !auth.enabled();
    ctx.logout = auth.password_login() && !who.csrf.empty() && auth.enabled();
    return ctx;
  }

  Response error(const Request& req, int status, std::string_view message) {
    if (wants_json(req)) return secured(Response::json_error(status, message));
    return secured(Response::html(status, render_text_page(status, http::status_text(status), message, "/", page_context(req))));
  }

  /// The guard of every protected route: 401 for the API and /metrics, a redirect to /login for pages.
  http::RouteOptions protect() {
    http::RouteOptions o;
    o.guard = [this](const Request& req) -> std::optional<Response> {
      if (auth.identify(req).authenticated) return std::nullopt;
      if (wants_json(req) || req.path == "/metrics" || req.method != "GET" || !auth.password_login()) {
        auto r = Response::json_error(401, "unauthorized");
        r.header("WWW-Authenticate", "Bearer");
        return secured(std::move(r));
      }
      return secured(redirect("/login"));
    };
    return o;
  }

  // ------------------------------------------------------------------ lookups

  struct Found {
    std::shared_ptr<const Config> config;
    std::shared_ptr<const std::map<std::string, JobState>> states;
    const Job* job = nullptr;
    const JobState* state = nullptr;
    const RunRecord* run = nullptr;
    std::optional<RunRecord> fresh_run;     ///< a running run re-read from its file (stages change while it runs)
    std::optional<RunProgress> progress;   ///< its live progress file
    /// The run as it is now: the re-read record of a running run, else the cached one.
    [[nodiscard]] const RunRecord& current() const { return fresh_run ? *fresh_run : *run; }
  };

  /// Resolves {job} (and {run}): 404 for unknown ones, 400 for run ids that are not run ids.
  std::variant<Found, Response> find(const Request& req, bool with_run) {
    Found f;
    f.config = current_config();
    auto st = current_states();
    if (!st) return error(req, 500, "cannot read the state file");
    f.states = *st;
    const std::string name = req.param("job");
    f.job = f.config->find_job(name);
    if (f.job == nullptr) return error(req, 404, "no such job");
    const auto it = f.states->find(name);
    f.state = it == f.states->end() ? nullptr : &it->second;
    if (!with_run) return f;
    const std::string id = req.param("run");
    if (!valid_run_id(id)) return error(req, 400, "invalid run id");
    if (f.state != nullptr) {
      for (const auto& r : f.state->runs) {
        if (r.run_id == id) f.run = &r;
      }
    }
    if (f.run == nullptr) return error(req, 404, "no such run");
    if (f.run->outcome == RunOutcome::running) {
      // The cache follows state.json, which a stage update does not touch: read this run again.
      if (auto job_state = store.job(name)) {
        for (const auto& r : job_state->runs) {
          if (r.run_id == id) f.fresh_run = r;
        }
      }
      f.progress = store.read_progress(name, id);
    }
    return f;
  }

  /// The run's log file, only when it lies inside <state dir>/logs.
  std::optional<std::filesystem::path> log_path(const RunRecord& run) {
    std::error_code ec;
    const std::filesystem::path p = run.log_file.empty() ? store.log_path_for(run) : std::filesystem::path(run.log_file);
    const auto root = std::filesystem::weakly_canonical(store.logs_dir(), ec);
    const auto real = std::filesystem::weakly_canonical(p, ec);
    if (ec) return std::nullopt;
    const auto rel = real.lexically_relative(root);
    if (rel.empty() || rel.is_absolute() || *rel.begin() == "..") return std::nullopt;
    return real;
  }

  // ------------------------------------------------------------------ pages

  Response overview(const Request& req) {
    const auto config = current_config();
    auto st = current_states();
    if (!st) return error(req, 500, "cannot read the state file");
    const auto views = make_job_views(*config, **st, std::chrono::system_clock::now());
    return secured(Response::html(200, render_overview(views, page_context(req))));
  }

  Response job_page(const Request& req) {
    auto found = find(req, false);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    auto& f = std::get<Found>(found);
    const auto view = make_job_view(*f.job, f.state, std::chrono::system_clock::now());
    return secured(Response::html(200, render_job(view, job_to_json(*f.job), page_context(req))));
  }

  Response run_page(const Request& req) {
    auto found = find(req, true);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    auto& f = std::get<Found>(found);
    const bool running = f.current().outcome == RunOutcome::running && !run_is_orphaned(f.current());
    std::string log;
    std::size_t offset = 0;
    if (const auto path = log_path(f.current())) {
      struct stat st {};
      if (::stat(path->c_str(), &st) == 0) {
        const auto size = static_cast<std::size_t>(st.st_size);
        offset = size > kRunPageLogBytes ? size - kRunPageLogBytes : 0;
        if (auto got = read_range(*path, offset, kRunPageLogBytes)) log = std::move(got->first);
      }
    }
    const std::string progress = running && f.progress ? progress_text(*f.progress) : std::string();
    return secured(Response::html(200, render_run(*f.job, f.current(), running, log, offset, progress, page_context(req))));
  }

  Response run_log(const Request& req, bool as_json) {
    auto found = find(req, true);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    auto& f = std::get<Found>(found);
    const auto path = log_path(f.current());
    if (!path) return error(req, 403, "the run's log is outside the state directory");
    const auto offset = parse_int(req.query_param("offset").value_or("0"));
    const auto length = parse_int(req.query_param("length").value_or(std::to_string(kLogChunkDefault)));
    if (!offset || *offset < 0 || !length || *length <= 0) return error(req, 400, "offset and length must be non-negative numbers");
    const auto range = read_range(*path, static_cast<std::size_t>(*offset),
                                  std::min(kLogChunkMax, static_cast<std::size_t>(*length)));
    const bool running = f.current().outcome == RunOutcome::running && !run_is_orphaned(f.current());
    if (!range) {
      if (!as_json) return error(req, 404, "no log for this run");
      return secured(Response::json(200, json{{"offset", *offset}, {"next_offset", *offset}, {"size", 0}, {"text", ""},
                                              {"eof", true}, {"running", running}, {"stage", ""}}));
    }
    if (!as_json) {
      auto r = Response::text(200, range->first);
      return secured(std::move(r));
    }
    const auto next = static_cast<std::size_t>(*offset) + range->first.size();
    return secured(Response::json(200, json{{"offset", *offset},
                                            {"next_offset", next},
                                            {"size", range->second},
                                            {"eof", next >= range->second},
                                            {"text", range->first},
                                            {"running", running},
                                            {"outcome", to_string(f.current().outcome)},
                                            {"stage", f.current().stages.empty() ? "starting" : "after " + f.current().stages.back().name},
                                            {"progress", running && f.progress ? json(*f.progress) : json(nullptr)},
                                            {"progress_text", running && f.progress ? progress_text(*f.progress) : ""}}));
  }

  // ------------------------------------------------------------------ API documents

  Response api_jobs(const Request& req) {
    const auto config = current_config();
    auto st = current_states();
    if (!st) return error(req, 500, "cannot read the state file");
    auto arr = json::array();
    for (const auto& job : config->jobs) {
      const auto it = (*st)->find(job.name);
      arr.push_back(job_list_json(job, it == (*st)->end() ? nullptr : it->second.last()));
    }
    return secured(Response::json(200, arr));
  }

  Response api_status(const Request& req) {
    const auto config = current_config();
    auto st = current_states();
    auto summaries = current_summaries();
    if (!st || !summaries) return error(req, 500, "cannot read the state file");
    auto arr = json::array();
    for (const auto& job : config->jobs) {
      const auto it = (*st)->find(job.name);
      arr.push_back(job_status_json(job, *summaries, it == (*st)->end() ? nullptr : &it->second));
    }
    return secured(Response::json(200, arr));
  }

  Response api_job(const Request& req) {
    auto found = find(req, false);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    auto& f = std::get<Found>(found);
    auto summaries = current_summaries();
    if (!summaries) return error(req, 500, "cannot read the state file");
    return secured(Response::json(200, job_status_json(*f.job, *summaries, f.state)));
  }

  Response api_job_config(const Request& req) {
    auto found = find(req, false);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    return secured(Response::json(200, json::parse(job_to_json(*std::get<Found>(found).job).dump())));
  }

  Response api_runs(const Request& req) {
    auto found = find(req, false);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    auto& f = std::get<Found>(found);
    const auto page = parse_int(req.query_param("page").value_or("1"));
    const auto per_page = parse_int(req.query_param("per_page").value_or("20"));
    if (!page || *page < 1 || !per_page || *per_page < 1 || *per_page > 500) {
      return error(req, 400, "page must be >= 1 and per_page 1..500");
    }
    const std::size_t total = f.state == nullptr ? 0 : f.state->runs.size();
    auto runs = json::array();
    const auto skip = static_cast<std::size_t>((*page - 1) * *per_page);
    for (std::size_t i = skip; i < total && runs.size() < static_cast<std::size_t>(*per_page); ++i) {
      runs.push_back(f.state->runs[total - 1 - i]);  // newest first, like `hozo history --json`
    }
    return secured(Response::json(200, json{{"job", f.job->name}, {"page", *page}, {"per_page", *per_page},
                                            {"total", total}, {"runs", runs}}));
  }

  Response api_run(const Request& req) {
    auto found = find(req, true);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    return secured(Response::json(200, json(std::get<Found>(found).current())));
  }

  // ------------------------------------------------------------------ actions

  std::vector<std::string> hozo_argv(std::initializer_list<std::string> rest) const {
    std::vector<std::string> argv{options.hozo_binary.string(), "-c", options.config_path.string(), "--state",
                                  options.state_path.string()};
    argv.insert(argv.end(), rest);
    return argv;
  }

  /// 409 with the reason when the job or its box is busy for this action, else nullopt.
  std::optional<std::string> busy(const Found& f, std::string_view action) {
    if (f.state != nullptr) {
      const RunRecord* last = f.state->last();
      if (last != nullptr && last->outcome == RunOutcome::running && !run_is_orphaned(*last) &&
          (action == "run" || action == "shutdown")) {
        return fmt::format("job {} is running (run {}, pid {} on {})", f.job->name, last->run_id, last->pid, last->hostname);
      }
    }
    if (action == "shutdown" || (action == "run" && f.job->host_sharing == HostSharing::wait)) {
      auto used = HostLease::in_use_by_others(store.dir(), f.job->target_host);
      if (used && *used) {
        return fmt::format("the box {} is in use by another job{}", f.job->target_host,
                           action == "run" ? " (host_sharing: wait)" : "; it is powered off by the last job that ends");
      }
    }
    return std::nullopt;
  }

  Response action(const Request& req) {
    const auto who = auth.identify(req);
    if (!auth.post_allowed(req, who)) {
      return error(req, 403, "forbidden: a POST needs the CSRF token of a page of this server and a same-origin request");
    }
    auto found = find(req, false);
    if (auto* r = std::get_if<Response>(&found)) return std::move(*r);
    auto& f = std::get<Found>(found);
    const std::string what = req.param("action");
    const bool api = wants_json(req);
    const std::string back = "/jobs/" + url_component(f.job->name);
    if (what != "run" && what != "dry-run" && what != "check" && what != "wake" && what != "shutdown") {
      return error(req, 404, "no such action (run, dry-run, check, wake, shutdown)");
    }
    if (auto reason = busy(f, what)) {
      spdlog::info("{} {}: refused: {}", what, f.job->name, *reason);
      return error(req, 409, *reason);
    }
    spdlog::info("{} {} requested from {}", what, f.job->name, req.peer);
    if (what == "dry-run") {
      auto plan = describe_plan(*f.job);
      if (!plan) return error(req, 500, plan.error().message);
      if (api) return secured(Response::json(200, json{{"job", f.job->name}, {"plan", *plan}}));
      return secured(Response::html(200, render_text_page(200, "Dry run: " + f.job->name, *plan, back, page_context(req))));
    }
    if (what == "run") return start_run(req, f, back);
    // check, wake, shutdown: the CLI command, run to completion.
    ProcessOptions p;
    p.argv = hozo_argv({what, f.job->name});
    p.timeout = Millis{what == "check" ? 600000 : 300000};
    p.capture_limit = 1 << 20;
    auto ran = run_process(p);
    if (!ran) return error(req, 500, ran.error().message);
    const std::string output = ran->out + ran->err;
    const int status = ran->exit_code == 0 ? 200 : ran->exit_code == to_int(ExitCode::tempfail) ? 409 : 502;
    if (api) {
      return secured(Response::json(status, json{{"job", f.job->name}, {"action", what}, {"exit_code", ran->exit_code},
                                                 {"output", output}}));
    }
    return secured(Response::html(status, render_text_page(status, what + ": " + f.job->name,
                                                           output.empty() ? describe_termination(*ran) : output, back,
                                                           page_context(req))));
  }

  Response start_run(const Request& req, const Found& f, const std::string& back) {
    const std::string before = f.state != nullptr && f.state->last() != nullptr ? f.state->last()->run_id : "";
    const bool use_systemd = options.runner == DashboardOptions::Runner::systemd ||
                             (options.runner == DashboardOptions::Runner::automatic && systemd_unit_installed() &&
                              std::getenv("INVOCATION_ID") != nullptr);
    std::string via;
    if (use_systemd) {
      ProcessOptions p;
      p.argv = {"systemctl", "start", "--no-block", fmt::format("hozo@{}.service", f.job->name)};
      p.timeout = Millis{30000};
      auto ran = run_process(p);
      if (!ran) return error(req, 500, ran.error().message);
      if (ran->exit_code != 0) return error(req, 502, "systemctl start failed: " + printable(trim(ran->err)));
      via = "systemd";
    } else {
      if (auto spawned = spawn_detached(hozo_argv({"jobs", "run", f.job->name})); !spawned) {
        return error(req, 500, spawned.error().message);
      }
      via = "process";
    }
    // Wait briefly for the new run to appear so the browser lands on its page.
    std::string run_id;
    for (int i = 0; i < 50 && run_id.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto st = current_states();
      if (!st) break;
      const auto it = (*st)->find(f.job->name);
      if (it != (*st)->end() && it->second.last() != nullptr && it->second.last()->run_id != before) {
        run_id = it->second.last()->run_id;
      }
    }
    if (wants_json(req)) {
      return secured(Response::json(202, json{{"job", f.job->name}, {"started", true}, {"via", via},
                                              {"run_id", run_id.empty() ? json(nullptr) : json(run_id)}}));
    }
    return secured(redirect(run_id.empty() ? back : back + "/runs/" + url_component(run_id)));
  }

  // ------------------------------------------------------------------ login

  Response login_form(const Request& req) {
    if (!auth.password_login()) return secured(redirect("/"));
    return secured(Response::html(200, render_login("", page_context(req))));
  }

  Response login(const Request& req) {
    if (!auth.password_login()) return error(req, 404, "password login is not configured");
    if (!same_origin(req)) return error(req, 403, "forbidden: cross-origin login");
    std::string password;
    for (const auto& [k, v] : req.form()) {
      if (k == "password") password = v;
    }
    std::string session;
    switch (auth.login(password, req.peer, session)) {
      case LoginResult::ok: {
        spdlog::info("login from {}", req.peer);
        auto r = redirect("/");
        r.set_cookie(kSessionCookie, session, auth.cookie_options());
        return secured(std::move(r));
      }
      case LoginResult::rate_limited: {
        spdlog::warn("login from {} refused: too many failed attempts", req.peer);
        auto r = Response::html(429, render_login("Too many failed attempts; try again later.", page_context(req)));
        r.header("Retry-After", std::to_string(auth.retry_after(req.peer)));
        return secured(std::move(r));
      }
      case LoginResult::wrong:
        spdlog::warn("failed login from {}", req.peer);
        return secured(Response::html(401, render_login("Wrong password.", page_context(req))));
      case LoginResult::disabled:
        break;
    }
    return error(req, 404, "password login is not configured");
  }

  Response logout(const Request& req) {
    const auto who = auth.identify(req);
    if (!auth.post_allowed(req, who)) return error(req, 403, "forbidden");
    auth.logout(req);
    auto r = redirect(auth.password_login() ? "/login" : "/");
    auto o = auth.cookie_options();
    o.max_age_seconds = 0;
    r.set_cookie(kSessionCookie, "", o);
    return secured(std::move(r));
  }

  Response metrics(const Request& req) {
    const auto config = current_config();
    auto st = current_states();
    if (!st) return error(req, 500, "cannot read the state file");
    Response r = Response::text(200, render_metrics(make_job_views(*config, **st, std::chrono::system_clock::now())));
    r.content_type = std::string(kMetricsContentType);
    return secured(std::move(r));
  }
};

Dashboard::Dashboard(Config config, std::string password_hash, DashboardOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(password_hash), std::move(options))) {}

Dashboard::~Dashboard() = default;

http::Router Dashboard::routes() {
  auto* d = impl_.get();
  http::Router r;
  const auto p = d->protect();
  http::RouteOptions cached;
  r.get("/healthz", [](const Request&) { return secured(Response::json(200, json{{"status", "ok"}, {"version", kVersion}})); });
  r.get("/assets/hozo.css", [](const Request&) {
    Response res = Response::text(200, std::string(stylesheet()));
    res.content_type = "text/css; charset=utf-8";
    res.header("Cache-Control", "max-age=3600");
    return secured(std::move(res));
  });
  r.get("/assets/hozo.js", [](const Request&) {
    Response res = Response::text(200, std::string(script()));
    res.content_type = "text/javascript; charset=utf-8";
    res.header("Cache-Control", "max-age=3600");
    return secured(std::move(res));
  });
  r.get("/login", [d](const Request& q) { return d->login_form(q); });
  r.post("/login", [d](const Request& q) { return d->login(q); });
  r.post("/logout", [d](const Request& q) { return d->logout(q); }, p);
  r.get("/metrics", [d](const Request& q) { return d->metrics(q); }, p);
  r.get("/", [d](const Request& q) { return d->overview(q); }, p);
  r.get("/jobs/{job}", [d](const Request& q) { return d->job_page(q); }, p);
  r.get("/jobs/{job}/runs/{run}", [d](const Request& q) { return d->run_page(q); }, p);
  r.get("/jobs/{job}/runs/{run}/log", [d](const Request& q) { return d->run_log(q, false); }, p);
  r.post("/jobs/{job}/{action}", [d](const Request& q) { return d->action(q); }, p);
  r.get("/api/v1/jobs", [d](const Request& q) { return d->api_jobs(q); }, p);
  r.get("/api/v1/status", [d](const Request& q) { return d->api_status(q); }, p);
  r.get("/api/v1/jobs/{job}", [d](const Request& q) { return d->api_job(q); }, p);
  r.get("/api/v1/jobs/{job}/config", [d](const Request& q) { return d->api_job_config(q); }, p);
  r.get("/api/v1/jobs/{job}/runs", [d](const Request& q) { return d->api_runs(q); }, p);
  r.get("/api/v1/jobs/{job}/runs/{run}", [d](const Request& q) { return d->api_run(q); }, p);
  r.get("/api/v1/jobs/{job}/runs/{run}/log", [d](const Request& q) { return d->run_log(q, true); }, p);
  r.post("/api/v1/jobs/{job}/{action}", [d](const Request& q) { return d->action(q); }, p);
  return r;
}

int run_serve(const std::filesystem::path& config_path, const std::filesystem::path& state_path, const std::string& listen) {
  auto config = load_config(config_path);
  if (!config) {
    spdlog::error("{}", config.error().message);
    return to_int(config.error().code);
  }
  for (const auto& notice : config->notices) spdlog::info("notice: {}", notice);
  const std::string address = listen.empty() ? config->serve.listen : listen;
  auto parsed = parse_listen_address(address);
  if (!parsed) {
    spdlog::error("{} {}: {}", listen.empty() ? "serve.listen" : "--listen", printable(address), parsed.error().message);
    return to_int(listen.empty() ? ExitCode::config : ExitCode::usage);
  }
  auto hash = load_password_hash(config->serve);
  if (!hash) {
    spdlog::error("{}", hash.error().message);
    return to_int(hash.error().code);
  }
  auto activated = http::systemd_listen_socket();
  if (!activated) {
    spdlog::error("{}", activated.error().message);
    return to_int(activated.error().code);
  }
  const int listen_fd = activated->value_or(-1);
  // A socket from systemd is checked by the address it is bound to.
  std::string host = parsed->first;
  if (listen_fd >= 0) {
    const auto described = http::describe_socket(listen_fd);
    host = described.substr(0, described.rfind(':'));
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  }
  if (auto exposed = check_exposure(host, config->serve, *hash); !exposed) {
    spdlog::error("{}", exposed.error().message);
    return to_int(exposed.error().code);
  }
  auto store = StateStore::open(state_path, config->history_limit);
  if (!store) {
    spdlog::error("{}", store.error().message);
    return to_int(store.error().code);
  }
  const bool open = hash->empty() && config->serve.token.empty();

  const sigset_t signals = http::block_stop_signals();

  Dashboard dashboard(std::move(*config), std::move(*hash), DashboardOptions{config_path, state_path, {}, {}});
  http::ServerOptions options;
  options.listen = http::Listen{parsed->first, parsed->second, listen_fd};
  options.limits.max_connections = 64;
  options.limits.max_connections_per_ip = 32;
  options.limits.keep_alive_max = 100;
  options.limits.idle_timeout = std::chrono::seconds(30);
  options.access_log = [](const http::AccessEntry& e) {
    spdlog::info("{} {} {} from {} ({} ms){}{}", e.method.empty() ? "-" : e.method, e.path.empty() ? "-" : e.path, e.status,
                 e.peer, e.duration.count(), e.note.empty() ? "" : ": ", e.note);
  };
  options.on_exception = [](const Request& req, std::string_view what) {
    spdlog::error("{} {}: internal error: {}", printable(req.method), printable(std::string_view(req.path).substr(0, 120)),
                  printable(what));
  };
  http::Server server(dashboard.routes(), std::move(options));
  auto port = server.start();
  if (!port) {
    spdlog::error("{}", port.error().message);
    return to_int(port.error().code);
  }
  const std::string where = listen_fd >= 0 ? http::describe_socket(listen_fd)
                                           : (parsed->first.find(':') != std::string::npos
                                                  ? fmt::format("[{}]:{}", parsed->first, *port)
                                                  : fmt::format("{}:{}", parsed->first, *port));
  spdlog::info("hozo serve {} listening on http://{}/ ({})", kVersion, where,
               open ? "local only: no credentials configured (serve.password_hash_file, serve.token_file)"
                    : "login required");
  http::wait_for_stop_signal(signals);
  server.stop();
  return 0;
}

}  // namespace hozo::serve
