#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "hozo/process.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include <fmt/format.h>

using namespace hozo;
using namespace std::chrono_literals;

namespace {

using Steady = std::chrono::steady_clock;

ProcessResult run_ok(ProcessOptions options) {
  auto r = run_process(options);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : ProcessResult{};
}

ProcessOptions sh(const std::string& script) {
  ProcessOptions o;
  o.argv = {"sh", "-c", script};
  return o;
}

/// Reaps our own zombies from group `pgid` (orphans re-parented to us as sub-reaper), then
/// waits until no process of the group is left; true when the group is gone.
bool group_gone(pid_t pgid, std::chrono::milliseconds within) {
  const auto until = Steady::now() + within;
  for (;;) {
    while (::waitpid(-pgid, nullptr, WNOHANG) > 0) {
    }
    if (::kill(-pgid, 0) == -1 && errno == ESRCH) return true;
    if (Steady::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
}

}  // namespace

TEST(Process, ExitCodes) {
  EXPECT_EQ(run_ok(sh("exit 0")).exit_code, 0);
  EXPECT_EQ(run_ok(sh("exit 3")).exit_code, 3);
  const auto r = run_ok(sh("exit 255"));
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.cancelled);
  ProcessOptions t;
  t.argv = {"true"};
  EXPECT_EQ(run_ok(t).exit_code, 0);
  t.argv = {"false"};
  EXPECT_EQ(run_ok(t).exit_code, 1);
}

TEST(Process, KilledBySignal) {
  const auto r = run_ok(sh("kill -USR1 $$"));
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.term_signal, SIGUSR1);
  EXPECT_NE(describe_termination(r).find("signal"), std::string::npos);
}

TEST(Process, CapturesStdoutAndStderrSeparately) {
  const auto r = run_ok(sh("echo out1; echo err1 >&2; printf 'out2'; printf 'err2' >&2"));
  EXPECT_EQ(r.out, "out1\nout2");
  EXPECT_EQ(r.err, "err1\nerr2");
  auto no_capture = sh("echo out; echo err >&2");
  no_capture.capture_stdout = Capture::no;
  const auto n = run_ok(no_capture);
  EXPECT_EQ(n.out, "");
  EXPECT_EQ(n.err, "err\n");
}

TEST(Process, LineCallbacksSplitOnNewlineAndCarriageReturn) {
  std::vector<std::string> out_lines;
  std::vector<std::string> err_lines;
  auto o = sh("printf 'a\\nb\\r\\nc\\rd\\r'; sleep 0.05; printf '\\ne'; printf '10%%\\r20%%\\r100%%\\n' >&2");
  o.on_stdout_line = [&](std::string_view l) { out_lines.emplace_back(l); };
  o.on_stderr_line = [&](std::string_view l) { err_lines.emplace_back(l); };
  const auto r = run_ok(o);
  EXPECT_EQ(r.exit_code, 0);
  // "\r\n" is one break even when split across reads; "d\r" then "\n" later is one break too.
  EXPECT_EQ(out_lines, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(err_lines, (std::vector<std::string>{"10%", "20%", "100%"}));
  EXPECT_EQ(r.out, "a\nb\r\nc\rd\r\ne");  // capture keeps the raw bytes
}

TEST(Process, EmptyLinesAreDelivered) {
  std::vector<std::string> lines;
  auto o = sh("printf 'x\\n\\ny\\n'");
  o.on_stdout_line = [&](std::string_view l) { lines.emplace_back(l); };
  run_ok(o);
  EXPECT_EQ(lines, (std::vector<std::string>{"x", "", "y"}));
}

TEST(Process, StdinIsDevNull) {
  ProcessOptions o;
  o.argv = {"cat"};
  o.timeout = 5s;
  const auto r = run_ok(o);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "");
  EXPECT_LT(r.elapsed, 2s);
}

TEST(Process, OnlyStdioIsInherited) {
  // A descriptor of ours opened without O_CLOEXEC must not leak into the child.
  const int leaky = ::fcntl(STDERR_FILENO, F_DUPFD, 100);
  ASSERT_GE(leaky, 100);
  const auto r = run_ok(sh("ls /proc/self/fd"));
  ::close(leaky);
  std::vector<std::string> open;
  for (const auto line : split_lines(r.out)) open.emplace_back(line);
  EXPECT_EQ(std::count(open.begin(), open.end(), std::to_string(leaky)), 0) << r.out;
  EXPECT_LE(open.size(), 4u) << r.out;  // 0, 1, 2 and the directory ls is reading
}

