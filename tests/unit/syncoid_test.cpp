#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "hozo/syncoid.hpp"
#include "hozo/util/strings.hpp"

using namespace hozo;
using namespace std::chrono_literals;

namespace {

Job base_job() {
  Job job;
  job.name = "nightly";
  job.target_host = "backup-box.lan";
  job.ssh_user = "root";
  job.ssh_port = 2222;
  job.ssh_connect_timeout = 7s;
  job.datasets = {{"tank/data", "backup/data", true}};
  return job;
}

SyncoidSshTrust base_trust(const Job& job) {
  return syncoid_trust_for(job, "/var/lib/hozo/id_ed25519", "/var/lib/hozo/known_hosts");
}

std::vector<std::string> build_ok(const Job& job, const DatasetPair& pair) {
  auto argv = build_syncoid_argv(job, pair, base_trust(job));
  EXPECT_TRUE(argv.ok()) << (argv.ok() ? "" : argv.error().message);
  return argv.ok() ? *argv : std::vector<std::string>{};
}

bool contains(const std::vector<std::string>& argv, std::string_view element) {
  return std::find(argv.begin(), argv.end(), element) != argv.end();
}

std::size_t count_prefix(const std::vector<std::string>& argv, std::string_view prefix) {
  return static_cast<std::size_t>(
      std::count_if(argv.begin(), argv.end(), [&](const std::string& a) { return a.starts_with(prefix); }));
}

std::string build_error(const Job& job, const DatasetPair& pair) {
  auto argv = build_syncoid_argv(job, pair, base_trust(job));
  EXPECT_FALSE(argv.ok()) << describe_command(argv.ok() ? *argv : std::vector<std::string>{});
  return argv.ok() ? std::string() : argv.error().message;
}

TEST(SyncoidArgv, MinimalJob) {
  Job job = base_job();
  const auto argv = build_ok(job, {"tank/data", "backup/data", false});
  const std::vector<std::string> expected{
      "syncoid",
      "--sshkey=/var/lib/hozo/id_ed25519",
      "--sshport=2222",
      "--sshoption=UserKnownHostsFile=/var/lib/hozo/known_hosts",
      "--sshoption=GlobalKnownHostsFile=/dev/null",
      "--sshoption=StrictHostKeyChecking=yes",
      "--sshoption=BatchMode=yes",
      "--sshoption=IdentitiesOnly=yes",
      "--sshoption=ConnectTimeout=7",
      // ServerAliveInterval follows a short ssh_connect_timeout (at most 15 s): a cut link is noticed in 4x that.
      "--sshoption=ServerAliveInterval=7",
      "--sshoption=ServerAliveCountMax=4",
      // pv's byte counts (transfer.hpp): pv draws nothing into a pipe with its default options.
      "--pv-options=-n -b -i 1",
      "tank/data",
      "root@backup-box.lan:backup/data"};
  EXPECT_EQ(argv, expected);
}

TEST(SyncoidArgv, EveryOption) {
  Job job = base_job();
  job.no_privilege_elevation = true;
  job.ssh_user = "zfsbackup";
  job.syncoid.path = "/usr/sbin/syncoid";
  job.syncoid.compress = "zstd-fast";
  job.syncoid.source_bwlimit = "10M";
  job.syncoid.target_bwlimit = "1.5G";
  job.syncoid.identifier = "offsite:1";
  job.syncoid.exclude = {"tank/data/tmp", "cache$"};
  job.syncoid.create_bookmark = true;
  job.syncoid.no_sync_snap = true;
  job.syncoid.sendoptions = "Lce w";
  job.syncoid.recvoptions = "u o compression=lz4 x recordsize";
  job.syncoid.extra_args = {"--no-clone-handling", "--mbuffer-size=64M", "--pv-options=-p -t"};
  const auto argv = build_ok(job, {"tank/data", "backup/data", true});
  ASSERT_FALSE(argv.empty());
  EXPECT_EQ(argv.front(), "/usr/sbin/syncoid");
  for (const char* element :
       {"--recursive", "--no-privilege-elevation", "--compress=zstd-fast", "--source-bwlimit=10M",
        "--target-bwlimit=1.5G", "--identifier=offsite:1", "--exclude=tank/data/tmp", "--exclude=cache$",
        "--create-bookmark", "--no-sync-snap", "--sendoptions=Lce w",
        "--recvoptions=u o compression=lz4 x recordsize", "--no-clone-handling", "--mbuffer-size=64M",
        "--pv-options=-p -t"}) {
    EXPECT_TRUE(contains(argv, element)) << element << " in " << describe_command(argv);
  }
  EXPECT_EQ(count_prefix(argv, "--exclude="), 2u);
  EXPECT_EQ(count_prefix(argv, "--pv-options="), 1u);  // the user's pv options replace hozo's
  // extra_args come after the mapped options, SOURCE and USER@HOST:TARGET last.
  ASSERT_GE(argv.size(), 3u);
  EXPECT_EQ(argv[argv.size() - 3], "--pv-options=-p -t");
  EXPECT_EQ(argv[argv.size() - 2], "tank/data");
  EXPECT_EQ(argv.back(), "zfsbackup@backup-box.lan:backup/data");
}

TEST(SyncoidArgv, TrustOptionsAlwaysPresentOncePerFlag) {
  Job job = base_job();
  job.host_key_policy = HostKeyPolicy::accept_new;  // libssh already pinned; syncoid stays strict
  const auto argv = build_ok(job, {"tank/data", "backup/data", true});
  EXPECT_EQ(count_prefix(argv, "--sshkey="), 1u);
  EXPECT_EQ(count_prefix(argv, "--sshport="), 1u);
  EXPECT_EQ(count_prefix(argv, "--sshoption=UserKnownHostsFile="), 1u);
  EXPECT_TRUE(contains(argv, "--sshoption=StrictHostKeyChecking=yes"));
  for (const auto& a : argv) {
    if (!a.starts_with("--sshoption=")) continue;
    const auto value = std::string_view(a).substr(12);
    // exactly one Key=Value per flag, no "-o", no spaces
    EXPECT_EQ(std::count(value.begin(), value.end(), '='), 1) << a;
    EXPECT_EQ(value.find(' '), std::string_view::npos) << a;
    EXPECT_FALSE(value.starts_with("-")) << a;
  }
  EXPECT_FALSE(contains(argv, "--sshoption=StrictHostKeyChecking=accept-new"));
  EXPECT_FALSE(contains(argv, "--sshoption=StrictHostKeyChecking=no"));
}

TEST(SyncoidArgv, NeverEmitsOptionsMissingFrom210) {
  Job job = base_job();
  job.syncoid.compress = "lz4";
  job.syncoid.no_sync_snap = true;
  job.syncoid.create_bookmark = true;
  const auto argv = build_ok(job, {"tank/data", "backup/data", true});
  for (const auto& a : argv) {
    for (const char* forbidden : {"--use-hold", "--sshconfig", "--preserve-properties", "--no-stream", "-o"}) {
      EXPECT_FALSE(a.starts_with(forbidden)) << a;
    }
  }
  for (const char* extra : {"--use-hold", "--sshconfig=/etc/ssh/x", "--preserve-properties",
                            "--delete-target-snapshots", "--include-snaps=x", "--no-such-thing"}) {
    job.syncoid.extra_args = {extra};
    EXPECT_NE(build_error(job, {"tank/data", "backup/data", true}).find("2.1.0"), std::string::npos) << extra;
  }
}

TEST(SyncoidArgv, ExtraArgsCannotOverrideTrustOrConfig) {
  Job job = base_job();
  for (const char* extra : {"--sshoption=StrictHostKeyChecking=no", "-o", "--sshkey=/tmp/k", "--sshport=22",
                            "--sshopt=StrictHostKeyChecking=no", "--ssh", "-sshoption=X=y"}) {
    job.syncoid.extra_args = {extra};
    EXPECT_NE(build_error(job, {"tank/data", "backup/data", true}).find("pinned"), std::string::npos) << extra;
  }
  for (const char* extra : {"--compress=gzip", "--recursive", "-r", "--exclude=x", "--identifier=x"}) {
    job.syncoid.extra_args = {extra};
    EXPECT_NE(build_error(job, {"tank/data", "backup/data", true}).find("config key"), std::string::npos) << extra;
  }
  for (const char* extra : {"--help", "--version"}) {
    job.syncoid.extra_args = {extra};
    EXPECT_FALSE(build_error(job, {"tank/data", "backup/data", true}).empty()) << extra;
  }
}

TEST(SyncoidArgv, InjectionAttemptsRejected) {
  Job job = base_job();
  for (const char* bad : {"pool/a;reboot", "$(x)", "tank/$(x)", "-rf", "tank/`id`", "tank/a b", "tank/a\nb"}) {
    EXPECT_NE(build_error(job, {bad, "backup/data", true}).find("source"), std::string::npos) << printable(bad);
    EXPECT_NE(build_error(job, {"tank/data", bad, true}).find("target"), std::string::npos) << printable(bad);
  }
  for (const char* extra : {"--debug\n", "--pv-options=-p\n-t", "--pv-options=-p;reboot", "--mbuffer-size=$(x)",
                            "--sshcipher=`id`", "reboot", ""}) {
    job.syncoid.extra_args = {extra};
    EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok())
        << printable(extra);
  }
  job.syncoid.extra_args = {std::string("--debug\0--x", 11)};
  EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok());
  job.syncoid.extra_args.clear();

  job.syncoid.exclude = {"a\nb"};
  EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok());
  job.syncoid.exclude.clear();
  for (const char* bad : {"1M;reboot", "$(x)", "fast", "-1"}) {
    job.syncoid.source_bwlimit = bad;
    EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok()) << bad;
  }
  job.syncoid.source_bwlimit.clear();
  for (const char* bad : {"lz4;reboot", "brotli"}) {
    job.syncoid.compress = bad;
    EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok()) << bad;
  }
  job.syncoid.compress.clear();
  job.syncoid.identifier = "a b";
  EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok());
  job.syncoid.identifier.clear();
  for (const char* bad : {"o compression=lz4;reboot", "o $(x)", "oL", "o", "q", "L  c", "R"}) {
    job.syncoid.sendoptions = bad;
    EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok()) << bad;
  }
  job.syncoid.sendoptions = "R";  // fine without --recursive
  EXPECT_TRUE(build_syncoid_argv(job, {"tank/data", "backup/data", false}, base_trust(job)).ok());
  job.syncoid.sendoptions.clear();

  for (const char* host : {"box;reboot", "-oProxyCommand=x", "box name", "fe80::1", "", "user@box"}) {
    job.target_host = host;
    EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok()) << host;
  }
  job.target_host = "192.0.2.10";
  EXPECT_TRUE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok());
  for (const char* user : {"-root", "ro ot", "a;b", "", "root@x"}) {
    job.ssh_user = user;
    EXPECT_FALSE(build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job)).ok()) << user;
  }
}

