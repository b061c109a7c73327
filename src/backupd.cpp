#include "hozo/backupd.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "hozo/http/server.hpp"
#include "hozo/log.hpp"
#include "hozo/process.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"
#include "hozo/version.hpp"

// backupd: the request logic, the routes on the http module, and main. The configuration and
// --check are in backupd_config.cpp.

namespace hozo {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using http::Request;
using http::Response;

// ---------------------------------------------------------------------------------------------
// Pure request logic
// ---------------------------------------------------------------------------------------------

bool bearer_matches(std::string_view header_value, const Secret& token) noexcept {
  return http::bearer_matches(header_value, token);
}

bool cmdline_is_zfs_receive(std::string_view cmdline) {
  std::vector<std::string_view> args;
  for (auto arg : split(cmdline, '\0')) {
    if (!arg.empty()) args.push_back(arg);
  }
  if (args.empty()) return false;
  auto base = [](std::string_view s) {
    const auto slash = s.rfind('/');
    return slash == std::string_view::npos ? s : s.substr(slash + 1);
  };
  if (base(args[0]) == "zfs") {
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "receive" || args[i] == "recv") return true;
      if (args[i].empty() || args[i][0] != '-') break;  // first non-option is the subcommand
    }
    return false;
  }
  // A shell running a command string (sshd → sh -c "... zfs receive ...").
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    for (const std::string_view needle : {"zfs receive", "zfs recv"}) {
      auto pos = a.find(needle);
      while (pos != std::string_view::npos) {
        const bool start_ok = pos == 0 || a[pos - 1] == ' ' || a[pos - 1] == '/' || a[pos - 1] == ';' ||
                              a[pos - 1] == '|' || a[pos - 1] == '\'' || a[pos - 1] == '"' || a[pos - 1] == '&';
        const auto end = pos + needle.size();
        const bool end_ok = end == a.size() || a[end] == ' ' || a[end] == '\'' || a[end] == '"';
        if (start_ok && end_ok) return true;
        pos = a.find(needle, pos + 1);
      }
    }
  }
  return false;
}

