#include "hozo/lock.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include <nlohmann/json.hpp>

#include "hozo/util/fs.hpp"

namespace hozo {

namespace {

int flock_op(LockMode mode) { return mode == LockMode::exclusive ? LOCK_EX : LOCK_SH; }

/// One non-blocking flock attempt: 1 = locked, 0 = busy, -1 = error (errno set).
int try_flock(int fd, LockMode mode) {
  for (;;) {
    if (::flock(fd, flock_op(mode) | LOCK_NB) == 0) return 1;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

/// Polls try_flock until it succeeds or `timeout` passes; sleeps grow from 2 ms to 100 ms.
/// Returns 1 = locked, 0 = timed out, -1 = error (errno set).
int poll_flock(int fd, LockMode mode, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Millis pause{2};
  for (;;) {
    const int rc = try_flock(fd, mode);
    if (rc != 0) return rc;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return 0;
    const auto left = std::chrono::duration_cast<Millis>(deadline - now) + Millis{1};
    std::this_thread::sleep_for(std::min(pause, left));
    pause = std::min(pause * 2, Millis{100});
  }
}

std::string describe_wait(Millis timeout) {
  if (timeout.count() == 0) return "without waiting";
  return fmt::format("after waiting {}", format_duration(timeout));
}

Error busy_error(const std::filesystem::path& path, LockMode mode, Millis timeout) {
  return make_error(ExitCode::tempfail, "cannot take {} lock on {} {}: held by another process",
                    to_string(mode), path.string(), describe_wait(timeout));
}

}  // namespace

std::string_view to_string(LockMode mode) noexcept { return mode == LockMode::exclusive ? "exclusive" : "shared"; }

std::string sanitize_file_component(std::string_view name) {
  std::string out;
  out.reserve(std::min<std::size_t>(name.size(), 200));
  for (const char c : name) {
    if (out.size() >= 200) break;
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
    out.push_back(safe ? c : '_');
  }
  if (out.empty()) return "_";
  if (out.front() == '.') out.front() = '_';  // no hidden files, no "." or ".."
  return out;
}

// ---------------------------------------------------------------------------------------------
// FileLock

FileLock::FileLock(std::filesystem::path path, int fd, LockMode mode) noexcept
    : path_(std::move(path)), fd_(fd), mode_(mode), held_(true) {}

FileLock::FileLock(FileLock&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      mode_(other.mode_),
      held_(std::exchange(other.held_, false)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    mode_ = other.mode_;
    held_ = std::exchange(other.held_, false);
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() noexcept {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor of the open file drops the flock
  fd_ = -1;
  held_ = false;
}

Result<FileLock> FileLock::acquire(const std::filesystem::path& path, LockMode mode, Millis timeout) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  // flock works on read-only descriptors too: lets a reader lock a file it may not write.
  if (fd < 0 && errno == EACCES) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return make_error("cannot open lock file {}: {}", path.string(), std::strerror(errno));
  const int rc = poll_flock(fd, mode, std::max(timeout, Millis{0}));
  if (rc == 1) return FileLock(path, fd, mode);
  const int err = errno;
  ::close(fd);
  if (rc == 0) return busy_error(path, mode, timeout);
  return make_error("cannot lock {}: {}", path.string(), std::strerror(err));
}

Result<void> FileLock::convert(LockMode mode, Millis timeout) {
  if (fd_ < 0) return make_error(ExitCode::software, "lock on {} was already released", path_.string());
  if (held_ && mode == mode_) return ok();
  const int rc = poll_flock(fd_, mode, std::max(timeout, Millis{0}));
  if (rc == 1) {
    mode_ = mode;
    held_ = true;
    return ok();
  }
  const int err = errno;
  // Whatever the kernel left behind after a failed conversion, make the state definite.
  release();
  if (rc == 0) return busy_error(path_, mode, timeout);
  return make_error("cannot lock {}: {}", path_.string(), std::strerror(err));
}

// ---------------------------------------------------------------------------------------------
// HostLease

HostLease::HostLease(std::filesystem::path hosts_dir, std::string host, FileLock lock, bool first_user)
    : hosts_dir_(std::move(hosts_dir)), host_(std::move(host)), lock_(std::move(lock)), first_user_(first_user) {}

std::filesystem::path HostLease::file(std::string_view suffix) const {
  return hosts_dir_ / (sanitize_file_component(host_) + std::string(suffix));
}

Result<HostLease> HostLease::acquire(const std::filesystem::path& state_dir, std::string_view host,
                                     HostSharing sharing, Millis timeout) {
  const auto hosts_dir = state_dir / "hosts";
  if (auto made = make_dirs(hosts_dir, 0700); !made) return std::move(made).error();
  const auto lock_path = hosts_dir / (sanitize_file_component(host) + ".lock");
  const auto in_use = [&](const Error& e) {
    if (e.code != ExitCode::tempfail) return e;
    return make_error(ExitCode::tempfail, "host {} is in use by another hozo job (lease {}); gave up {}",
                      std::string(host), lock_path.string(), describe_wait(timeout));
  };

  if (sharing == HostSharing::wait) {
    auto lock = FileLock::acquire(lock_path, LockMode::exclusive, timeout);
    if (!lock) return in_use(lock.error());
    return HostLease(hosts_dir, std::string(host), std::move(lock).value(), true);
  }

  // Concurrent: a momentary exclusive attempt tells whether anyone else uses the host, then it is
  // downgraded to shared. The probe runs under the gate so that it never interleaves with another
  // job's try_become_last() conversion.
  const auto start = std::chrono::steady_clock::now();
  const auto gate_path = hosts_dir / (sanitize_file_component(host) + ".gate");
  if (auto gate = FileLock::acquire(gate_path, LockMode::exclusive, std::min(timeout, Millis{5000}))) {
    auto probe = FileLock::try_acquire(lock_path, LockMode::exclusive);
    if (probe) {
      // Without waiting: a waiting exclusive holder may slip in during the (non-atomic) downgrade,
      // and the gate must not be held while waiting for it.
      if (probe->convert(LockMode::shared, Millis{0})) {
        return HostLease(hosts_dir, std::string(host), std::move(probe).value(), true);
      }
    } else if (probe.error().code != ExitCode::tempfail) {
      return std::move(probe).error();
    }
  } else if (gate.error().code != ExitCode::tempfail) {
    return std::move(gate).error();
  }
  const auto spent = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
  auto lock = FileLock::acquire(lock_path, LockMode::shared, std::max(timeout - spent, Millis{0}));
  if (!lock) return in_use(lock.error());
  return HostLease(hosts_dir, std::string(host), std::move(lock).value(), false);
}

Result<bool> HostLease::in_use_by_others(const std::filesystem::path& state_dir, std::string_view host) {
  const auto hosts_dir = state_dir / "hosts";
  const auto lock_path = hosts_dir / (sanitize_file_component(host) + ".lock");
  std::error_code ec;
  if (!std::filesystem::exists(lock_path, ec)) return false;
  auto probe = FileLock::try_acquire(lock_path, LockMode::exclusive);
  if (probe) return false;
  if (probe.error().code == ExitCode::tempfail) return true;
  return probe.error();
}

Result<bool> HostLease::try_become_last(Millis gate_timeout) {
  if (!lock_.held()) return make_error(ExitCode::software, "host lease for {} was already released", host_);
  if (lock_.mode() == LockMode::exclusive) return true;

  // flock conversion is not atomic (and a failed conversion may or may not keep the old lock), so
  // two jobs converting at once could both fail. The gate lets one job at a time convert; a job
  // that fails drops its lock before leaving the gate, so the next one in sees it gone.
  auto gate = FileLock::acquire(file(".gate"), LockMode::exclusive, gate_timeout);
  if (!gate) return std::move(gate).error();
  auto converted = lock_.convert(LockMode::exclusive, Millis{0});
  if (converted) return true;
  lock_.release();
  if (converted.error().code == ExitCode::tempfail) return false;
  return std::move(converted).error();
}

Result<void> HostLease::mark_woken(std::string_view run_id) const {
  const nlohmann::json marker = {{"run_id", std::string(run_id)},
                                 {"woken_at", iso8601_utc(std::chrono::system_clock::now())},
                                 {"pid", static_cast<long long>(::getpid())}};
  return write_file_atomic(file(".woken"), marker.dump() + "\n", 0600);
}

Result<std::optional<WokenMarker>> HostLease::woken_marker() const {
  const auto path = file(".woken");
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec) return make_error("cannot check {}: {}", path.string(), ec.message());
    return std::optional<WokenMarker>{};
  }
  auto text = read_file(path);
  if (!text) return std::move(text).error();
  WokenMarker marker;
  try {
    const auto j = nlohmann::json::parse(*text);
    if (j.is_object()) {
      marker.run_id = j.value("run_id", std::string());
      marker.woken_at = j.value("woken_at", std::string());
      marker.pid = j.value("pid", 0LL);
    }
  } catch (const nlohmann::json::exception&) {
    // Only hozo writes this file: even a damaged one means hozo woke the box.
  }
  return std::optional<WokenMarker>(std::move(marker));
}

Result<bool> HostLease::woken_by_hozo() const {
  auto marker = woken_marker();
  if (!marker) return std::move(marker).error();
  return marker->has_value();
}

Result<void> HostLease::clear_woken() const {
  const auto path = file(".woken");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return make_error("cannot remove {}: {}", path.string(), std::strerror(errno));
  }
  return ok();
}

}  // namespace hozo
