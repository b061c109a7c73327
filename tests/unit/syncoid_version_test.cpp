// syncoid releases 2.1.0 (Debian 12), 2.2.0 (Debian 13), 2.3.0 (unstable): version detection,
// per-release option validation and exit re-reading. The option sets and exit behaviour were read
// from the three releases' sources (tests/syncoid-versions.sh unpacks them).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hozo/process.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/syncoid_version.hpp"
#include "test_support.hpp"

using namespace hozo;
using namespace std::chrono_literals;

namespace {

Job base_job() {
  Job job;
  job.name = "nightly";
  job.target_host = "backup-box.lan";
  job.ssh_user = "root";
  job.datasets = {{"tank/data", "backup/data", false}};
  return job;
}

const DatasetPair kPair{"tank/data", "backup/data", false};

Result<std::vector<std::string>> build(const Job& job, const SyncoidVersion& v) {
  return build_syncoid_argv(job, kPair, syncoid_trust_for(job, "/k/id", "/k/known_hosts"), v);
}

bool has(const std::vector<std::string>& argv, std::string_view a) {
  return std::find(argv.begin(), argv.end(), a) != argv.end();
}

TEST(SyncoidVersion, ParsesVersionOutput) {
  // What each release prints for --version (Getopt::Long auto_version).
  const auto v21 = parse_syncoid_version(
      "/usr/sbin/syncoid version 2.1.0\n(Getopt::Long::GetOptions version 2.52; Perl version 5.36.0)\n");
  ASSERT_TRUE(v21);
  EXPECT_EQ(*v21, kSyncoid210);
  const auto v23 = parse_syncoid_version("/var/cache/x/usr/sbin/syncoid version 2.3.0\n(Getopt::Long::GetOptions version 2.57)");
  ASSERT_TRUE(v23);
  EXPECT_EQ(v23->str(), "2.3.0");
  EXPECT_EQ(parse_syncoid_version("syncoid version 2.2")->str(), "2.2.0");
  EXPECT_FALSE(parse_syncoid_version(""));
  EXPECT_FALSE(parse_syncoid_version("sh: 0: Illegal option --"));
  EXPECT_FALSE(parse_syncoid_version("version x.y"));
  EXPECT_LT(kSyncoid210, kSyncoid220);
  EXPECT_LT(kSyncoid220, kSyncoid230);
  EXPECT_LT((SyncoidVersion{2, 1, 9}), kSyncoid220);
}

TEST(SyncoidVersion, DetectRunsVersionOnceAndCaches) {
  hozo::test::TempDir dir;
  const auto script = dir.path() / "syncoid";
  const auto counter = dir.path() / "count";
  {
    std::ofstream f(script);
    f << "#!/bin/sh\necho x >> '" << counter.string() << "'\necho \"$0 version 2.2.0\"\n";
  }
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto v = detect_syncoid_version(script);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, kSyncoid220);
  auto again = detect_syncoid_version(script);
  ASSERT_TRUE(again.ok());
  std::ifstream in(counter);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "x\n") << "syncoid --version ran more than once";

  const auto silent = dir.path() / "silent";
  {
    std::ofstream f(silent);
    f << "#!/bin/sh\necho nothing here\nexit 2\n";
  }
  std::filesystem::permissions(silent, std::filesystem::perms::owner_all);
  auto none = detect_syncoid_version(silent);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("printed no version"), std::string::npos) << none.error().message;
}

TEST(SyncoidVersion, ReadFromThePerlSourceWithoutRunningIt) {
  EXPECT_EQ(parse_syncoid_source_version("#!/usr/bin/perl\n\n# comment\nuse strict;\n$::VERSION = '2.1.0';\n")->str(), "2.1.0");
  EXPECT_EQ(parse_syncoid_source_version("#! /usr/bin/env perl\n$::VERSION = '2.3.0';\n")->str(), "2.3.0");
  EXPECT_FALSE(parse_syncoid_source_version("#!/bin/sh\n$::VERSION = '2.1.0';\n"));  // not perl: run it
  EXPECT_FALSE(parse_syncoid_source_version("#!/usr/bin/perl\nmy $v = 2;\n"));
  EXPECT_FALSE(parse_syncoid_source_version("#!/usr/bin/perl\n$::VERSION = '2.1.0; system(1)';\n"));
  EXPECT_FALSE(parse_syncoid_source_version(""));

  hozo::test::TempDir dir;
  const auto script = dir.path() / "syncoid";
  const auto counter = dir.path() / "ran";
  {
    // A perl script that would record being run: the version must come from its text.
    std::ofstream f(script);
    f << "#!/usr/bin/perl\n$::VERSION = '2.2.0';\nopen(my $f, '>>', '" << counter.string()
      << "'); print $f \"x\\n\"; print \"$0 version 9.9.9\\n\";\n";
  }
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto v = detect_syncoid_version(script);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, kSyncoid220);
  EXPECT_FALSE(std::filesystem::exists(counter)) << "syncoid was run to learn its version";
}