bool zfs_receive_running(const std::filesystem::path& proc_root) {
  std::error_code ec;
  const std::string self = std::to_string(::getpid());
  for (std::filesystem::directory_iterator it(proc_root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (name == self) continue;
    auto cmdline = read_file(it->path() / "cmdline");
    if (cmdline && cmdline_is_zfs_receive(*cmdline)) return true;
  }
  return false;
}

Result<BlockDevice> resolve_disk_request(const DiskPaths& paths, std::string_view path_part,
                                         const std::optional<std::string>& id_param) {
  if (path_part == "by-id") {
    if (!id_param) return make_error("/disk/by-id needs ?id=NAME");
    return resolve_disk_id(paths, *id_param);
  }
  if (id_param) return make_error("?id= is only valid with /disk/by-id");
  return resolve_block_device(paths, path_part);
}

std::optional<std::uint64_t> parse_zpool_size(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (text == "-") return 0;
  if (auto exact = parse_int(text)) {
    if (*exact < 0) return std::nullopt;
    return static_cast<std::uint64_t>(*exact);
  }
  const char unit = static_cast<char>(text.back() & ~0x20);  // upper case
  const std::string_view digits = text.substr(0, text.size() - 1);
  int shift = 0;
  switch (unit) {
    case 'B': shift = 0; break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    case 'P': shift = 50; break;
    case 'E': shift = 60; break;
    default: return std::nullopt;
  }
  if (digits.empty() || digits.size() > 24) return std::nullopt;
  // Integer part and up to 3 decimals, no floating point.
  std::uint64_t whole = 0;
  std::uint64_t frac = 0;
  std::uint64_t frac_scale = 1;
  bool dot = false;
  for (const char c : digits) {
    if (c == '.') {
      if (dot) return std::nullopt;
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (dot) {
      if (frac_scale < 1000) {
        frac = frac * 10 + d;
        frac_scale *= 10;
      }
    } else {
      if (whole > (std::uint64_t{1} << 40)) return std::nullopt;
      whole = whole * 10 + d;
    }
  }
  const std::uint64_t mult = std::uint64_t{1} << shift;
  if (shift >= 10 && whole > (~std::uint64_t{0} >> shift)) return std::nullopt;
  return whole * mult + (frac * mult) / frac_scale;
}

Result<std::vector<PoolStatus>> parse_zpool_list(std::string_view output) {
  std::vector<PoolStatus> pools;
  for (auto line : split_lines(output)) {
    if (trim(line).empty()) continue;
    const auto fields = split(line, '\t');
    if (fields.size() != 5) {
      if (trim(line) == "no pools available") continue;
      return make_error("unexpected zpool list line '{}'", printable(line.substr(0, 120)));
    }
    PoolStatus pool;
    pool.name = std::string(fields[0]);
    pool.health = std::string(fields[1]);
    const auto size = parse_zpool_size(fields[2]);
    const auto alloc = parse_zpool_size(fields[3]);
    const auto free = parse_zpool_size(fields[4]);
    if (!size || !alloc || !free) return make_error("unexpected sizes in zpool list line '{}'", printable(line));
    pool.size = *size;
    pool.alloc = *alloc;
    pool.free = *free;
    pools.push_back(std::move(pool));
  }
  return pools;
}

void apply_zpool_status(PoolStatus& pool, std::string_view output) {
  for (auto raw : split_lines(output)) {
    const auto line = trim(raw);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const auto key = line.substr(0, colon);
    const auto value = std::string(trim(line.substr(colon + 1)));
    if (key == "state" && pool.state.empty()) {
      pool.state = value;
    } else if ((key == "scan" || key == "scrub") && pool.scan.empty()) {
      pool.scan = value;
    } else if (key == "errors" && pool.errors.empty()) {
      pool.errors = value;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// BackupdServer
// ---------------------------------------------------------------------------------------------

namespace {

std::optional<double> read_uptime(const std::filesystem::path& proc_root) {
  auto text = read_file(proc_root / "uptime");
  if (!text) return std::nullopt;
  const auto first = split(trim(*text), ' ');
  if (first.empty()) return std::nullopt;
  try {
    return std::stod(std::string(first[0]));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

json read_load(const std::filesystem::path& proc_root) {
  auto text = read_file(proc_root / "loadavg");
  json load = json::array();
  if (!text) return load;
  const auto fields = split(trim(*text), ' ');
  for (std::size_t i = 0; i < 3 && i < fields.size(); ++i) {
    try {
      load.push_back(std::stod(std::string(fields[i])));
    } catch (const std::exception&) {
      break;
    }
  }
  return load;
}


}  // namespace

struct BackupdServer::Impl {
  BackupdConfig config;
  Secret token;
  BackupdDeps deps;
  int listen_fd;
  std::unique_ptr<http::Server> http;
  SteadyClock::time_point started = SteadyClock::now();

  std::mutex shutdown_mutex;
  std::condition_variable shutdown_cv;
  bool shutdown_started = false;
  bool shutdown_done = false;
  bool stopping = false;
  std::thread shutdown_thread;

  std::atomic<bool> zpool_no_p{false};  // zfs-fuse: `zpool list` has no -p

  Impl(BackupdConfig c, Secret t, BackupdDeps injected, int fd)
      : config(std::move(c)), token(std::move(t)), deps(std::move(injected)), listen_fd(fd) {
    if (!deps.receive_running) {
      deps.receive_running = [root = config.proc_root] { return zfs_receive_running(root); };
    }
    if (!deps.spinup_read) {
      deps.spinup_read = [paths = config.disk](const BlockDevice& dev) -> Result<void> {
        const auto size = read_device_size(paths, dev.name);
        const auto seed = static_cast<std::uint64_t>(SteadyClock::now().time_since_epoch().count());
        return direct_read_4k(dev.dev_path, spinup_offset(size ? *size : 0, seed));
      };
    }
    if (!deps.sleep) {
      deps.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
    }
  }

  http::Router routes();
  Response handle_status();
  Response handle_shutdown(const Request& req);
  Response handle_disk(const Request& req);
  Response handle_spinup(const Request& req);
  void shutdown_sequence();
  Result<SpinState> query_spin(const BlockDevice& dev);
};

http::Router BackupdServer::Impl::routes() {
  http::Router router;
  // Everything but /ping: 401 without the right bearer token (always when none is configured),
  // decided on the headers alone, before any body is read.
  http::RouteOptions protect;
  protect.guard = [this](const Request& req) -> std::optional<Response> {
    if (bearer_matches(req.header("authorization").value_or(""), token)) return std::nullopt;
    auto res = Response::json_error(401, token.empty() ? "unauthorized (no token configured on the server)" : "unauthorized");
    res.header("WWW-Authenticate", "Bearer");
    return res;
  };
  router.get("/ping", [this](const Request&) {
    const auto up = std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - started).count();
    return Response::json(200, json{{"status", "ok"}, {"uptime", up}, {"version", kVersion}});
  });
  router.get("/status", [this](const Request&) { return handle_status(); }, protect);
  router.post("/shutdown", [this](const Request& req) { return handle_shutdown(req); }, protect);
  // {dev*}: any junk after /disk/ reaches the handler, which refuses it with 400.
  router.post("/disk/{dev*}/spinup", [this](const Request& req) { return handle_spinup(req); }, protect);
  router.get("/disk/{dev*}", [this](const Request& req) { return handle_disk(req); }, protect);
  return router;
}

Response BackupdServer::Impl::handle_status() {
  auto& runner = *deps.runner;
  Result<CommandOutput> listed = make_error("not run");
  if (!zpool_no_p.load()) {
    listed = runner.run({"zpool", "list", "-H", "-p", "-o", "name,health,size,allocated,free"}, config.command_timeout);
    if (listed && listed->exit_status != 0 &&
        (listed->err.find("invalid option") != std::string::npos || listed->out.find("invalid option") != std::string::npos)) {
      spdlog::info("zpool list has no -p (zfs-fuse?); using human sizes");
      zpool_no_p.store(true);
    }
  }
  if (zpool_no_p.load()) {
    listed = runner.run({"zpool", "list", "-H", "-o", "name,health,size,allocated,free"}, config.command_timeout);
  }
  if (!listed) {
    spdlog::error("zpool list: {}", listed.error().message);
    return Response::json_error(502, "zpool list failed");
  }
  const bool no_pools = listed->out.find("no pools available") != std::string::npos ||
                        listed->err.find("no pools available") != std::string::npos;
  if (listed->exit_status != 0 && !no_pools) {
    spdlog::error("zpool list exited with status {}: {}", listed->exit_status, printable(trim(listed->err)));
    return Response::json_error(502, "zpool list failed");
  }
  auto pools = parse_zpool_list(listed->out);
  if (!pools) {
    spdlog::error("{}", pools.error().message);
    return Response::json_error(502, "unexpected zpool list output");
  }
  json pool_array = json::array();
  for (auto& pool : *pools) {
    auto status = runner.run({"zpool", "status", pool.name}, config.command_timeout);
    if (status && status->exit_status == 0) apply_zpool_status(pool, status->out);
    pool_array.push_back(json{{"name", pool.name},
                              {"health", pool.health},
                              {"size", pool.size},
                              {"alloc", pool.alloc},
                              {"free", pool.free},
                              {"state", pool.state},
                              {"scan", pool.scan},
                              {"errors", pool.errors}});
  }
  json body{{"pools", pool_array},
            {"load", read_load(config.proc_root)},
            {"receive_running", deps.receive_running()},
            {"version", kVersion}};
  if (auto up = read_uptime(config.proc_root)) body["uptime"] = *up;
  return Response::json(200, body);
}

Response BackupdServer::Impl::handle_shutdown(const Request& req) {
  const bool force = req.flag("force");
  std::lock_guard lock(shutdown_mutex);
  if (shutdown_started) return Response::json(202, json{{"status", "shutdown already scheduled"}});
  if (stopping) return Response::json_error(503, "stopping");
  if (!force && deps.receive_running()) {
    return Response::json_error(409, "a zfs receive is running; retry later or use ?force=1");
  }
  shutdown_started = true;
  spdlog::warn("shutdown requested by {}{}: exporting [{}] and running '{}' in {}s", req.peer,
               force ? " (forced)" : "", join(config.export_pools, ", "), join(config.shutdown_command, " "),
               config.shutdown_delay.count());
  shutdown_thread = std::thread([this] { shutdown_sequence(); });
  return Response::json(202, json{{"status", "shutdown scheduled"},
                                  {"delay", config.shutdown_delay.count()},
                                  {"export_pools", config.export_pools}});
}

void BackupdServer::Impl::shutdown_sequence() {
  {
    std::unique_lock lock(shutdown_mutex);
    if (shutdown_cv.wait_for(lock, config.shutdown_delay, [this] { return stopping; })) {
      shutdown_done = true;
      shutdown_cv.notify_all();
      return;
    }
  }
  for (const auto& pool : config.export_pools) {
    auto result = deps.runner->run({"zpool", "export", pool}, config.command_timeout);
    if (!result) {
      spdlog::error("zpool export {}: {}", pool, result.error().message);
    } else if (result->exit_status != 0) {
      spdlog::error("zpool export {} exited with status {}: {}", pool, result->exit_status, printable(trim(result->err)));
    } else {
      spdlog::info("exported pool {}", pool);
    }
  }
  auto result = deps.runner->run(config.shutdown_command, config.command_timeout);
  if (!result) {
    spdlog::error("shutdown command: {}", result.error().message);
  } else if (result->exit_status != 0) {
    spdlog::error("shutdown command exited with status {}: {}", result->exit_status, printable(trim(result->err)));
  } else {
    spdlog::info("shutdown command ran");
  }
  std::lock_guard lock(shutdown_mutex);
  shutdown_done = true;
  shutdown_cv.notify_all();
}

Result<SpinState> BackupdServer::Impl::query_spin(const BlockDevice& dev) {
  auto out = deps.runner->run(hdparm_state_argv(dev.dev_path.string()), config.command_timeout);
  if (!out) return std::move(out).error();
  return parse_hdparm_state(out->out + "\n" + out->err);
}

Response BackupdServer::Impl::handle_disk(const Request& req) {
  auto dev = resolve_disk_request(config.disk, req.param("dev"), req.query_param("id"));
  if (!dev) return Response::json_error(400, dev.error().message);
  json body{{"device", dev->name}, {"path", dev->dev_path.string()}};
  auto state = query_spin(*dev);
  if (state) {
    body["state"] = std::string(to_string(*state));
  } else {
    body["state"] = "unknown";
    body["state_error"] = state.error().message;
  }
  if (auto rot = read_rotational(config.disk, dev->name)) {
    body["rotational"] = *rot;
  } else {
    body["rotational"] = nullptr;
  }
  if (auto reads = read_io_reads(config.disk, dev->name)) {
    body["reads"] = *reads;
  } else {
    body["reads"] = nullptr;
  }
  return Response::json(200, body);
}

Response BackupdServer::Impl::handle_spinup(const Request& req) {
  auto dev = resolve_disk_request(config.disk, req.param("dev"), req.query_param("id"));
  if (!dev) return Response::json_error(400, dev.error().message);
  auto timeout = config.spinup_timeout;
  if (auto t = req.query_param("timeout")) {
    const auto value = parse_int(*t);
    if (!value || *value < 1) return Response::json_error(400, "timeout must be a positive number of seconds");
    timeout = std::min(config.spinup_timeout, std::chrono::seconds(*value));
  }
  const auto start = SteadyClock::now();
  const auto deadline = start + timeout;
  auto before = query_spin(*dev);
  json body{{"device", dev->name}, {"before", before ? std::string(to_string(*before)) : std::string("unknown")}};
  if (auto read = deps.spinup_read(*dev); !read) {
    spdlog::error("spin-up read of {}: {}", dev->dev_path.string(), read.error().message);
    body["error"] = "spin-up read failed";
    return Response::json(502, body);
  }
  SpinState state = SpinState::unknown;
  for (;;) {
    auto now_state = query_spin(*dev);
    state = now_state ? *now_state : SpinState::unknown;
    // After a successful read a disk that cannot report its state is up as far as we can tell.
    if (state == SpinState::active || state == SpinState::unknown) break;
    if (SteadyClock::now() >= deadline) break;
    deps.sleep(std::chrono::milliseconds(1000));
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
  body["state"] = std::string(to_string(state));
  body["waited_ms"] = waited;
  if (state == SpinState::standby || state == SpinState::sleeping) {
    body["error"] = "disk did not become active in time";
    return Response::json(504, body);
  }
  return Response::json(200, body);
}

BackupdServer::BackupdServer(BackupdConfig config, Secret token, BackupdDeps deps, int listen_fd)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(token), std::move(deps), listen_fd)) {}

BackupdServer::~BackupdServer() { stop(); }

Result<int> BackupdServer::start() {
  auto& d = *impl_;
  if (d.deps.runner == nullptr) return make_error(ExitCode::software, "backupd: no command runner");
  if (d.http) return make_error(ExitCode::software, "backupd: already started");
  if (d.token.empty()) {
    spdlog::warn("no token configured (token_file or $CREDENTIALS_DIRECTORY/backupd-token): "
                 "only /ping is served, every other endpoint answers 401");
  }
  http::ServerOptions options;
  options.listen = http::Listen{d.config.listen_host, d.config.listen_port, d.listen_fd};
  options.limits.max_body = d.config.payload_max;
  options.limits.connection_memory = d.config.connection_memory;
  options.limits.max_connections = static_cast<unsigned>(d.config.max_connections);
  options.limits.max_connections_per_ip = static_cast<unsigned>(d.config.max_connections_per_ip);
  options.limits.idle_timeout = d.config.read_timeout;
  options.limits.request_timeout = d.config.request_timeout;
  options.limits.keep_alive_max = d.config.keep_alive_max;
  options.access_log = [](const http::AccessEntry& e) {
    // Successful pings are routine (hozo polls them): debug. Everything else: info.
    const auto level = e.path == "/ping" && e.status == 200 ? spdlog::level::debug : spdlog::level::info;
    spdlog::log(level, "{} {} {} from {} ({} ms){}{}", e.method.empty() ? "-" : e.method, e.path.empty() ? "-" : e.path,
                e.status, e.peer, e.duration.count(), e.note.empty() ? "" : ": ", e.note);
  };
  options.on_exception = [](const Request& req, std::string_view what) {
    spdlog::error("{} {}: internal error: {}", printable(req.method), printable(std::string_view(req.path).substr(0, 120)),
                  printable(what));
  };
  d.http = std::make_unique<http::Server>(d.routes(), std::move(options));
  auto port = d.http->start();
  if (!port) d.http.reset();
  return port;
}

void BackupdServer::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->shutdown_mutex);
    impl_->stopping = true;
  }
  impl_->shutdown_cv.notify_all();
  if (impl_->http) impl_->http->stop();
  if (impl_->shutdown_thread.joinable()) impl_->shutdown_thread.join();
}

bool BackupdServer::shutdown_requested() const noexcept {
  std::lock_guard lock(impl_->shutdown_mutex);
  return impl_->shutdown_started;
}

bool BackupdServer::wait_shutdown_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->shutdown_mutex);
  return impl_->shutdown_cv.wait_for(lock, timeout, [this] { return impl_->shutdown_done; });
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

int run_backupd(int argc, char** argv) {
  CLI::App app{"backupd - Hōzō agent for the remote backup box"};
  app.set_version_flag("--version", std::string("backupd ") + kVersion);
  std::string config_path = "/etc/hozo/backupd.yaml";
  std::string listen;
  bool check = false;
  int verbose = 0;
  bool quiet = false;
  auto* config_opt = app.add_option("-c,--config", config_path, "config file (default /etc/hozo/backupd.yaml)");
  app.add_option("--listen", listen, "listen address HOST:PORT (overrides the config)");
  app.add_flag("--check", check, "validate the config and the token, report every problem, then exit (0 or 78)");
  app.add_flag("-v,--verbose", verbose, "more logging (repeatable)");
  app.add_flag("-q,--quiet", quiet, "warnings and errors only");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : to_int(ExitCode::usage);
  }
  setup_logging(quiet ? -1 : verbose);

  // Every problem is collected (--check reports them all), then the run stops at the first.
  std::vector<std::string> problems;
  BackupdConfig config;
  std::error_code ec;
  const bool config_exists = std::filesystem::exists(config_path, ec);
  if (config_opt->count() > 0 || config_exists) {
    auto text = read_file(config_path);
    if (!text) {
      problems.push_back(text.error().message);
    } else {
      config = parse_backupd_config_all(*text, config_path, problems);
    }
  } else if (check) {
    problems.push_back(fmt::format("{}: not found (create it from the example in backupd(8), or give -c FILE)", config_path));
  } else {
    spdlog::info("{} not found; using defaults", config_path);
  }
  if (!listen.empty()) {
    auto parsed = parse_listen_address(listen);
    if (!parsed) {
      fmt::print(stderr, "--listen: {}\n", parsed.error().message);
      return to_int(ExitCode::usage);
    }
    config.listen_host = parsed->first;
    config.listen_port = parsed->second;
  }
  const auto token = load_backupd_token(config);
  auto checked = check_backupd(config, token);
  if (!check) {
    // Running without a token is allowed (only /ping is served: start() warns); a bad token is not.
    if (!problems.empty() || !token) {
      for (const auto& p : problems) fmt::print(stderr, "{}\n", p);
      if (!token) fmt::print(stderr, "{}\n", token.error().message);
      return to_int(ExitCode::config);
    }
    for (const auto& w : checked.warnings) spdlog::warn("{}", w);
  } else {
    problems.insert(problems.end(), checked.problems.begin(), checked.problems.end());
    for (const auto& w : checked.warnings) fmt::print(stderr, "WARNING: {}\n", w);
    if (!problems.empty()) {
      for (const auto& p : problems) fmt::print(stderr, "{}\n", p);
      fmt::print(stderr, "{}: {} problem{} found\n", config_path, problems.size(), problems.size() == 1 ? "" : "s");
      return to_int(ExitCode::config);
    }
    fmt::print("{}: OK (listen {}:{}, token {}, export_pools [{}], shutdown_command '{}'){}\n", config_path,
               config.listen_host, config.listen_port, token->origin(), join(config.export_pools, ", "),
               join(config.shutdown_command, " "),
               checked.warnings.empty() ? "" : fmt::format(", {} warning{}", checked.warnings.size(),
                                                           checked.warnings.size() == 1 ? "" : "s"));
    return 0;
  }

  auto activated = http::systemd_listen_socket();
  if (!activated) {
    spdlog::error("{}", activated.error().message);
    return to_int(activated.error().code);
  }

  const sigset_t signals = http::block_stop_signals();

  LocalCommandRunner runner;
  const int listen_fd = activated->value_or(-1);
  BackupdServer server(config, token.value(), BackupdDeps{&runner, {}, {}, {}}, listen_fd);
  auto port = server.start();
  if (!port) {
    spdlog::error("{}", port.error().message);
    return to_int(port.error().code);
  }
  if (listen_fd >= 0) {
    spdlog::info("backupd {} listening on {} (socket from systemd; 'listen' in the config is not used)", kVersion,
                 http::describe_socket(listen_fd));
  } else {
    spdlog::info("backupd {} listening on {}:{}", kVersion, config.listen_host, *port);
  }
  http::wait_for_stop_signal(signals);
  server.stop();
  return 0;
}

}  // namespace hozo
