#include "hozo/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "hozo/util/fd.hpp"
#include "hozo/util/strings.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace hozo {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerWakeup = 16;            // bound one stream's turn so the other is not starved
constexpr std::size_t kMaxLine = 64 * 1024;    // longer lines are delivered in pieces


/// Splits a byte stream into lines at '\n', '\r' and "\r\n".
class LineSplitter {
 public:
  explicit LineSplitter(const LineCallback& callback) : callback_(callback) {}

  void feed(std::string_view data) {
    if (!callback_) return;
    while (!data.empty()) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (data.front() == '\n') {
          data.remove_prefix(1);
          continue;
        }
      }
      const std::size_t brk = data.find_first_of("\r\n");
      if (brk == std::string_view::npos) {
        append(data);
        return;
      }
      append(data.substr(0, brk));
      emit();
      skip_lf_ = data[brk] == '\r';
      data.remove_prefix(brk + 1);
    }
  }

  /// Delivers a final line that had no line break.
  void finish() {
    if (callback_ && !line_.empty()) emit();
  }

 private:
  void append(std::string_view piece) {
    while (line_.size() + piece.size() >= kMaxLine) {
      const std::size_t take = kMaxLine - line_.size();
      line_.append(piece.substr(0, take));
      emit();
      piece.remove_prefix(take);
    }
    line_.append(piece);
  }
  void emit() {
    callback_(line_);
    line_.clear();
  }

  const LineCallback& callback_;
  std::string line_;
  bool skip_lf_ = false;
};

/// One output pipe of the child.
struct Stream {
  Fd fd;
  Capture capture = Capture::yes;
  std::size_t limit = 0;
  std::string* sink = nullptr;
  bool* truncated = nullptr;
  LineSplitter lines;

  Stream(Fd f, Capture c, std::size_t lim, std::string* s, bool* t, const LineCallback& cb)
      : fd(std::move(f)), capture(c), limit(lim), sink(s), truncated(t), lines(cb) {}

  void consume(std::string_view data) {
    if (capture == Capture::yes) {
      const std::size_t room = limit > sink->size() ? limit - sink->size() : 0;
      if (data.size() > room) *truncated = true;
      sink->append(data.substr(0, std::min(room, data.size())));
    }
    lines.feed(data);
  }