TEST(SyncoidArgv, TrustIsValidated) {
  const Job job = base_job();
  const DatasetPair pair{"tank/data", "backup/data", true};
  auto trust = base_trust(job);
  trust.key_path = "";
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust.key_path = "relative/key";
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust.key_path = "/path with space/key";
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust.key_path = "/k;reboot";
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust = base_trust(job);
  trust.known_hosts = "";
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust = base_trust(job);
  trust.port = 0;
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust.port = 70000;
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
  trust = base_trust(job);
  trust.connect_timeout = 0s;
  EXPECT_FALSE(build_syncoid_argv(job, pair, trust).ok());
}

TEST(SyncoidArgv, CreateBookmarkNeedsNoSyncSnap) {
  Job job = base_job();
  job.syncoid.create_bookmark = true;
  EXPECT_NE(build_error(job, {"tank/data", "backup/data", true}).find("no_sync_snap"), std::string::npos);
}

TEST(SyncoidArgv, ErrorsAreConfigErrors) {
  Job job = base_job();
  job.syncoid.extra_args = {"--use-hold"};
  const auto r = build_syncoid_argv(job, {"tank/data", "backup/data", true}, base_trust(job));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::config);
}

TEST(SyncoidArgv, DescribeCommandIsCopyPasteable) {
  Job job = base_job();
  job.syncoid.extra_args = {"--pv-options=-p -t"};
  const auto argv = build_ok(job, {"tank/data", "backup/data", true});
  const auto line = describe_command(argv);
  EXPECT_TRUE(line.starts_with("syncoid --sshkey=/var/lib/hozo/id_ed25519 --sshport=2222 ")) << line;
  EXPECT_NE(line.find("'--pv-options=-p -t'"), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with(" tank/data root@backup-box.lan:backup/data")) << line;
  EXPECT_EQ(describe_command({"a b", "it's"}), "'a b' 'it'\\''s'");
}

