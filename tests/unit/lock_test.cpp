// FileLock and HostLease with real processes: shared/exclusive, timeouts, the "last user" race,
// the woken marker.
//
// Note on fork(): a forked child shares the parent's open lock descriptions, so a lock the parent
// holds at fork time stays held until the child exits too. The tests therefore take locks in the
// process that owns them after forking, never before.

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "hozo/lock.hpp"
#include "hozo/util/fs.hpp"

using namespace hozo;
namespace fs = std::filesystem;

namespace {

using TempDir = hozo::test::TempDir;

/// A pipe used as a one-shot signal between processes.
class Pipe {
 public:
  Pipe() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe failed");
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_read() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = -1;
  }
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }
  bool send(char c) { return ::write(fds_[1], &c, 1) == 1; }
  /// One byte, or '\0' at end of file.
  char receive() {
    char c = 0;
    for (;;) {
      const auto n = ::read(fds_[0], &c, 1);
      if (n == 1) return c;
      if (n < 0 && errno == EINTR) continue;
      return '\0';
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

using hozo::test::spawn;
using hozo::test::wait_child;

constexpr Millis kLong{10000};

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST(LockNames, SanitizeFileComponent) {
  EXPECT_EQ(sanitize_file_component("backup.example.org"), "backup.example.org");
  EXPECT_EQ(sanitize_file_component("192.0.2.10"), "192.0.2.10");
  EXPECT_EQ(sanitize_file_component("../etc/passwd"), "_._etc_passwd");
  EXPECT_EQ(sanitize_file_component(".."), "_.");
  EXPECT_EQ(sanitize_file_component("."), "_");
  EXPECT_EQ(sanitize_file_component(""), "_");
  EXPECT_EQ(sanitize_file_component("fe80::1%eth0"), "fe80__1_eth0");
  EXPECT_EQ(sanitize_file_component("a b/c"), "a_b_c");
  EXPECT_LE(sanitize_file_component(std::string(1000, 'x')).size(), 200U);
}

TEST(LockFile, SharedCoexistExclusiveConflicts) {
  TempDir tmp;
  const auto path = tmp.path() / "x.lock";
  auto a = FileLock::acquire(path, LockMode::shared, Millis{0});
  auto b = FileLock::acquire(path, LockMode::shared, Millis{0});
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->mode(), LockMode::shared);
  auto c = FileLock::try_acquire(path, LockMode::exclusive);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ExitCode::tempfail);
  EXPECT_NE(c.error().message.find(path.string()), std::string::npos);
  a->release();
  EXPECT_FALSE(a->held());
  EXPECT_FALSE(FileLock::try_acquire(path, LockMode::exclusive));
  FileLock moved = std::move(b).value();
  EXPECT_TRUE(moved.held());
  moved.release();
  auto d = FileLock::try_acquire(path, LockMode::exclusive);
  ASSERT_TRUE(d);
  EXPECT_FALSE(FileLock::try_acquire(path, LockMode::shared));
}

TEST(LockFile, TimeoutIsTempfailAfterWaiting) {
  TempDir tmp;
  const auto path = tmp.path() / "x.lock";
  auto held = FileLock::acquire(path, LockMode::exclusive, Millis{0});
  ASSERT_TRUE(held);
  const auto start = std::chrono::steady_clock::now();
  auto waiting = FileLock::acquire(path, LockMode::shared, Millis{200});
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(waiting);
  EXPECT_EQ(waiting.error().code, ExitCode::tempfail);
  EXPECT_GE(waited, Millis{190});
  EXPECT_LT(waited, Millis{3000});
}

TEST(LockFile, OpenFailureIsNotTempfail) {
  auto lock = FileLock::acquire("/nonexistent-dir-hozo/x.lock", LockMode::shared, Millis{0});
  ASSERT_FALSE(lock);
  EXPECT_EQ(lock.error().code, ExitCode::failure);
}

TEST(LockFile, WaiterGetsLockWhenHolderProcessExits) {
  TempDir tmp;
  const auto path = tmp.path() / "x.lock";
  Pipe ready;
  const pid_t holder = spawn([&]() -> int {
    ready.close_read();
    auto lock = FileLock::acquire(path, LockMode::exclusive, Millis{0});
    if (!lock) return 2;
    ready.send('r');
    std::this_thread::sleep_for(Millis{300});
    return 0;
  });
  ready.close_write();
  ASSERT_EQ(ready.receive(), 'r');
  const auto start = std::chrono::steady_clock::now();
  auto lock = FileLock::acquire(path, LockMode::exclusive, kLong);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(lock) << lock.error().message;
  EXPECT_GE(waited, Millis{150});
  EXPECT_EQ(wait_child(holder), 0);
}

TEST(LockFile, ConvertDowngradesAndUpgrades) {
  TempDir tmp;
  const auto path = tmp.path() / "x.lock";
  auto lock = FileLock::acquire(path, LockMode::exclusive, Millis{0});
  ASSERT_TRUE(lock);
  ASSERT_TRUE(lock->convert(LockMode::shared, Millis{0}));
  EXPECT_EQ(lock->mode(), LockMode::shared);
  auto other = FileLock::try_acquire(path, LockMode::shared);
  ASSERT_TRUE(other);
  auto up = lock->convert(LockMode::exclusive, Millis{0});
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().code, ExitCode::tempfail);
  EXPECT_FALSE(lock->held());  // a failed conversion leaves nothing held
  other->release();
  EXPECT_TRUE(FileLock::try_acquire(path, LockMode::exclusive));
}

