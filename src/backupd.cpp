#include "hozo/backupd.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "hozo/log.hpp"
#include "hozo/process.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"
#include "hozo/version.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

Result<std::pair<std::string, int>> parse_listen_address(std::string_view text) {
  text = trim(text);
  if (text.empty()) return make_error(ExitCode::config, "listen: empty address");
  std::string host;
  std::string_view port_text;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return make_error(ExitCode::config, "listen: missing ']' in '{}'", text);
    host = std::string(text.substr(1, close - 1));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return make_error(ExitCode::config, "listen: expected ':PORT' after ']'");
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      return make_error(ExitCode::config, "listen: write IPv6 addresses as [ADDR]:PORT");
    }
    host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
  }
  if (host.empty()) return make_error(ExitCode::config, "listen: empty host in '{}'", text);
  int port = 9999;
  if (!port_text.empty() || text.back() == ':') {
    const auto value = parse_int(port_text);
    if (!value || *value < 0 || *value > 65535) {
      return make_error(ExitCode::config, "listen: invalid port '{}'", printable(port_text));
    }
    port = static_cast<int>(*value);
  }
  return std::make_pair(host, port);
}

namespace {

struct ConfigIssues {
  std::string file;
  std::vector<std::string> lines;
  void add(const YAML::Node& node, std::string_view key, std::string_view message) {
    const auto mark = node.Mark();
    if (mark.line >= 0) {
      lines.push_back(fmt::format("{}:{}:{}: {}: {}", file, mark.line + 1, mark.column + 1, key, message));
    } else {
      lines.push_back(fmt::format("{}: {}: {}", file, key, message));
    }
  }
};

std::optional<std::chrono::seconds> yaml_duration(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  return parse_duration(node.Scalar());
}

std::optional<long long> yaml_int(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  return parse_int(node.Scalar());
}

}  // namespace