// ---------------------------------------------------------------------------------------------
// Classification and retries
// ---------------------------------------------------------------------------------------------

TEST(SyncoidClassify, ExitCodes) {
  EXPECT_EQ(classify_syncoid_exit(0, "").status, SyncoidStatus::ok);
  EXPECT_EQ(classify_syncoid_exit(1, "").status, SyncoidStatus::transient);
  EXPECT_EQ(classify_syncoid_exit(2, "").status, SyncoidStatus::critical);
  EXPECT_EQ(classify_syncoid_exit(255, "").status, SyncoidStatus::critical);
  EXPECT_EQ(classify_syncoid_exit(127, "").status, SyncoidStatus::usage);
  EXPECT_EQ(classify_syncoid_exit(2, "").exit_code, 2);
  EXPECT_EQ(classify_syncoid_exit(0, "connection reset").cause, SyncoidCause::unknown);
}

TEST(SyncoidClassify, Causes) {
  const auto busy = classify_syncoid_exit(
      1, "Cannot sync now: backup/data is already target of a zfs receive process.\n");
  EXPECT_EQ(busy.cause, SyncoidCause::transient);
  EXPECT_EQ(busy.matched, "is already target of a zfs receive process");
  EXPECT_NE(busy.reason.find("exit 1"), std::string::npos);

  for (const char* tail : {"cannot receive: dataset is busy", "Connection reset by peer",
                           "ssh: connect to host box port 22: Connection timed out", "Write failed: Broken pipe",
                           "Connection closed by 192.0.2.10 port 22"}) {
    EXPECT_EQ(classify_syncoid_exit(2, tail).cause, SyncoidCause::transient) << tail;
  }
  for (const char* tail :
       {"cannot receive incremental stream: destination backup/data has been modified\nsince most recent snapshot",
        "Host key verification failed.", "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @",
        "Permission denied (publickey).", "cannot receive: out of space"}) {
    EXPECT_EQ(classify_syncoid_exit(2, tail).cause, SyncoidCause::permanent) << tail;
  }
  // A permanent cause wins even when a transient phrase is also present.
  const auto both = classify_syncoid_exit(2, "broken pipe\ndestination backup/data has been modified");
  EXPECT_EQ(both.cause, SyncoidCause::permanent);
  EXPECT_EQ(classify_syncoid_exit(2, "CRITICAL ERROR: something odd").cause, SyncoidCause::unknown);
}