// ---------------------------------------------------------------------------------------------

TEST(HostLease, ConcurrentJobsInTwoProcessesBothHoldIt) {
  TempDir tmp;
  Pipe ready, done, result;
  const pid_t other = spawn([&]() -> int {
    ready.close_read();
    done.close_write();
    result.close_read();
    auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, Millis{0});
    if (!lease) return 2;
    result.send(lease->first_user() ? 'F' : 'f');
    ready.send('r');
    done.receive();
    return 0;
  });
  ready.close_write();
  done.close_read();
  result.close_write();
  ASSERT_EQ(ready.receive(), 'r');
  EXPECT_EQ(result.receive(), 'F');
  EXPECT_TRUE(fs::exists(tmp.path() / "hosts" / "box.lock"));

  auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, Millis{0});
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_TRUE(lease->held());
  EXPECT_FALSE(lease->exclusive());
  EXPECT_FALSE(lease->first_user());
  EXPECT_EQ(lease->host(), "box");

  // A wait-mode job cannot get in while they hold it.
  auto waiter = HostLease::acquire(tmp.path(), "box", HostSharing::wait, Millis{100});
  ASSERT_FALSE(waiter);
  EXPECT_EQ(waiter.error().code, ExitCode::tempfail);
  EXPECT_NE(waiter.error().message.find("box"), std::string::npos) << waiter.error().message;
  EXPECT_NE(waiter.error().message.find("in use"), std::string::npos) << waiter.error().message;

  done.close_write();
  EXPECT_EQ(wait_child(other), 0);
}

TEST(HostLease, WaitModeSerializesJobs) {
  TempDir tmp;
  Pipe ready;
  const pid_t first = spawn([&]() -> int {
    ready.close_read();
    auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::wait, Millis{0});
    if (!lease || !lease->exclusive() || !lease->first_user()) return 2;
    ready.send('r');
    std::this_thread::sleep_for(Millis{400});
    return 0;
  });
  ready.close_write();
  ASSERT_EQ(ready.receive(), 'r');

  auto impatient = HostLease::acquire(tmp.path(), "box", HostSharing::wait, Millis{50});
  ASSERT_FALSE(impatient);
  EXPECT_EQ(impatient.error().code, ExitCode::tempfail);
  auto concurrent = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, Millis{50});
  ASSERT_FALSE(concurrent);
  EXPECT_EQ(concurrent.error().code, ExitCode::tempfail);

  const auto start = std::chrono::steady_clock::now();
  auto second = HostLease::acquire(tmp.path(), "box", HostSharing::wait, kLong);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_GE(waited, Millis{150});
  EXPECT_EQ(wait_child(first), 0);

  // Another host is independent.
  EXPECT_TRUE(HostLease::acquire(tmp.path(), "other-box", HostSharing::wait, Millis{0}));
}

TEST(HostLease, WaitModeIsAlwaysLast) {
  TempDir tmp;
  auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::wait, Millis{0});
  ASSERT_TRUE(lease);
  auto last = lease->try_become_last();
  ASSERT_TRUE(last);
  EXPECT_TRUE(*last);
  EXPECT_TRUE(lease->exclusive());
}

TEST(HostLease, EarlierFinisherIsNotLastLaterOneIs) {
  TempDir tmp;
  Pipe ready, finish, result;
  const pid_t early = spawn([&]() -> int {
    ready.close_read();
    finish.close_write();
    result.close_read();
    auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
    if (!lease) return 2;
    ready.send('r');
    finish.receive();
    auto last = lease->try_become_last();
    result.send(!last ? 'e' : (*last ? 'L' : 'n'));
    return lease->held() ? 3 : 0;  // not last: the lease is gone
  });
  ready.close_write();
  finish.close_read();
  result.close_write();
  ASSERT_EQ(ready.receive(), 'r');
  auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
  ASSERT_TRUE(lease);
  finish.close_write();
  EXPECT_EQ(result.receive(), 'n');
  EXPECT_EQ(wait_child(early), 0);

  auto last = lease->try_become_last();
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_TRUE(*last);
  EXPECT_TRUE(lease->exclusive());
}

TEST(HostLease, LastUserHoldsTheHostDuringShutdown) {
  TempDir tmp;
  Pipe ready, release;
  const pid_t last_job = spawn([&]() -> int {
    ready.close_read();
    release.close_write();
    auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
    if (!lease) return 2;
    auto last = lease->try_become_last();
    if (!last || !*last) return 3;
    ready.send('r');
    release.receive();  // "shutting the box down"
    return 0;
  });
  ready.close_write();
  release.close_read();
  ASSERT_EQ(ready.receive(), 'r');
  auto during = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, Millis{100});
  ASSERT_FALSE(during);
  EXPECT_EQ(during.error().code, ExitCode::tempfail);
  auto in_use = HostLease::in_use_by_others(tmp.path(), "box");
  ASSERT_TRUE(in_use);
  EXPECT_TRUE(*in_use);
  release.close_write();
  auto after = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(wait_child(last_job), 0);
}