Result<BackupdConfig> parse_backupd_config(std::string_view yaml, std::string_view file_name) {
  BackupdConfig config;
  ConfigIssues issues{std::string(file_name), {}};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return make_error(ExitCode::config, "{}:{}:{}: {}", file_name, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (root.IsNull()) return config;  // empty file: all defaults
  if (!root.IsMap()) return make_error(ExitCode::config, "{}: expected a mapping at the top level", file_name);

  static const std::vector<std::string> kKeys = {
      "listen",         "token_file",      "export_pools",  "shutdown_command", "shutdown_delay",
      "command_timeout", "spinup_timeout", "max_body",      "read_timeout",     "request_timeout",
      "write_timeout",  "keep_alive_timeout", "keep_alive_max", "threads",      "max_queued",
      "sys_block",      "dev_root",        "proc_root"};
  try {
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      const YAML::Node& value = entry.second;
      auto duration_key = [&](std::chrono::seconds& out, long long min_s, long long max_s) {
        const auto d = yaml_duration(value);
        if (!d || d->count() < min_s || d->count() > max_s) {
          issues.add(value, key, fmt::format("expected a duration between {}s and {}s (\"30s\", \"2m\")", min_s, max_s));
        } else {
          out = *d;
        }
      };
      auto count_key = [&](std::size_t& out, long long min_v, long long max_v) {
        const auto v = yaml_int(value);
        if (!v || *v < min_v || *v > max_v) {
          issues.add(value, key, fmt::format("expected a number between {} and {}", min_v, max_v));
        } else {
          out = static_cast<std::size_t>(*v);
        }
      };
      auto string_list = [&](std::vector<std::string>& out) -> bool {
        if (!value.IsSequence()) {
          issues.add(value, key, "expected a list of strings");
          return false;
        }
        std::vector<std::string> items;
        for (const auto& item : value) {
          if (!item.IsScalar() || item.Scalar().empty()) {
            issues.add(item, key, "expected a non-empty string");
            return false;
          }
          items.push_back(item.Scalar());
        }
        out = std::move(items);
        return true;
      };
      auto path_key = [&](std::filesystem::path& out) {
        if (!value.IsScalar() || value.Scalar().empty() || value.Scalar()[0] != '/') {
          issues.add(value, key, "expected an absolute path");
        } else {
          out = value.Scalar();
        }
      };

      if (key == "listen") {
        if (!value.IsScalar()) {
          issues.add(value, key, "expected HOST:PORT");
          continue;
        }
        auto parsed = parse_listen_address(value.Scalar());
        if (!parsed) {
          issues.add(value, key, parsed.error().message);
        } else {
          config.listen_host = parsed->first;
          config.listen_port = parsed->second;
        }
      } else if (key == "token_file") {
        path_key(config.token_file);
      } else if (key == "export_pools") {
        std::vector<std::string> pools;
        if (string_list(pools)) {
          for (const auto& pool : pools) {
            if (auto valid = validate_dataset_name(pool); !valid || pool.find('/') != std::string::npos ||
                                                          pool.find('@') != std::string::npos) {
              issues.add(value, key, fmt::format("invalid pool name '{}'", printable(pool)));
            }
          }
          config.export_pools = std::move(pools);
        }
      } else if (key == "shutdown_command") {
        std::vector<std::string> argv;
        if (string_list(argv)) {
          if (argv.empty()) {
            issues.add(value, key, "must not be empty");
          } else {
            config.shutdown_command = std::move(argv);
          }
        }
      } else if (key == "shutdown_delay") {
        duration_key(config.shutdown_delay, 0, 3600);
      } else if (key == "command_timeout") {
        duration_key(config.command_timeout, 1, 3600);
      } else if (key == "spinup_timeout") {
        duration_key(config.spinup_timeout, 1, 600);
      } else if (key == "max_body") {
        count_key(config.payload_max, 0, 1 << 20);
      } else if (key == "read_timeout") {
        duration_key(config.read_timeout, 1, 300);
      } else if (key == "request_timeout") {
        duration_key(config.request_timeout, 1, 600);
      } else if (key == "write_timeout") {
        duration_key(config.write_timeout, 1, 300);
      } else if (key == "keep_alive_timeout") {
        duration_key(config.keep_alive_timeout, 1, 300);
      } else if (key == "keep_alive_max") {
        count_key(config.keep_alive_max, 1, 10000);
      } else if (key == "threads") {
        count_key(config.threads, 1, 256);
      } else if (key == "max_queued") {
        count_key(config.max_queued, 1, 100000);
      } else if (key == "sys_block") {
        path_key(config.disk.sys_block);
      } else if (key == "dev_root") {
        path_key(config.disk.dev);
      } else if (key == "proc_root") {
        path_key(config.proc_root);
      } else {
        std::string message = "unknown key";
        if (auto guess = did_you_mean(key, kKeys)) message += fmt::format(" (did you mean '{}'?)", *guess);
        issues.add(entry.first, printable(key), message);
      }
    }
  } catch (const YAML::Exception& e) {
    issues.lines.push_back(fmt::format("{}:{}:{}: {}", file_name, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (!issues.lines.empty()) return Error{join(issues.lines, "\n"), ExitCode::config};
  return config;
}

Result<BackupdConfig> load_backupd_config(const std::filesystem::path& path) {
  auto text = read_file(path);
  if (!text) return make_error(ExitCode::config, "{}", text.error().message);
  return parse_backupd_config(*text, path.string());
}

Result<Secret> load_backupd_token(const BackupdConfig& config) {
  std::filesystem::path file = config.token_file;
  std::string origin;
  if (file.empty()) {
    const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
    if (creds == nullptr || *creds == '\0') return Secret{};
    file = std::filesystem::path(creds) / "backupd-token";
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return Secret{};
    origin = "credential backupd-token";
  } else {
    origin = "file " + file.string();
  }
  auto text = read_file(file);
  if (!text) return make_error(ExitCode::config, "token: {}", text.error().message);
  const auto token = trim(*text);
  if (token.empty()) return make_error(ExitCode::config, "token: {} is empty", file.string());
  if (token.size() < 16) return make_error(ExitCode::config, "token: {} is too short (16 characters at least)", file.string());
  for (const char c : token) {
    if (c <= ' ' || c == 0x7f) return make_error(ExitCode::config, "token: {} contains whitespace or control characters", file.string());
  }
  return Secret(std::string(token), origin);
}

// ---------------------------------------------------------------------------------------------
// Pure request logic
// ---------------------------------------------------------------------------------------------

bool bearer_matches(std::string_view header_value, const Secret& token) noexcept {
  const std::string& expected = token.reveal();
  if (expected.empty()) return false;
  static constexpr std::string_view kPrefix = "Bearer ";
  if (header_value.size() < kPrefix.size()) return false;
  // The scheme is case-insensitive (RFC 7235); the prefix is not secret.
  for (std::size_t i = 0; i < kPrefix.size(); ++i) {
    const auto a = static_cast<unsigned char>(header_value[i]);
    const auto b = static_cast<unsigned char>(kPrefix[i]);
    if ((a | 0x20U) != (b | 0x20U)) return false;
  }
  const std::string_view given = header_value.substr(kPrefix.size());
  // Constant time in the token's length: always walk the expected token fully.
  unsigned diff = given.size() == expected.size() ? 0U : 1U;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0U;
    diff |= static_cast<unsigned>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0U;
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
// HTTP plumbing: a socket stream with a whole-request deadline and a bounded worker pool
// ---------------------------------------------------------------------------------------------

namespace {

/// Set while the accept thread closes a connection the full queue cannot take.
thread_local bool t_reject_connection = false;

int poll_ms(SteadyClock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 600000));
}

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int rc = ::poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

void describe_addr(const sockaddr_storage& addr, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &addr, sizeof(in));
    ::inet_ntop(AF_INET, &in.sin_addr, buf, sizeof(buf));
    port = ntohs(in.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &addr, sizeof(in6));
    ::inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof(buf));
    port = ntohs(in6.sin6_port);
  }
  ip = buf;
}