TEST(Process, RunsInItsOwnProcessGroupWithDefaultSignals) {
  // SIGPIPE ignored here must be back to default in the child; the mask must be empty.
  struct sigaction old_action{};
  struct sigaction ignore{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old_action);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigset_t old_mask;
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  const auto r = run_ok(sh("cut -d' ' -f5 /proc/$$/stat; grep -E '^(SigBlk|SigIgn)' /proc/self/status"));
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_action, nullptr);
  const auto lines = split_lines(r.out);
  ASSERT_GE(lines.size(), 3u) << r.out;
  EXPECT_EQ(std::string(trim(lines[0])), std::to_string(r.pgid));
  EXPECT_NE(r.pgid, ::getpgrp());
  EXPECT_EQ(std::string(lines[1]), "SigBlk:\t0000000000000000");
  // sh itself may ignore some signals, but not SIGPIPE (bit 13 -> 0x1000).
  const auto ign = std::stoull(std::string(lines[2].substr(lines[2].find('\t') + 1)), nullptr, 16);
  EXPECT_EQ(ign & 0x1000ULL, 0ULL) << lines[2];
}

TEST(Process, TimeoutKillsTheWholeGroupIncludingGrandchildren) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // orphaned grandchildren come to us, so we can reap them
  auto o = sh("sleep 100 & echo $!; sleep 100");
  o.timeout = 300ms;
  o.kill_grace = 300ms;
  const auto began = Steady::now();
  const auto r = run_ok(o);
  const auto took = Steady::now() - began;
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.cancelled);
  EXPECT_EQ(r.term_signal, SIGTERM);
  EXPECT_LT(took, 1500ms);
  EXPECT_GE(took, 300ms);
  EXPECT_TRUE(group_gone(r.pgid, 1s)) << "process group " << r.pgid << " still has members";
  const pid_t grandchild = static_cast<pid_t>(std::stol(std::string(trim(r.out))));
  EXPECT_EQ(::kill(grandchild, 0), -1);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(Process, SigkillAfterGraceWhenSigtermIsIgnored) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  auto o = sh("trap '' TERM; sleep 100 & trap '' TERM; echo ready; while :; do sleep 0.05; done");
  o.timeout = 200ms;
  o.kill_grace = 300ms;
  const auto began = Steady::now();
  const auto r = run_ok(o);
  const auto took = Steady::now() - began;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_GE(took, 500ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_TRUE(group_gone(r.pgid, 1s));
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(Process, CancelFlagTerminates) {
  std::atomic<bool> cancel{false};
  auto o = sh("sleep 100");
  o.cancel = &cancel;
  o.tick = 20ms;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  const auto r = run_ok(o);
  canceller.join();
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.elapsed, 600ms);
}

TEST(Process, LeftoverHoldingThePipesIsKilledAfterTheDrainPeriod) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  auto o = sh("sleep 100 & echo started");
  o.drain_after_exit = 200ms;
  const auto r = run_ok(o);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_LT(r.elapsed, 1s);
  EXPECT_TRUE(group_gone(r.pgid, 1s));
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(Process, CommandNotFoundIsUnavailable) {
  ProcessOptions o;
  o.argv = {"hozo-no-such-command-xyz", "--version"};
  const auto r = run_process(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::unavailable);
  EXPECT_EQ(r.error().message, "hozo-no-such-command-xyz: command not found");
  o.argv = {"/nonexistent/dir/syncoid"};
  const auto abs = run_process(o);
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.error().code, ExitCode::unavailable);
  EXPECT_EQ(abs.error().message, "/nonexistent/dir/syncoid: command not found");
}

TEST(Process, EmptyArgvIsAnError) { EXPECT_FALSE(run_process(ProcessOptions{}).ok()); }

TEST(Process, LargeOutputDoesNotDeadlock) {
  // 10 MB on stdout and 1 MB on stderr at the same time.
  auto o = sh("head -c 1048576 /dev/zero >&2 & head -c 10485760 /dev/zero; wait");
  o.timeout = 10s;
  std::size_t lines = 0;
  o.on_stderr_line = [&](std::string_view) { ++lines; };
  const auto r = run_ok(o);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.size(), 10485760u);
  EXPECT_EQ(r.err.size(), 1048576u);
  EXPECT_EQ(lines, 16u);  // one 1 MiB line delivered in 64 KiB pieces
}

TEST(Process, CaptureLimitTruncates) {
  auto o = sh("head -c 100000 /dev/zero");
  o.capture_limit = 1000;
  const auto r = run_ok(o);
  EXPECT_EQ(r.out.size(), 1000u);
  EXPECT_TRUE(r.out_truncated);
  EXPECT_FALSE(r.err_truncated);
}

TEST(Process, ArgumentsArePassedLiterally) {
  ProcessOptions o;
  o.argv = {"printf", "%s", "$(echo pwned);rm"};
  const auto r = run_ok(o);
  EXPECT_EQ(r.out, "$(echo pwned);rm");
  o.argv = {"printf", "%s|", "a b", "'q'", "*", "`id`", ""};
  EXPECT_EQ(run_ok(o).out, "a b|'q'|*|`id`||");
}