/// `n` processes hold the lease and call try_become_last() at the same moment; returns how many got true
/// (-1 on any error).
static int race_to_be_last(const fs::path& dir, int n) {
  Pipe ready, go, results, release;
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i) {
    kids.push_back(spawn([&]() -> int {
      ready.close_read();
      go.close_write();
      results.close_read();
      release.close_write();
      auto lease = HostLease::acquire(dir, "box", HostSharing::concurrent, kLong);
      if (!lease) return 2;
      ready.send('r');
      go.receive();  // end of file for everybody at once
      auto last = lease->try_become_last();
      results.send(!last ? 'e' : (*last ? 'L' : 'n'));
      release.receive();  // the winner keeps its exclusive lock until everyone has answered
      return 0;
    }));
  }
  ready.close_write();
  go.close_read();
  results.close_write();
  release.close_read();
  for (int i = 0; i < n; ++i) {
    if (ready.receive() != 'r') return -1;
  }
  go.close_write();
  int winners = 0;
  bool error = false;
  for (int i = 0; i < n; ++i) {
    const char c = results.receive();
    if (c == 'L') ++winners;
    if (c != 'L' && c != 'n') error = true;
  }
  release.close_write();
  for (const pid_t kid : kids) error = wait_child(kid) != 0 || error;
  return error ? -1 : winners;
}

TEST(HostLease, TwoJobsFinishingTogetherExactlyOneIsLast) {
  TempDir tmp;
  for (int round = 0; round < 50; ++round) {
    ASSERT_EQ(race_to_be_last(tmp.path(), 2), 1) << "round " << round;
  }
}

TEST(HostLease, FourJobsFinishingTogetherExactlyOneIsLast) {
  TempDir tmp;
  for (int round = 0; round < 20; ++round) {
    ASSERT_EQ(race_to_be_last(tmp.path(), 4), 1) << "round " << round;
  }
}

TEST(HostLease, InUseByOthers) {
  TempDir tmp;
  auto none = HostLease::in_use_by_others(tmp.path(), "box");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  Pipe ready, done;
  const pid_t job = spawn([&]() -> int {
    ready.close_read();
    done.close_write();
    auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
    if (!lease) return 2;
    ready.send('r');
    done.receive();
    return 0;
  });
  ready.close_write();
  done.close_read();
  ASSERT_EQ(ready.receive(), 'r');
  auto busy = HostLease::in_use_by_others(tmp.path(), "box");
  ASSERT_TRUE(busy);
  EXPECT_TRUE(*busy);
  done.close_write();
  EXPECT_EQ(wait_child(job), 0);
  auto free_again = HostLease::in_use_by_others(tmp.path(), "box");
  ASSERT_TRUE(free_again);
  EXPECT_FALSE(*free_again);
}

TEST(HostLease, WokenMarkerIsSharedBetweenJobs) {
  TempDir tmp;
  {
    auto a = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
    ASSERT_TRUE(a);
    auto none = a->woken_by_hozo();
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    ASSERT_TRUE(a->mark_woken("20261124T080000Z-42"));
  }
  // Job B (another process) joins while the box is up and sees that hozo woke it.
  const pid_t b = spawn([&]() -> int {
    auto lease = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
    if (!lease) return 2;
    auto woken = lease->woken_by_hozo();
    if (!woken || !*woken) return 3;
    auto marker = lease->woken_marker();
    if (!marker || !marker->has_value() || (*marker)->run_id != "20261124T080000Z-42") return 4;
    if ((*marker)->woken_at.empty() || (*marker)->pid == 0) return 5;
    auto last = lease->try_become_last();
    if (!last || !*last) return 6;
    return lease->clear_woken() ? 0 : 7;  // after powering the box off
  });
  EXPECT_EQ(wait_child(b), 0);
  auto c = HostLease::acquire(tmp.path(), "box", HostSharing::concurrent, kLong);
  ASSERT_TRUE(c);
  auto after = c->woken_by_hozo();
  ASSERT_TRUE(after);
  EXPECT_FALSE(*after);
  EXPECT_TRUE(c->clear_woken());  // idempotent

  // A damaged marker still means "hozo woke it".
  ASSERT_TRUE(write_file_atomic(tmp.path() / "hosts" / "box.woken", "{garbage"));
  auto damaged = c->woken_by_hozo();
  ASSERT_TRUE(damaged);
  EXPECT_TRUE(*damaged);
}

TEST(HostLease, HostNamesStayInsideTheHostsDirectory) {
  TempDir tmp;
  auto lease = HostLease::acquire(tmp.path(), "../../escape", HostSharing::wait, Millis{0});
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->mark_woken("r1"));
  for (const auto& entry : fs::directory_iterator(tmp.path())) EXPECT_EQ(entry.path().filename(), "hosts");
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(tmp.path() / "hosts")) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(".")) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 2U);
}
