#pragma once
// flock(2) helpers: an RAII file lock, the per-host lease that decides which job may power the
// backup box off, and the shared "woken by hozo" marker.
//
// Files (all under <state dir>/hosts/, created 0700/0600, never deleted):
//   <host>.lock   the lease: shared (HostSharing::concurrent) or exclusive (HostSharing::wait)
//   <host>.gate   serializes try_become_last() so that exactly one finishing job becomes last
//   <host>.woken  the woken marker (JSON: run id, time, pid)
//
// flock locks belong to an open file description: two FileLock objects on the same path
// conflict with each other even inside one process, just as two processes do.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "hozo/config.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// flock mode: many shared holders, or one exclusive holder.
enum class LockMode { shared, exclusive };

/// "shared" / "exclusive".
std::string_view to_string(LockMode mode) noexcept;

/// Makes a host or job name safe as one file-name component: keeps [A-Za-z0-9._-], maps everything
/// else (including '/') to '_', and never returns "", "." or ".." or a name starting with '.'.
std::string sanitize_file_component(std::string_view name);

/// An RAII flock(2) on a file (created 0600 if missing; its directory must exist).
class FileLock {
 public:
  /// Takes the lock, polling LOCK_NB with short sleeps until `timeout` has passed.
  /// A zero timeout makes exactly one non-blocking attempt.
  /// Busy until the deadline -> Error{tempfail}; other failures (open, I/O) -> Error{failure}.
  static Result<FileLock> acquire(const std::filesystem::path& path, LockMode mode, Millis timeout);

  /// One non-blocking attempt; same as acquire(path, mode, 0ms).
  static Result<FileLock> try_acquire(const std::filesystem::path& path, LockMode mode) {
    return acquire(path, mode, Millis{0});
  }

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  /// Releases the lock and closes the file.
  ~FileLock();

  /// Converts the held lock to `mode`, waiting up to `timeout` (zero = one attempt).
  /// Not atomic (flock drops the old lock first); on failure no lock is held any more.
  Result<void> convert(LockMode mode, Millis timeout);

  /// Releases the lock now (idempotent).
  void release() noexcept;

  /// True while a lock is held.
  [[nodiscard]] bool held() const noexcept { return held_; }
  /// The mode of the held lock.
  [[nodiscard]] LockMode mode() const noexcept { return mode_; }
  /// The locked file.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  FileLock(std::filesystem::path path, int fd, LockMode mode) noexcept;
  std::filesystem::path path_;
  int fd_ = -1;
  LockMode mode_ = LockMode::shared;
  bool held_ = false;
};

/// Contents of the woken marker.
struct WokenMarker {
  std::string run_id;    ///< the run that sent the wake
  std::string woken_at;  ///< UTC ISO-8601
  long long pid = 0;     ///< the hozo process that sent it
};

/// The per-host lease shared by every job that targets the same backup box.
///
/// Protocol for the job pipeline:
///  1. acquire() before waking the box (concurrent: shared lock; wait: exclusive lock).
///  2. If the box was down and hozo wakes it: mark_woken(run_id).
///     If first_user() and the box was already up, a marker left by a crashed run is stale:
///     clear_woken() (a box someone else switched on is never powered off).
///  3. When done: if try_become_last() is true, this job now holds the lease exclusively; power the
///     box off only if woken_by_hozo(), then clear_woken(), then release() (a new job waits meanwhile).
class HostLease {
 public:
  /// Takes the lease for `host` under `state_dir`/hosts/ (created 0700), waiting up to `timeout`.
  /// Timeout -> Error{tempfail} naming the host and the lock file.
  static Result<HostLease> acquire(const std::filesystem::path& state_dir, std::string_view host,
                                   HostSharing sharing, Millis timeout);

  /// For `hozo shutdown`: true when any job currently holds the lease for `host`
  /// (checked with a momentary non-blocking exclusive lock). Do not call while holding a lease
  /// for the same host yourself (your own lease counts as a user).
  static Result<bool> in_use_by_others(const std::filesystem::path& state_dir, std::string_view host);

  /// Tries to become the only holder: converts to an exclusive lock without waiting.
  /// True: no other job holds the host; the exclusive lock is kept until release().
  /// False: another job holds it (or is waiting for it); this lease is released.
  /// When several jobs call this at the same moment exactly one gets true; conversions are
  /// serialized by the <host>.gate lock (waited for up to `gate_timeout`; an Error, e.g. tempfail
  /// when the gate stays busy, leaves the lease as it was — treat it as "not last").
  Result<bool> try_become_last(Millis gate_timeout = Millis{30000});

  /// True when no other job held the host at the moment this lease was acquired.
  [[nodiscard]] bool first_user() const noexcept { return first_user_; }
  /// True while the lease holds the host exclusively (wait mode, or after try_become_last()).
  [[nodiscard]] bool exclusive() const noexcept { return lock_.held() && lock_.mode() == LockMode::exclusive; }
  /// True while the lease holds any lock.
  [[nodiscard]] bool held() const noexcept { return lock_.held(); }
  /// The host as given to acquire().
  [[nodiscard]] const std::string& host() const noexcept { return host_; }

  /// Records that hozo woke the box (run id + time), crash-safely.
  Result<void> mark_woken(std::string_view run_id) const;
  /// True when the woken marker exists (hozo woke the box and it has not been shut down since).
  Result<bool> woken_by_hozo() const;
  /// The marker's contents; nullopt when absent. An unreadable marker still counts as present.
  Result<std::optional<WokenMarker>> woken_marker() const;
  /// Removes the woken marker (idempotent).
  Result<void> clear_woken() const;

  /// Releases the lease now (idempotent; the destructor does it too).
  void release() noexcept { lock_.release(); }

 private:
  HostLease(std::filesystem::path hosts_dir, std::string host, FileLock lock, bool first_user);
  [[nodiscard]] std::filesystem::path file(std::string_view suffix) const;

  std::filesystem::path hosts_dir_;
  std::string host_;
  FileLock lock_;
  bool first_user_ = false;
};

}  // namespace hozo