TEST(SyncoidClassify, RetryDecisions) {
  const auto ok = classify_syncoid_exit(0, "");
  const auto partial = classify_syncoid_exit(1, "");
  const auto partial_modified = classify_syncoid_exit(1, "destination backup/data has been modified");
  const auto critical = classify_syncoid_exit(2, "CRITICAL ERROR: zfs send failed");
  const auto critical_reset = classify_syncoid_exit(2, "Connection reset by peer");
  const auto critical_modified = classify_syncoid_exit(2, "destination has been modified");
  const auto usage = classify_syncoid_exit(127, "Unknown option: use-hold");

  EXPECT_FALSE(should_retry(ok, 1, 3));
  EXPECT_TRUE(should_retry(partial, 1, 3));
  EXPECT_FALSE(should_retry(partial_modified, 1, 3));
  EXPECT_FALSE(should_retry(critical, 1, 3));
  EXPECT_TRUE(should_retry(critical_reset, 1, 3));
  EXPECT_FALSE(should_retry(critical_modified, 1, 3));
  EXPECT_FALSE(should_retry(usage, 1, 3));

  // attempt counts attempts made so far: with retries=3 there are at most 4 attempts.
  EXPECT_TRUE(should_retry(partial, 3, 3));
  EXPECT_FALSE(should_retry(partial, 4, 3));
  EXPECT_FALSE(should_retry(partial, 1, 0));
}

}  // namespace