/// httplib::Stream over a connected socket: every read waits at most read_timeout for data
/// and never past the current request's deadline, so a client dribbling bytes (slowloris)
/// is cut once the whole request took longer than request_timeout.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int fd, std::chrono::milliseconds read_timeout, std::chrono::milliseconds write_timeout)
      : fd_(fd), read_timeout_(read_timeout), write_timeout_(write_timeout) {}

  void set_deadline(SteadyClock::time_point deadline) { deadline_ = deadline; }
  [[nodiscard]] bool has_buffered() const { return pos_ < len_; }

  bool is_readable() const override {
    if (has_buffered()) return true;
    const auto left = deadline_ - SteadyClock::now();
    if (left <= SteadyClock::duration::zero()) return false;
    return wait_fd(fd_, POLLIN, poll_ms(std::min<SteadyClock::duration>(left, read_timeout_)));
  }
  bool is_writable() const override { return wait_fd(fd_, POLLOUT, poll_ms(write_timeout_)); }

  ssize_t read(char* ptr, size_t size) override {
    if (size == 0) return 0;
    if (!has_buffered()) {
      if (!is_readable()) return -1;
      ssize_t n = 0;
      do {
        n = ::recv(fd_, buffer_, sizeof(buffer_), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<std::size_t>(n);
    }
    const std::size_t take = std::min(size, len_ - pos_);
    std::memcpy(ptr, buffer_ + pos_, take);
    pos_ += take;
    return static_cast<ssize_t>(take);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n = 0;
    do {
      n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) describe_addr(addr, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) describe_addr(addr, ip, port);
  }
  int socket() const override { return fd_; }

 private:
  int fd_;
  std::chrono::milliseconds read_timeout_;
  std::chrono::milliseconds write_timeout_;
  SteadyClock::time_point deadline_ = SteadyClock::now();
  char buffer_[4096] = {};
  std::size_t pos_ = 0;
  std::size_t len_ = 0;
};

/// httplib::TaskQueue::enqueue returns void in cpp-httplib 0.11 (Debian 12) and bool in later
/// versions (Debian 13: 0.18; false = "not queued, close the socket").
using EnqueueResult = decltype(std::declval<httplib::TaskQueue&>().enqueue(std::function<void()>{}));
/// The "task taken care of" value of EnqueueResult (nothing for void, true for bool).
template <class R>
R task_handled() {
  if constexpr (std::is_void_v<R>) {
    return;
  } else {
    return R{true};
  }
}

/// Fixed worker threads and a bounded queue of accepted connections; when the queue is full
/// the connection is closed at once instead of piling up.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(std::size_t threads, std::size_t max_queued) : max_queued_(max_queued) {
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~BoundedPool() override { shutdown(); }
  BoundedPool(const BoundedPool&) = delete;
  BoundedPool& operator=(const BoundedPool&) = delete;

  EnqueueResult enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_ && queue_.size() < max_queued_) {
        queue_.push_back(std::move(fn));
        cv_.notify_one();
        return task_handled<EnqueueResult>();
      }
    }
    // Full: run the task here with the reject flag; it closes the socket without reading.
    t_reject_connection = true;
    fn();
    t_reject_connection = false;
    return task_handled<EnqueueResult>();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && workers_.empty()) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
    workers_.clear();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
};

/// httplib::Server whose connection loop uses DeadlineStream (see above).
class GuardedServer final : public httplib::Server {
 public:
  explicit GuardedServer(const BackupdConfig& config) : config_(config) {}

  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> cut{0};