TEST(SyncoidVersion, StartSpacingOnlyFor21) {
  // 2.1.0: /tmp/syncoid-$rhost-<time()>; 2.2.0 adds int(rand(10000)); 2.3.0 adds $$ too.
  EXPECT_TRUE(syncoid_needs_start_spacing(kSyncoid210));
  EXPECT_TRUE(syncoid_needs_start_spacing(SyncoidVersion{2, 1, 9}));
  EXPECT_FALSE(syncoid_needs_start_spacing(kSyncoid220));
  EXPECT_FALSE(syncoid_needs_start_spacing(kSyncoid230));
}

TEST(SyncoidVersion, ExtraArgsPerRelease) {
  Job job = base_job();
  struct Case {
    const char* arg;
    bool v21, v22, v23;
  };
  const Case cases[] = {
      {"--use-hold", false, true, true},
      {"--delete-target-snapshots", false, true, true},
      {"--preserve-properties", false, true, true},
      {"--sshconfig=/etc/hozo/ssh_config", false, true, true},
      {"--no-clone-rollback", true, false, false},
      {"--include-snaps=^autosnap_.*_daily$", false, false, true},
      {"--exclude-snaps=_hourly$", false, false, true},
      {"--no-rollback", true, true, true},
      {"--preserve-recordsize", true, true, true},
  };
  for (const auto& c : cases) {
    job.syncoid.extra_args = {c.arg};
    EXPECT_EQ(build(job, kSyncoid210).ok(), c.v21) << c.arg << " on 2.1.0";
    EXPECT_EQ(build(job, kSyncoid220).ok(), c.v22) << c.arg << " on 2.2.0";
    EXPECT_EQ(build(job, kSyncoid230).ok(), c.v23) << c.arg << " on 2.3.0";
  }
  job.syncoid.extra_args = {"--use-hold"};
  const auto too_old = build(job, kSyncoid210);
  ASSERT_FALSE(too_old.ok());
  EXPECT_NE(too_old.error().message.find("needs syncoid 2.2.0 or later; the installed syncoid is 2.1.0"),
            std::string::npos)
      << too_old.error().message;
  job.syncoid.extra_args = {"--no-clone-rollback"};
  const auto removed = build(job, kSyncoid220);
  ASSERT_FALSE(removed.ok());
  EXPECT_NE(removed.error().message.find("removed in syncoid 2.2.0"), std::string::npos) << removed.error().message;
  // Still hozo's: trust, mapped keys, unsafe ones, in every release.
  for (const char* arg : {"--sshconfig", "--sshconfig=relative/file", "--exclude-datasets=x",
                          "--insecure-direct-connection=10.0.0.2:9000", "--include-snaps="}) {
    job.syncoid.extra_args = {arg};
    EXPECT_FALSE(build(job, kSyncoid230).ok()) << arg;
  }
  job.syncoid.extra_args = {"--exclude-datasets=x"};
  EXPECT_NE(build(job, kSyncoid230).error().message.find("syncoid.exclude"), std::string::npos);
  job.syncoid.extra_args = {"--insecure-direct-connection=10.0.0.2:9000"};
  EXPECT_NE(build(job, kSyncoid220).error().message.find("unencrypted"), std::string::npos);
}