// ------------------------------------------------------------------ pull direction (hozo restore)

TEST(SyncoidPullArgv, SameTrustNoSyncSnapRemoteFirst) {
  Job job = base_job();
  job.no_privilege_elevation = true;
  const auto push = build_ok(job, {"tank/data", "backup/data", true});
  SyncoidPullOptions pull;
  pull.recursive = true;
  auto argv = build_syncoid_pull_argv(job, "backup/data", "tank/data-restore-20261201-000000", base_trust(job), pull);
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  // Everything up to --no-privilege-elevation (program, ssh trust, --recursive) is the push's.
  const auto npe = std::find(push.begin(), push.end(), "--no-privilege-elevation");
  ASSERT_NE(npe, push.end());
  const auto n = static_cast<std::size_t>(npe - push.begin()) + 1;
  ASSERT_GE(argv->size(), n);
  EXPECT_TRUE(std::equal(push.begin(), push.begin() + static_cast<std::ptrdiff_t>(n), argv->begin()));
  EXPECT_TRUE(contains(*argv, "--no-sync-snap"));
  EXPECT_FALSE(contains(*argv, "--force-delete"));
  EXPECT_EQ((*argv)[argv->size() - 2], "root@backup-box.lan:backup/data");
  EXPECT_EQ(argv->back(), "tank/data-restore-20261201-000000");
}

TEST(SyncoidPullArgv, LeavesOutBackupSideSettingsAndAddsForceDelete) {
  Job job = base_job();
  job.syncoid.no_sync_snap = true;
  job.syncoid.create_bookmark = true;
  job.syncoid.identifier = "offsite";
  job.syncoid.source_bwlimit = "10M";
  job.syncoid.target_bwlimit = "20M";
  job.syncoid.recvoptions = "u";
  job.syncoid.sendoptions = "w";
  job.syncoid.compress = "zstd-fast";
  job.syncoid.exclude = {"tmp$"};
  job.syncoid.extra_args = {"--no-resume"};
  SyncoidPullOptions pull;
  pull.force_delete = true;
  auto argv = build_syncoid_pull_argv(job, "backup/data", "tank/data", base_trust(job), pull);
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(count_prefix(*argv, "--no-sync-snap"), 1u);
  EXPECT_TRUE(contains(*argv, "--force-delete"));
  EXPECT_FALSE(contains(*argv, "--recursive"));
  for (const auto* absent : {"--create-bookmark", "--identifier", "--source-bwlimit", "--target-bwlimit", "--recvoptions"}) {
    EXPECT_EQ(count_prefix(*argv, absent), 0u) << absent;
  }
  for (const auto* present : {"--sendoptions=w", "--compress=zstd-fast", "--exclude=tmp$", "--no-resume"}) {
    EXPECT_TRUE(contains(*argv, present)) << present;
  }
  // The push of the same job still has all of them (its argv is pinned above).
  const auto push = build_ok(job, {"tank/data", "backup/data", false});
  EXPECT_TRUE(contains(push, "--identifier=offsite"));
  EXPECT_TRUE(contains(push, "--recvoptions=u"));
}

TEST(SyncoidPullArgv, BadNamesAreUsageErrors) {
  const Job job = base_job();
  for (const auto* bad : {"x;touch /tmp/pwned", "tank/a b", "-tank/x", "tank/x@s", ""}) {
    auto local = build_syncoid_pull_argv(job, "backup/data", bad, base_trust(job), {});
    ASSERT_FALSE(local.ok()) << bad;
    EXPECT_EQ(local.error().code, ExitCode::usage) << bad;
    auto remote = build_syncoid_pull_argv(job, bad, "tank/restore", base_trust(job), {});
    ASSERT_FALSE(remote.ok()) << bad;
  }
}