 private:
  bool process_and_close_socket(int sock) override {
    bool ret = false;
    if (t_reject_connection) {
      rejected.fetch_add(1);
    } else {
      ret = serve(sock);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }

  bool serve(int sock) {
    DeadlineStream strm(sock, config_.read_timeout, config_.write_timeout);
    std::size_t left = config_.keep_alive_max;
    bool ret = false;
    bool first = true;
    while (left > 0 && is_running()) {
      if (!first && !strm.has_buffered()) {
        // Idle keep-alive connection: wait for the next request, then give it a fresh deadline.
        if (!wait_fd(sock, POLLIN, poll_ms(config_.keep_alive_timeout))) break;
      }
      const auto deadline = SteadyClock::now() + config_.request_timeout;
      strm.set_deadline(deadline);
      bool connection_closed = false;
      const bool close_connection = left == 1 || !is_running();
      ret = process(*this, strm, close_connection, connection_closed);
      if (!ret && SteadyClock::now() >= deadline) cut.fetch_add(1);
      if (!ret || connection_closed) break;
      first = false;
      --left;
    }
    return ret;
  }

  /// cpp-httplib 0.11 (Debian 12) reads the peer's address from the stream; later versions
  /// (Debian 13: 0.18) take the remote and local addresses as arguments.
  template <class Self>
  static bool process(Self& self, DeadlineStream& strm, bool close_connection, bool& connection_closed) {
    if constexpr (requires { self.process_request(strm, close_connection, connection_closed, nullptr); }) {
      return self.process_request(strm, close_connection, connection_closed, nullptr);
    } else {
      std::string remote_ip;
      std::string local_ip;
      int remote_port = 0;
      int local_port = 0;
      strm.get_remote_ip_and_port(remote_ip, remote_port);
      strm.get_local_ip_and_port(local_ip, local_port);
      return self.process_request(strm, remote_ip, remote_port, local_ip, local_port, close_connection,
                                  connection_closed, nullptr);
    }
  }

  const BackupdConfig& config_;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Command output may hold invalid UTF-8: replace it instead of throwing.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, std::string_view message) {
  send_json(res, status, json{{"error", std::string(message)}});
}

std::optional<std::string> query_param(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) return std::nullopt;
  return req.get_param_value(key);
}

bool flag_param(const httplib::Request& req, const char* key) {
  const auto v = query_param(req, key);
  return v && (*v == "1" || *v == "true" || *v == "yes");
}

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

std::string log_path(const std::string& path) { return printable(std::string_view(path).substr(0, 120)); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// BackupdServer
// ---------------------------------------------------------------------------------------------

struct BackupdServer::Impl {
  BackupdConfig config;
  Secret token;
  BackupdDeps deps;
  GuardedServer http;
  SteadyClock::time_point started = SteadyClock::now();
  std::atomic<bool> bound{false};
  std::thread serve_thread;

  std::mutex shutdown_mutex;
  std::condition_variable shutdown_cv;
  bool shutdown_started = false;
  bool shutdown_done = false;
  bool stopping = false;
  std::thread shutdown_thread;

  std::atomic<bool> zpool_no_p{false};  // zfs-fuse: `zpool list` has no -p

  Impl(BackupdConfig c, Secret t, BackupdDeps injected)
      : config(std::move(c)), token(std::move(t)), deps(std::move(injected)), http(config) {
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
    setup();
  }

  void setup();
  void handle_status(httplib::Response& res);
  void handle_shutdown(const httplib::Request& req, httplib::Response& res);
  void handle_disk(const httplib::Request& req, httplib::Response& res);
  void handle_spinup(const httplib::Request& req, httplib::Response& res);
  void shutdown_sequence();
  Result<SpinState> query_spin(const BlockDevice& dev);
};

void BackupdServer::Impl::setup() {
  const auto threads = config.threads;
  const auto max_queued = config.max_queued;
  http.new_task_queue = [threads, max_queued] { return new BoundedPool(threads, max_queued); };
  http.set_payload_max_length(config.payload_max);
  http.set_read_timeout(config.read_timeout);
  http.set_write_timeout(config.write_timeout);
  http.set_keep_alive_max_count(config.keep_alive_max);
  http.set_keep_alive_timeout(config.keep_alive_timeout.count());

  http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("{} {}: internal error: {}", req.method, log_path(req.path), printable(what));
    send_error(res, 500, "internal error");
  });
  http.set_error_handler([](const httplib::Request& /*req*/, httplib::Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 400: send_error(res, 400, "bad request"); break;
      case 404: send_error(res, 404, "not found"); break;
      case 405: send_error(res, 405, "method not allowed"); break;
      case 413: send_error(res, 413, "payload too large"); break;
      case 414: send_error(res, 414, "uri too long"); break;
      default: send_error(res, res.status, "error"); break;
    }
  });
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (req.method.empty()) {
      spdlog::debug("incomplete or malformed request ({})", res.status);
      return;
    }
    const auto level = req.path == "/ping" && res.status == 200 ? spdlog::level::debug : spdlog::level::info;
    spdlog::log(level, "{} {} {} from {}", req.method, log_path(req.path), res.status, req.remote_addr);
  });

  // Auth wrapper: 401 without the right bearer token (always when none is configured).
  auto protect = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (!bearer_matches(req.get_header_value("Authorization"), token)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, token.empty() ? "unauthorized (no token configured on the server)" : "unauthorized");
        return;
      }
      handler(req, res);
    };
  };

  http.Get("/ping", [this](const httplib::Request&, httplib::Response& res) {
    const auto up = std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - started).count();
    send_json(res, 200, json{{"status", "ok"}, {"uptime", up}, {"version", kVersion}});
  });
  http.Get("/status", protect([this](const httplib::Request&, httplib::Response& res) { handle_status(res); }));
  http.Post("/shutdown", protect([this](const httplib::Request& req, httplib::Response& res) { handle_shutdown(req, res); }));
  http.Post(R"(/disk/([\s\S]*)/spinup)",
            protect([this](const httplib::Request& req, httplib::Response& res) { handle_spinup(req, res); }));
  http.Get(R"(/disk/([\s\S]*))", protect([this](const httplib::Request& req, httplib::Response& res) { handle_disk(req, res); }));
  // Anything else under /disk with a body-less method → 404 via the error handler.
}