TEST(Process, EnvironmentOverridesAndWorkingDirectory) {
  ::setenv("HOZO_TEST_REMOVE_ME", "present", 1);
  auto o = sh("printf '%s|%s|' \"$HOZO_TEST_VAR\" \"${HOZO_TEST_REMOVE_ME-unset}\"; pwd");
  o.env["HOZO_TEST_VAR"] = "hello world";
  o.env["HOZO_TEST_REMOVE_ME"] = std::nullopt;
  o.working_dir = "/tmp";
  const auto r = run_ok(o);
  ::unsetenv("HOZO_TEST_REMOVE_ME");
  EXPECT_EQ(r.out, "hello world|unset|/tmp\n");
  o.working_dir = "/nonexistent-hozo-dir";
  EXPECT_FALSE(run_process(o).ok());
}

TEST(Process, RelativeCommandResolvesInTheWorkingDirectory) {
  char tmpl[] = "/tmp/hozo-process-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  {
    std::ofstream script(dir / "hello.sh");
    script << "#!/bin/sh\necho hello from \"$(pwd)\"\n";
  }
  std::filesystem::permissions(dir / "hello.sh", std::filesystem::perms::owner_all);
  ProcessOptions o;
  o.argv = {"./hello.sh"};
  o.working_dir = dir;
  const auto r = run_ok(o);
  EXPECT_EQ(r.out, "hello from " + dir.string() + "\n");
  o.argv = {"./missing.sh"};
  const auto missing = run_process(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ExitCode::unavailable);
  std::filesystem::remove_all(dir);
}

TEST(Process, FindInPath) {
  const auto sh_path = find_in_path("sh");
  ASSERT_TRUE(sh_path.has_value());
  EXPECT_EQ(::access(sh_path->c_str(), X_OK), 0);
  EXPECT_EQ(find_in_path("hozo-no-such-command-xyz"), std::nullopt);
  EXPECT_EQ(find_in_path(""), std::nullopt);
  EXPECT_EQ(find_in_path("sh", std::string_view("/nonexistent:/also-not")), std::nullopt);
  EXPECT_EQ(find_in_path("/bin/sh"), std::optional<std::filesystem::path>("/bin/sh"));
  EXPECT_EQ(find_in_path("passwd", std::string_view("/etc")), std::nullopt);  // not executable
}

TEST(ProcessLocalRunner, MapsOutcomes) {
  LocalCommandRunner runner;
  EXPECT_EQ(runner.where(), "local");
  const auto ok = runner.run({"sh", "-c", "echo hi; echo oops >&2; exit 4"}, 5s);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->exit_status, 4);
  EXPECT_EQ(ok->out, "hi\n");
  EXPECT_EQ(ok->err, "oops\n");

  const auto missing = runner.run({"hozo-no-such-command-xyz"}, 5s);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ExitCode::unavailable);

  const auto signalled = runner.run({"sh", "-c", "kill -KILL $$"}, 5s);
  ASSERT_FALSE(signalled.ok());
  EXPECT_NE(signalled.error().message.find("signal 9"), std::string::npos) << signalled.error().message;

  LocalCommandRunner quick(nullptr, 100ms);
  const auto timed_out = quick.run({"sleep", "100"}, 1s);
  ASSERT_FALSE(timed_out.ok());
  EXPECT_NE(timed_out.error().message.find("timed out after 1"), std::string::npos) << timed_out.error().message;

  std::atomic<bool> cancel{true};
  LocalCommandRunner cancelled(&cancel);
  const auto c = cancelled.run({"sleep", "100"}, 5s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ExitCode::interrupted);
}

TEST(ProcessWatch, TagIsExportedAndSpawnsAreReported) {
  SpawnWatch watch;
  watch.tag = "20261124T080000Z-42";
  std::vector<int> pgids;
  watch.on_spawn = [&](int pgid) { pgids.push_back(pgid); };
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "echo \"$HOZO_RUN_ID\""};
  {
    ScopedSpawnWatch guard(watch);
    auto r = run_process(o);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->out, "20261124T080000Z-42\n");
    ASSERT_EQ(pgids.size(), 1U);
    EXPECT_EQ(pgids[0], r->pgid);
  }
  auto r = run_process(o);  // no watch: no tag, no report
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "\n");
  EXPECT_EQ(pgids.size(), 1U);
}

TEST(ProcessWatch, ChildDiesWithItsParent) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {  // plays hozo: starts a long child, reports its pid, then dies hard
    ::close(fds[0]);
    SpawnWatch watch;
    watch.on_spawn = [&](int pgid) {
      (void)!::write(fds[1], &pgid, sizeof pgid);
      ::_exit(0);
    };
    ScopedSpawnWatch guard(watch);
    ProcessOptions o;
    o.argv = {"sleep", "30"};
    (void)run_process(o);
    ::_exit(1);
  }
  ::close(fds[1]);
  int child = 0;
  ASSERT_EQ(::read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(helper, &status, 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    const auto stat = hozo::read_file(fmt::format("/proc/{}/stat", child));
    gone = !stat || stat->find(") Z") != std::string::npos;
    if (!gone) ::usleep(10000);
  }
  EXPECT_TRUE(gone) << "sleep " << child << " outlived its parent (PR_SET_PDEATHSIG)";
}