TEST(SyncoidVersion, ExcludeBecomesExcludeDatasetsFrom23) {
  Job job = base_job();
  job.syncoid.exclude = {"tmp$"};
  for (const auto& v : {kSyncoid210, kSyncoid220}) {
    auto argv = build(job, v);
    ASSERT_TRUE(argv.ok());
    EXPECT_TRUE(has(*argv, "--exclude=tmp$")) << v.str();
  }
  auto argv = build(job, kSyncoid230);
  ASSERT_TRUE(argv.ok());
  EXPECT_TRUE(has(*argv, "--exclude-datasets=tmp$"));
  EXPECT_FALSE(has(*argv, "--exclude=tmp$")) << "2.3.0 warns on every run for --exclude";
  // The restore (pull) direction too.
  auto pull = build_syncoid_pull_argv(job, "backup/data", "tank/data-restore", syncoid_trust_for(job, "/k/id", "/k/kh"),
                                      {}, kSyncoid230);
  ASSERT_TRUE(pull.ok());
  EXPECT_TRUE(has(*pull, "--exclude-datasets=tmp$"));
}

TEST(SyncoidVersion, SendOptionsAllowlistPerRelease) {
  Job job = base_job();
  job.syncoid.sendoptions = "D";  // dropped from 2.3.0's allowlist
  EXPECT_TRUE(build(job, kSyncoid210).ok());
  EXPECT_TRUE(build(job, kSyncoid220).ok());
  const auto d23 = build(job, kSyncoid230);
  ASSERT_FALSE(d23.ok());
  EXPECT_NE(d23.error().message.find("2.3.0"), std::string::npos) << d23.error().message;
  job.syncoid.sendoptions = "w V b";  // 2.3.0 adds V, X, b, s
  EXPECT_FALSE(build(job, kSyncoid210).ok());
  EXPECT_TRUE(build(job, kSyncoid230).ok());
  job.syncoid.sendoptions = "w X tank/data/tmp";  // X takes a value in 2.3.0
  EXPECT_TRUE(build(job, kSyncoid230).ok());
  job.syncoid.sendoptions = "wX";
  EXPECT_FALSE(build(job, kSyncoid230).ok());
}

TEST(SyncoidVersion, CompressPerRelease) {
  Job job = base_job();
  job.syncoid.compress = "zstdmt-fast";
  EXPECT_FALSE(build(job, kSyncoid210).ok());
  EXPECT_FALSE(build(job, kSyncoid220).ok());
  EXPECT_TRUE(build(job, kSyncoid230).ok());
  job.syncoid.compress = "lz4";
  EXPECT_TRUE(build(job, kSyncoid210).ok());
}

TEST(SyncoidVersion, MissingSourceExitPerRelease) {
  // 2.1.0: print "WARN Skipping dataset (dataset no longer exists): $sourcefs...\n"; exit 0.
  const std::string out21 = "WARN Skipping dataset (dataset no longer exists): tank/data...\n";
  EXPECT_EQ(syncoid_effective_exit(kSyncoid210, 0, out21, "tank/data"), 2);
  // a child of a recursive source that vanished mid-run stays a skip
  EXPECT_EQ(syncoid_effective_exit(kSyncoid210, 0, "WARN Skipping dataset (dataset no longer exists): tank/data/old...\n",
                                   "tank/data"),
            0);
  // 2.2.0+: the first dataset missing is "ERROR: ..." / "CRITICAL ERROR: ..." and exit 2, as is.
  EXPECT_EQ(syncoid_effective_exit(kSyncoid220, 2, "", "tank/data"), 2);
  EXPECT_EQ(syncoid_effective_exit(kSyncoid220, 0, out21, "tank/data"), 0);
  EXPECT_EQ(syncoid_effective_exit(kSyncoid230, 0, "", "tank/data"), 0);
}

TEST(ToolSearchPath, AppendsMissingSbinDirs) {
  EXPECT_EQ(tool_search_path("/usr/bin:/bin"), "/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
  EXPECT_EQ(tool_search_path("/usr/sbin:/usr/bin"), "/usr/sbin:/usr/bin:/usr/local/sbin:/sbin");
  EXPECT_EQ(tool_search_path("/usr/local/sbin:/usr/sbin:/sbin"), "/usr/local/sbin:/usr/sbin:/sbin");
  EXPECT_EQ(tool_search_path(""), "/usr/local/sbin:/usr/sbin:/sbin");
}

}  // namespace