void BackupdServer::Impl::handle_status(httplib::Response& res) {
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
    send_error(res, 502, "zpool list failed");
    return;
  }
  const bool no_pools = listed->out.find("no pools available") != std::string::npos ||
                        listed->err.find("no pools available") != std::string::npos;
  if (listed->exit_status != 0 && !no_pools) {
    spdlog::error("zpool list exited with status {}: {}", listed->exit_status, printable(trim(listed->err)));
    send_error(res, 502, "zpool list failed");
    return;
  }
  auto pools = parse_zpool_list(listed->out);
  if (!pools) {
    spdlog::error("{}", pools.error().message);
    send_error(res, 502, "unexpected zpool list output");
    return;
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
  send_json(res, 200, body);
}

void BackupdServer::Impl::handle_shutdown(const httplib::Request& req, httplib::Response& res) {
  const bool force = flag_param(req, "force");
  std::lock_guard lock(shutdown_mutex);
  if (shutdown_started) {
    send_json(res, 202, json{{"status", "shutdown already scheduled"}});
    return;
  }
  if (stopping) {
    send_error(res, 503, "stopping");
    return;
  }
  if (!force && deps.receive_running()) {
    send_error(res, 409, "a zfs receive is running; retry later or use ?force=1");
    return;
  }
  shutdown_started = true;
  spdlog::warn("shutdown requested by {}{}: exporting [{}] and running '{}' in {}s", req.remote_addr,
               force ? " (forced)" : "", join(config.export_pools, ", "), join(config.shutdown_command, " "),
               config.shutdown_delay.count());
  shutdown_thread = std::thread([this] { shutdown_sequence(); });
  send_json(res, 202, json{{"status", "shutdown scheduled"},
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

void BackupdServer::Impl::handle_disk(const httplib::Request& req, httplib::Response& res) {
  const std::string part = req.matches.size() > 1 ? std::string(req.matches[1]) : std::string();
  auto dev = resolve_disk_request(config.disk, part, query_param(req, "id"));
  if (!dev) {
    send_error(res, 400, dev.error().message);
    return;
  }
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
  send_json(res, 200, body);
}

void BackupdServer::Impl::handle_spinup(const httplib::Request& req, httplib::Response& res) {
  const std::string part = req.matches.size() > 1 ? std::string(req.matches[1]) : std::string();
  auto dev = resolve_disk_request(config.disk, part, query_param(req, "id"));
  if (!dev) {
    send_error(res, 400, dev.error().message);
    return;
  }
  auto timeout = config.spinup_timeout;
  if (auto t = query_param(req, "timeout")) {
    const auto value = parse_int(*t);
    if (!value || *value < 1) {
      send_error(res, 400, "timeout must be a positive number of seconds");
      return;
    }
    timeout = std::min(config.spinup_timeout, std::chrono::seconds(*value));
  }
  const auto start = SteadyClock::now();
  const auto deadline = start + timeout;
  auto before = query_spin(*dev);
  json body{{"device", dev->name}, {"before", before ? std::string(to_string(*before)) : std::string("unknown")}};
  if (auto read = deps.spinup_read(*dev); !read) {
    spdlog::error("spin-up read of {}: {}", dev->dev_path.string(), read.error().message);
    body["error"] = "spin-up read failed";
    send_json(res, 502, body);
    return;
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
    send_json(res, 504, body);
    return;
  }
  send_json(res, 200, body);
}

BackupdServer::BackupdServer(BackupdConfig config, Secret token, BackupdDeps deps)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(token), std::move(deps))) {}

BackupdServer::~BackupdServer() { stop(); }

Result<int> BackupdServer::bind() {
  if (impl_->deps.runner == nullptr) return make_error(ExitCode::software, "backupd: no command runner");
  if (impl_->token.empty()) {
    spdlog::warn("no token configured (token_file or $CREDENTIALS_DIRECTORY/backupd-token): "
                 "only /ping is served, every other endpoint answers 401");
  }
  int port = impl_->config.listen_port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(impl_->config.listen_host);
    if (port < 0) return make_error(ExitCode::unavailable, "cannot bind {}:0", impl_->config.listen_host);
  } else if (!impl_->http.bind_to_port(impl_->config.listen_host, port)) {
    return make_error(ExitCode::unavailable, "cannot listen on {}:{}: {}", impl_->config.listen_host, port,
                      std::strerror(errno));
  }
  impl_->bound = true;
  return port;
}