  /// Reads what is available; closes the pipe at EOF or on error.
  void drain() {
    char buffer[kReadChunk];
    for (int i = 0; i < kReadsPerWakeup && fd.open(); ++i) {
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n > 0) {
        consume(std::string_view(buffer, static_cast<std::size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close();  // EOF or a read error
    }
  }

  void close() {
    fd.reset();
    lines.finish();
  }
};

int poll_ms(Millis d) { return static_cast<int>(std::clamp<long long>(d.count(), 0, 60'000)); }

/// "NAME=value" strings: the current environment with `overrides` applied.
std::vector<std::string> build_environment(const std::map<std::string, std::optional<std::string>>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string name(entry.substr(0, entry.find('=')));
    if (overrides.count(name) != 0) continue;
    out.emplace_back(entry);
  }
  for (const auto& [name, value] : overrides) {
    if (value) out.push_back(name + "=" + *value);
  }
  return out;
}

std::vector<char*> c_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string command_name(const std::vector<std::string>& argv) { return printable(argv.front()); }

std::string command_line(const std::vector<std::string>& argv) {
  std::string text = printable(join(argv, " "));
  if (text.size() > 200) text = text.substr(0, 197) + "...";
  return text;
}

thread_local const SpawnWatch* t_watch = nullptr;

std::map<std::string, std::optional<std::string>> with_watch_tag(std::map<std::string, std::optional<std::string>> env) {
  if (t_watch != nullptr && !t_watch->tag.empty()) env[kRunTagVariable] = t_watch->tag;
  return env;
}

void notify_watch(pid_t pgid) {
  if (t_watch != nullptr && t_watch->on_spawn) t_watch->on_spawn(static_cast<int>(pgid));
}

/// What the forked child needs, prepared before fork().
struct ChildSetup {
  const char* exe;
  char* const* argv;
  char* const* envp;
  const char* working_dir;  ///< nullptr = inherit
  int out_fd;
  int err_fd;
  int exec_err_fd;  ///< close-on-exec; receives errno when anything below fails
  pid_t parent;
};

/// The child after fork(): its own process group, SIGKILL when the parent dies, default signal
/// dispositions and an empty mask, stdin /dev/null, the pipes on 1 and 2, nothing else open,
/// then exec. Only async-signal-safe calls.
[[noreturn]] void child_failed(int exec_err_fd, int err) {
  (void)!::write(exec_err_fd, &err, sizeof err);
  ::_exit(127);
}

[[noreturn]] void exec_child(const ChildSetup& c) {
  const auto fail = [&c](int err) { child_failed(c.exec_err_fd, err); };
  ::setpgid(0, 0);
  // PR_SET_PDEATHSIG fires when the *thread* that forked us ends: run_process blocks in that
  // thread until the child is reaped, so the thread outlives the child unless hozo itself dies.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (::getppid() != c.parent) ::_exit(127);  // the parent died before prctl
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull < 0) fail(errno);
  if (devnull != STDIN_FILENO && (::dup2(devnull, STDIN_FILENO) < 0 || ::close(devnull) != 0)) fail(errno);
  if (::dup2(c.out_fd, STDOUT_FILENO) < 0 || ::dup2(c.err_fd, STDERR_FILENO) < 0) fail(errno);
  // Everything else open (a library's descriptor without O_CLOEXEC) closes at exec; the error
  // pipe stays usable until then. Kernels before 5.11 lack the flag: close all but the pipe.
  if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    if (c.exec_err_fd > STDERR_FILENO + 1) ::close_range(STDERR_FILENO + 1, static_cast<unsigned>(c.exec_err_fd) - 1, 0);
    ::close_range(static_cast<unsigned>(c.exec_err_fd) + 1, ~0U, 0);
  }
  if (c.working_dir != nullptr && ::chdir(c.working_dir) != 0) fail(errno);
  ::execve(c.exe, c.argv, c.envp);
  child_failed(c.exec_err_fd, errno);
}

/// True when process group `pgid` has a member that is not a zombie. Zombies are skipped:
/// orphans are re-parented to init, and some container inits reap them late or never.
bool group_has_live_members(pid_t pgid) {
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;
  bool live = false;
  while (const dirent* entry = ::readdir(proc)) {
    const std::string_view name(entry->d_name);
    if (name.empty() || name.find_first_not_of("0123456789") != std::string_view::npos) continue;
    const std::string path = fmt::format("/proc/{}/stat", name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buffer[512];
    const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
    ::close(fd);
    if (n <= 0) continue;
    // "pid (comm) S ppid pgrp ..."; comm may contain spaces and parentheses.
    const std::string_view stat(buffer, static_cast<std::size_t>(n));
    const std::size_t close_paren = stat.rfind(')');
    if (close_paren == std::string_view::npos || close_paren + 2 >= stat.size()) continue;
    const char state = stat[close_paren + 2];
    const auto fields = split(stat.substr(close_paren + 4), ' ');
    if (fields.size() < 2) continue;
    const auto pgrp = parse_int(fields[1]);
    if (pgrp && *pgrp == pgid && state != 'Z' && state != 'X') {
      live = true;
      break;
    }
  }
  ::closedir(proc);
  return live;
}

}  // namespace

ScopedSpawnWatch::ScopedSpawnWatch(const SpawnWatch& watch) noexcept : previous_(t_watch) { t_watch = &watch; }
ScopedSpawnWatch::~ScopedSpawnWatch() { t_watch = previous_; }

std::optional<std::filesystem::path> find_in_path(std::string_view name, std::optional<std::string_view> path_env) {
  if (name.empty()) return std::nullopt;
  const std::string name_str(name);
  if (name.find('/') != std::string_view::npos) {
    if (::access(name_str.c_str(), F_OK) == 0) return std::filesystem::path(name_str);
    return std::nullopt;
  }
  std::string search;
  if (path_env) {
    search = std::string(*path_env);
  } else if (const char* env = std::getenv("PATH"); env != nullptr) {
    search = env;
  } else {
    search = "/bin:/usr/bin";
  }
  for (const auto dir : split(search, ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + name_str;
    struct stat st{};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return std::filesystem::path(candidate);
    }
  }
  return std::nullopt;
}

std::string tool_search_path(std::optional<std::string_view> path_env) {
  std::string search;
  if (path_env) {
    search = std::string(*path_env);
  } else if (const char* env = std::getenv("PATH"); env != nullptr) {
    search = env;
  } else {
    search = "/usr/bin:/bin";
  }
  std::vector<std::string> present;  // copies: `search` grows below
  for (const auto dir : split(search, ':')) present.emplace_back(dir);
  for (const auto dir : split(kSbinDirs, ':')) {
    if (std::find(present.begin(), present.end(), dir) != present.end()) continue;
    if (!search.empty()) search += ':';
    search += dir;
  }
  return search;
}

std::optional<std::filesystem::path> find_program(std::string_view name) {
  return find_in_path(name, tool_search_path());
}

Result<ProcessResult> run_process(const ProcessOptions& options) {
  if (options.argv.empty() || options.argv.front().empty()) {
    return make_error(ExitCode::software, "cannot run an empty command");
  }
  for (const auto& arg : options.argv) {
    if (arg.find('\0') != std::string::npos) {
      return make_error(ExitCode::software, "{}: argument contains a NUL byte", command_name(options.argv));
    }
  }

  std::string default_search;
  std::optional<std::string_view> path_env;
  if (const auto it = options.env.find("PATH"); it != options.env.end() && it->second) {
    path_env = *it->second;
  } else {
    default_search = tool_search_path();
    path_env = default_search;
  }
  // A relative name with a '/' is resolved in the child's working directory, like execvp after chdir.
  std::optional<std::filesystem::path> executable;
  const std::filesystem::path as_path(options.argv.front());
  if (options.working_dir && options.argv.front().find('/') != std::string::npos && as_path.is_relative()) {
    const auto in_dir = find_in_path((*options.working_dir / as_path).string());
    if (in_dir) executable = as_path;
  } else {
    executable = find_in_path(options.argv.front(), path_env);
  }
  if (!executable) return make_error(ExitCode::unavailable, "{}: command not found", command_name(options.argv));
  if (options.working_dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(*options.working_dir, ec)) {
      return make_error("{}: working directory {} does not exist", command_name(options.argv),
                        printable(options.working_dir->string()));
    }
  }

  // Pipes: both ends close-on-exec; posix_spawn's dup2 onto 1/2 clears the flag in the child.
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return make_error("cannot create a pipe: {}", std::strerror(errno));
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return make_error("cannot create a pipe: {}", std::strerror(errno));
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);
  for (const int fd : {out_read.get(), err_read.get()}) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      return make_error("cannot make a pipe non-blocking: {}", std::strerror(errno));
    }
  }

  // Everything the child needs is prepared here: after fork() it may only call
  // async-signal-safe functions (another thread may hold malloc's or a library's lock).
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = build_environment(with_watch_tag(options.env));
  const std::vector<char*> argv_c = c_array(argv_strings);
  const std::vector<char*> env_c = c_array(env_strings);
  const std::string exe = executable->string();
  const std::string working_dir = options.working_dir ? options.working_dir->string() : std::string();
  int exec_pipe[2] = {-1, -1};  // the child writes errno here when exec fails; EOF = exec'd
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) return make_error("cannot create a pipe: {}", std::strerror(errno));
  Fd exec_read(exec_pipe[0]), exec_write(exec_pipe[1]);
  const pid_t parent = ::getpid();

  const SteadyTime start = SteadyClock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return make_error("cannot start {}: fork: {}", command_name(options.argv), std::strerror(errno));
  if (pid == 0) {
    exec_child(ChildSetup{exe.c_str(), argv_c.data(), env_c.data(), working_dir.empty() ? nullptr : working_dir.c_str(),
                          out_write.get(), err_write.get(), exec_write.get(), parent});
  }
  ::setpgid(pid, pid);  // also in the parent, so that the group exists before any kill(-pid)
  exec_write.reset();
  int child_errno = 0;
  for (;;) {
    const ssize_t n = ::read(exec_read.get(), &child_errno, sizeof child_errno);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof child_errno)) child_errno = 0;
    break;
  }
  if (child_errno != 0) {
    int ignored = 0;
    while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    if (child_errno == ENOENT) return make_error(ExitCode::unavailable, "{}: command not found", command_name(options.argv));
    if (child_errno == ENOTDIR && !working_dir.empty()) {
      return make_error("{}: working directory {} does not exist", command_name(options.argv), printable(working_dir));
    }
    return make_error(child_errno == EACCES || child_errno == ENOEXEC ? ExitCode::unavailable : ExitCode::failure,
                      "cannot execute {}: {}", printable(exe), std::strerror(child_errno));
  }
  notify_watch(pid);
  out_write.reset();
  err_write.reset();

  ProcessResult result;
  result.pgid = pid;
  Stream streams[2] = {
      Stream(std::move(out_read), options.capture_stdout, options.capture_limit, &result.out, &result.out_truncated,
             options.on_stdout_line),
      Stream(std::move(err_read), options.capture_stderr, options.capture_limit, &result.err, &result.err_truncated,
             options.on_stderr_line)};

  const auto tick = std::max(options.tick, Millis(1));
  bool exited = false;
  int status = 0;
  bool lost_child = false;
  std::optional<SteadyTime> exited_at;
  std::optional<SteadyTime> term_sent_at;
  std::optional<SteadyTime> kill_sent_at;
  Millis idle_wait(1);

  for (;;) {
    const bool pipes_open = streams[0].fd.open() || streams[1].fd.open();
    if (exited && !pipes_open) {
      // Terminating: leftovers of the group (that closed their output) still get SIGKILL after the grace.
      if (!term_sent_at || kill_sent_at || !group_has_live_members(pid)) break;
    }

    if (pipes_open) {
      pollfd pfds[2];
      nfds_t n = 0;
      Stream* owners[2] = {nullptr, nullptr};
      for (auto& s : streams) {
        if (!s.fd.open()) continue;
        owners[n] = &s;
        pfds[n++] = pollfd{s.fd.get(), POLLIN, 0};
      }
      // Right after the child exits, look again soon (the pipes usually hit EOF at once).
      const int wait = poll_ms(exited ? std::min(idle_wait, tick) : tick);
      const int ready = ::poll(pfds, n, wait);
      if (ready < 0 && errno != EINTR) return make_error("poll failed: {}", std::strerror(errno));
      if (ready > 0) {
        for (nfds_t i = 0; i < n; ++i) {
          if (pfds[i].revents != 0) owners[i]->drain();
        }
      }
    } else {
      // Output closed, child still running (or group leftovers): back off from 1 ms up to the tick.
      ::poll(nullptr, 0, poll_ms(std::min(idle_wait, tick)));
    }
    if (!pipes_open || exited) idle_wait = std::min(idle_wait * 2, tick);

    if (!exited) {
      pid_t w = -1;
      do {
        w = ::waitpid(pid, &status, WNOHANG);
      } while (w < 0 && errno == EINTR);
      if (w == pid) {
        exited = true;
        exited_at = SteadyClock::now();
        idle_wait = Millis(1);
      } else if (w < 0) {
        exited = true;  // ECHILD: someone else reaped it (SIGCHLD ignored?)
        lost_child = true;
        exited_at = SteadyClock::now();
      }
    }

    const SteadyTime now = SteadyClock::now();
    if (!term_sent_at) {
      const bool cancel_now = options.cancel != nullptr && options.cancel->load();
      const bool timeout_now = options.timeout && now - start >= *options.timeout;
      if (!exited && (cancel_now || timeout_now)) {
        result.cancelled = cancel_now;
        result.timed_out = !cancel_now;
        ::kill(-pid, SIGTERM);
        term_sent_at = now;
      } else if (exited && pipes_open && (cancel_now || now - *exited_at >= options.drain_after_exit)) {
        // The child is gone but something it started keeps our pipes open: end its group.
        ::kill(-pid, SIGKILL);
        term_sent_at = kill_sent_at = now;
      }
    } else if (!kill_sent_at && now - *term_sent_at >= options.kill_grace) {
      ::kill(-pid, SIGKILL);
      kill_sent_at = now;
    } else if (kill_sent_at && exited && pipes_open && now - *kill_sent_at >= options.drain_after_exit) {
      // Still open after SIGKILL: held by a process outside the group. Stop reading.
      for (auto& s : streams) s.close();
    }
  }

  result.elapsed = SteadyClock::now() - start;
  if (lost_child) {
    return make_error(ExitCode::software, "{}: lost track of process {} (reaped elsewhere)",
                      command_name(options.argv), pid);
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

std::string describe_termination(const ProcessResult& result, std::optional<Millis> timeout) {
  if (result.cancelled) return "cancelled";
  if (result.timed_out) {
    return timeout ? fmt::format("timed out after {}", format_duration(*timeout)) : std::string("timed out");
  }
  if (result.term_signal != 0) {
    const char* name = ::strsignal(result.term_signal);
    return fmt::format("killed by signal {} ({})", result.term_signal, name != nullptr ? name : "?");
  }
  return fmt::format("exited with status {}", result.exit_code);
}

Result<CommandOutput> LocalCommandRunner::run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  ProcessOptions options;
  options.argv = argv;
  if (timeout.count() > 0) options.timeout = std::chrono::duration_cast<Millis>(timeout);
  options.cancel = cancel_;
  options.kill_grace = kill_grace_;
  auto result = run_process(options);
  if (!result) return std::move(result).error();
  const ProcessResult& r = *result;
  if (r.cancelled) {
    return make_error(ExitCode::interrupted, "{}: cancelled (process group terminated)", command_line(argv));
  }
  if (r.timed_out || r.term_signal != 0) {
    return make_error("{}: {}", command_line(argv), describe_termination(r, options.timeout));
  }
  return CommandOutput{r.exit_code, r.out, r.err};
}

}  // namespace hozo