bool BackupdServer::run() { return impl_->http.listen_after_bind(); }

Result<int> BackupdServer::start() {
  int port = impl_->config.listen_port;
  if (!impl_->bound) {
    auto bound = bind();
    if (!bound) return bound;
    port = *bound;
  }
  impl_->serve_thread = std::thread([this] { run(); });
  // httplib 0.11 has no wait_until_ready(): poll is_running() briefly.
  for (int i = 0; i < 500 && !impl_->http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return port;
}

void BackupdServer::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->shutdown_mutex);
    impl_->stopping = true;
  }
  impl_->shutdown_cv.notify_all();
  impl_->http.stop();
  if (impl_->serve_thread.joinable()) impl_->serve_thread.join();
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
  app.add_flag("--check", check, "validate the config and the token, then exit (0 or 78)");
  app.add_flag("-v,--verbose", verbose, "more logging (repeatable)");
  app.add_flag("-q,--quiet", quiet, "warnings and errors only");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : to_int(ExitCode::usage);
  }
  setup_logging(quiet ? -1 : verbose);

  BackupdConfig config;
  std::error_code ec;
  if (config_opt->count() > 0 || std::filesystem::exists(config_path, ec)) {
    auto loaded = load_backupd_config(config_path);
    if (!loaded) {
      fmt::print(stderr, "{}\n", loaded.error().message);
      return to_int(ExitCode::config);
    }
    config = std::move(loaded).value();
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
  auto token = load_backupd_token(config);
  if (!token) {
    fmt::print(stderr, "{}\n", token.error().message);
    return to_int(ExitCode::config);
  }
  if (check) {
    fmt::print("{}: OK (listen {}:{}, token {}, export_pools [{}], shutdown_command '{}')\n", config_path,
               config.listen_host, config.listen_port, token->empty() ? "none" : token->origin(),
               join(config.export_pools, ", "), join(config.shutdown_command, " "));
    return 0;
  }

  // SIGINT/SIGTERM are taken by sigwait below; children get a clean mask (process.cpp).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  LocalCommandRunner runner;
  BackupdServer server(config, std::move(token).value(), BackupdDeps{&runner, {}, {}, {}});
  auto port = server.bind();
  if (!port) {
    spdlog::error("{}", port.error().message);
    return to_int(port.error().code);
  }
  spdlog::info("backupd {} listening on {}:{}", kVersion, config.listen_host, *port);
  auto started = server.start();
  if (!started) {
    spdlog::error("{}", started.error().message);
    return to_int(started.error().code);
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {} received; stopping", sig);
  server.stop();
  return 0;
}

}  // namespace hozo
