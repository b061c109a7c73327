#include <gtest/gtest.h>

#include <thread>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "hozo/command.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"

using namespace hozo;
using namespace std::chrono_literals;

namespace {

std::string rows(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (const auto l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dataset names
// ---------------------------------------------------------------------------------------------

TEST(ZfsNames, AcceptsOrdinaryNames) {
  for (const char* name : {"tank", "tank/data", "tank/a/b/c", "Pool_1/x.y:z-w", "t/..a", "t/a.."}) {
    EXPECT_TRUE(validate_dataset_name(name).ok()) << name;
  }
  EXPECT_TRUE(validate_dataset_name("p/" + std::string(253, 'a')).ok());
}

TEST(ZfsNames, RejectsBadNames) {
  for (const char* name :
       {"", "-rf", "/tank", "tank/", "tank//a", "tank/./a", "tank/..", "tank/a@snap", "tank/a#bm", "1tank/a",
        "_tank", "tank/a b", "tank/a;reboot", "pool/a;reboot", "tank/$(x)", "tank/`id`", "tank/'q'", "tank/\"q\"",
        "tank/a\nb", "tank/a|b", "tank/a&b", "tank/a>b", "tank/*", "tank/a\\b"}) {
    const auto r = validate_dataset_name(name);
    EXPECT_FALSE(r.ok()) << printable(name);
  }
  EXPECT_FALSE(validate_dataset_name(std::string("tank/a\0b", 8)).ok());
  EXPECT_FALSE(validate_dataset_name("p/" + std::string(254, 'a')).ok());
  EXPECT_NE(validate_dataset_name("tank/a;reboot").error().message.find("tank/a;reboot"), std::string::npos);
}

TEST(ZfsNames, PoolOf) {
  EXPECT_EQ(pool_of("tank"), "tank");
  EXPECT_EQ(pool_of("tank/a/b"), "tank");
  EXPECT_EQ(pool_of("tank@s"), "tank");
  EXPECT_EQ(pool_of("tank/a@s"), "tank");
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

TEST(ZfsParse, ListingArgv) {
  EXPECT_EQ(join(snapshot_listing_argv("tank/data", Recursive::yes), " "),
            "zfs get -H -p -o name,property,value -r guid,createtxg tank/data");
  EXPECT_EQ(join(snapshot_listing_argv("tank/data", Recursive::no), " "),
            "zfs get -H -p -o name,property,value -d 1 guid,createtxg tank/data");
}

TEST(ZfsParse, NormalListing) {
  const auto out = rows({"tank/data\tguid\t111", "tank/data\tcreatetxg\t5", "tank/data@a\tguid\t1001",
                         "tank/data@a\tcreatetxg\t10", "tank/data@b\tguid\t1002", "tank/data@b\tcreatetxg\t20"});
  const auto index = parse_snapshot_listing(out, "tank/data", Recursive::no);
  ASSERT_TRUE(index.ok()) << index.error().message;
  ASSERT_EQ(index->size(), 1u);
  const auto& snaps = index->at("tank/data");
  ASSERT_EQ(snaps.size(), 2u);
  EXPECT_EQ(snaps[0], (Snapshot{"tank/data", "a", 1001, 10}));
  EXPECT_EQ(snaps[1], (Snapshot{"tank/data", "b", 1002, 20}));
  EXPECT_EQ(newest_snapshot(snaps)->name, "b");
  EXPECT_EQ(snaps[1].full_name(), "tank/data@b");
}

TEST(ZfsParse, RecursiveWithChildren) {
  // As zfs-fuse printed it for a real pool (shared createtxg for a recursive snapshot).
  const auto out = rows({"p/a\tguid\t8247113944148733308", "p/a\tcreatetxg\t6", "p/a@s1\tguid\t6211651944686162532",
                         "p/a@s1\tcreatetxg\t13", "p/a@s2\tguid\t7030547332918766003", "p/a@s2\tcreatetxg\t21",
                         "p/a/b\tguid\t9246107271398927560", "p/a/b\tcreatetxg\t8",
                         "p/a/b@s2\tguid\t17056986973546647746", "p/a/b@s2\tcreatetxg\t21",
                         "p/a/b@s3\tguid\t6125348004030823113", "p/a/b@s3\tcreatetxg\t26", "p/a/c\tguid\t5",
                         "p/a/c\tcreatetxg\t30", "p/ab@x\tguid\t1", "p/ab@x\tcreatetxg\t2"});
  const auto index = parse_snapshot_listing(out, "p/a", Recursive::yes);
  ASSERT_TRUE(index.ok()) << index.error().message;
  ASSERT_EQ(index->size(), 3u);  // p/a, p/a/b, p/a/c (empty); p/ab is not a descendant
  EXPECT_EQ(index->at("p/a").size(), 2u);
  EXPECT_EQ(newest_snapshot(index->at("p/a"))->guid, 7030547332918766003u);
  ASSERT_EQ(index->at("p/a/b").size(), 2u);
  EXPECT_EQ(newest_snapshot(index->at("p/a/b"))->name, "s3");
  EXPECT_EQ(index->at("p/a/b")[0].guid, 17056986973546647746u);  // > INT64_MAX
  EXPECT_TRUE(index->at("p/a/c").empty());
  EXPECT_EQ(newest_snapshot(index->at("p/a/c")), nullptr);
}

TEST(ZfsParse, DepthOneKeepsOnlyTheDataset) {
  // zfs-fuse's -d 1 also prints the child's own rows; they must not become entries.
  const auto out = rows({"p/a\tguid\t1", "p/a\tcreatetxg\t6", "p/a@s1\tguid\t2", "p/a@s1\tcreatetxg\t13",
                         "p/a/b\tguid\t3", "p/a/b\tcreatetxg\t8"});
  const auto index = parse_snapshot_listing(out, "p/a", Recursive::no);
  ASSERT_TRUE(index.ok()) << index.error().message;
  ASSERT_EQ(index->size(), 1u);
  EXPECT_EQ(index->at("p/a").size(), 1u);
}

TEST(ZfsParse, UnorderedRowsAndProperties) {
  // All guids first, then all createtxgs, in no particular order, CRLF line ends, no final newline.
  const std::string out =
      "t/d@new\tguid\t3\r\nt/d@old\tguid\t1\nt/d@mid\tguid\t2\nt/d@mid\tcreatetxg\t20\nt/d@old\tcreatetxg\t10\n"
      "t/d@new\tcreatetxg\t30";
  const auto index = parse_snapshot_listing(out, "t/d", Recursive::yes);
  ASSERT_TRUE(index.ok()) << index.error().message;
  const auto& snaps = index->at("t/d");
  ASSERT_EQ(snaps.size(), 3u);
  EXPECT_EQ(snaps[0].name, "old");
  EXPECT_EQ(snaps[1].name, "mid");
  EXPECT_EQ(snaps[2].name, "new");
  EXPECT_EQ(snaps[2].guid, 3u);
}

TEST(ZfsParse, BookmarksAreIgnored) {
  const auto out = rows({"t/d\tguid\t1", "t/d\tcreatetxg\t1", "t/d#bm\tguid\t9", "t/d#bm\tcreatetxg\t9",
                         "t/d@s\tguid\t2", "t/d@s\tcreatetxg\t2"});
  const auto index = parse_snapshot_listing(out, "t/d", Recursive::yes);
  ASSERT_TRUE(index.ok()) << index.error().message;
  ASSERT_EQ(index->size(), 1u);
  EXPECT_EQ(index->at("t/d").size(), 1u);
}

TEST(ZfsParse, EmptyOutputMeansNoSnapshots) {
  const auto index = parse_snapshot_listing("", "t/d", Recursive::yes);
  ASSERT_TRUE(index.ok());
  EXPECT_TRUE(index->empty());
  const auto only_dataset = parse_snapshot_listing("t/d\tguid\t1\nt/d\tcreatetxg\t1\n", "t/d", Recursive::yes);
  ASSERT_TRUE(only_dataset.ok());
  ASSERT_EQ(only_dataset->size(), 1u);
  EXPECT_TRUE(only_dataset->at("t/d").empty());
}

void expect_parse_error(const std::string& out, std::string_view must_contain, std::string_view must_contain2 = {}) {
  const auto index = parse_snapshot_listing(out, "t/d", Recursive::yes);
  ASSERT_FALSE(index.ok()) << printable(out);
  EXPECT_NE(index.error().message.find(must_contain), std::string::npos) << index.error().message;
  if (!must_contain2.empty()) {
    EXPECT_NE(index.error().message.find(must_contain2), std::string::npos) << index.error().message;
  }
}

TEST(ZfsParse, MalformedRowsNameLineAndContent) {
  expect_parse_error("t/d@a\tguid\t1\nt/d@a\tcreatetxg\t2\ngarbage here\n", "line 3", "garbage here");
  expect_parse_error("t/d@a\tguid\n", "line 1", "t/d@a\\x09guid");
  expect_parse_error("t/d@a\tguid\t1\textra\n", "line 1");
  expect_parse_error("\tguid\t1\n", "line 1");
  expect_parse_error("t/d@a\tguid\t1\nt/d@a\tcreatetxg\t2\n\nt/d@b\tused\t5\n", "line 4", "unexpected property");
  expect_parse_error("t/d@\tguid\t1\n", "line 1", "malformed snapshot name");
  expect_parse_error("t/d@a\tguid\t12x\n", "line 1", "not a number");
  expect_parse_error("t/d@a\tguid\t\x1b[31m\n", "line 1", "\\x1b");  // control characters are escaped
  expect_parse_error("t/d@a\tguid\t99999999999999999999999\n", "not a number");
  expect_parse_error("t/d@a\tguid\t1\nt/d@a\tguid\t2\n", "line 2", "duplicate guid");
}

TEST(ZfsParse, DashGuidIsAnError) {
  expect_parse_error("t/d@a\tguid\t-\nt/d@a\tcreatetxg\t2\n", "line 1", "guid of t/d@a is not a number");
}

TEST(ZfsParse, MissingPropertyIsAnError) {
  expect_parse_error("t/d@a\tguid\t1\nt/d@b\tguid\t2\nt/d@b\tcreatetxg\t2\n", "t/d@a (line 1) has no createtxg");
  expect_parse_error("t/d@a\tcreatetxg\t1\n", "has no guid");
}

std::string generate_listing(std::size_t count, std::size_t children) {
  std::string out;
  out.reserve(count * 2 * 48);
  for (std::size_t c = 0; c <= children; ++c) {
    const std::string ds = c == 0 ? "tank/data" : fmt::format("tank/data/child{}", c);
    out += fmt::format("{}\tguid\t{}\n{}\tcreatetxg\t{}\n", ds, 42 + c, ds, c + 1);
  }
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t c = i % (children + 1);
    const std::string ds = c == 0 ? "tank/data" : fmt::format("tank/data/child{}", c);
    const std::uint64_t guid = 0x9e3779b97f4a7c15ULL ^ (i * 1000003ULL);
    out += fmt::format("{}@autosnap_2026-01-01_{:08}_hourly\tguid\t{}\n", ds, i, guid);
    out += fmt::format("{}@autosnap_2026-01-01_{:08}_hourly\tcreatetxg\t{}\n", ds, i, 1000 + i);
  }
  return out;
}

TEST(ZfsParse, HundredThousandSnapshots) {
  constexpr std::size_t kCount = 100000;
  const std::string out = generate_listing(kCount, 9);
  const auto start = std::chrono::steady_clock::now();
  const auto index = parse_snapshot_listing(out, "tank/data", Recursive::yes);
  const auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  ASSERT_TRUE(index.ok()) << index.error().message;
  std::size_t total = 0;
  for (const auto& [ds, snaps] : *index) total += snaps.size();
  EXPECT_EQ(total, kCount);
  EXPECT_EQ(index->size(), 10u);
  // Snapshot i belongs to dataset i % 10; the last one (99999) is the newest of child9.
  const Snapshot* newest = newest_snapshot(index->at("tank/data/child9"));
  ASSERT_NE(newest, nullptr);
  EXPECT_EQ(newest->name, fmt::format("autosnap_2026-01-01_{:08}_hourly", kCount - 1));
  EXPECT_EQ(newest->createtxg, 1000 + kCount - 1);
  std::printf("[ bench    ] parsed %zu snapshots (%zu rows, %.1f MiB) in %.1f ms\n", total, 2 * kCount + 20,
              static_cast<double>(out.size()) / (1024.0 * 1024.0), elapsed.count());
}

// ---------------------------------------------------------------------------------------------
// Listing through a CommandRunner
// ---------------------------------------------------------------------------------------------

TEST(ZfsList, ParsesRunnerOutput) {
  FakeCommandRunner runner;
  runner.on("zfs get -H -p -o name,property,value -r guid,createtxg tank/data",
            {0, rows({"tank/data@a\tguid\t7", "tank/data@a\tcreatetxg\t9"}), ""});
  const auto listing = list_snapshots(runner, "tank/data", Recursive::yes, 30s);
  ASSERT_TRUE(listing.ok()) << listing.error().message;
  EXPECT_EQ(listing->status, ListStatus::found);
  EXPECT_EQ(listing->snapshots.at("tank/data").at(0).guid, 7u);
}

TEST(ZfsList, ExistingDatasetWithoutSnapshotsHasAnEmptyEntry) {
  FakeCommandRunner runner;
  runner.on("zfs get -H -p -o name,property,value -d 1 guid,createtxg tank/data", {0, "", ""});
  const auto listing = list_snapshots(runner, "tank/data", Recursive::no, 30s);
  ASSERT_TRUE(listing.ok()) << listing.error().message;
  EXPECT_EQ(listing->status, ListStatus::found);
  ASSERT_EQ(listing->snapshots.count("tank/data"), 1u);
  EXPECT_TRUE(listing->snapshots.at("tank/data").empty());
}

TEST(ZfsList, MissingDatasetIsADistinctOutcome) {
  FakeCommandRunner runner;
  runner.on("zfs get -H -p -o name,property,value -r guid,createtxg backup/data",
            {1, "", "cannot open 'backup/data': dataset does not exist\n"});
  const auto listing = list_snapshots(runner, "backup/data", Recursive::yes, 30s);
  ASSERT_TRUE(listing.ok()) << listing.error().message;
  EXPECT_EQ(listing->status, ListStatus::missing);
  EXPECT_TRUE(listing->snapshots.empty());
}

TEST(ZfsList, OtherFailuresAreErrors) {
  FakeCommandRunner runner;
  runner.on("zfs get -H -p -o name,property,value -r guid,createtxg tank/data",
            {2, "", "internal error: out of memory\n"});
  const auto listing = list_snapshots(runner, "tank/data", Recursive::yes, 30s);
  ASSERT_FALSE(listing.ok());
  EXPECT_NE(listing.error().message.find("exit 2"), std::string::npos) << listing.error().message;
  EXPECT_NE(listing.error().message.find("out of memory"), std::string::npos);
  EXPECT_NE(listing.error().message.find("fake"), std::string::npos);  // where()

  FakeCommandRunner broken;  // no canned answer: the runner itself returns an Error
  const auto failed = list_snapshots(broken, "tank/data", Recursive::yes, 30s);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("unexpected command"), std::string::npos);
}

TEST(ZfsList, BadOutputIsAnError) {
  FakeCommandRunner runner;
  runner.on("zfs get -H -p -o name,property,value -r guid,createtxg tank/data",
            {0, rows({"tank/data@a\tguid\t-", "tank/data@a\tcreatetxg\t9"}), ""});
  const auto listing = list_snapshots(runner, "tank/data", Recursive::yes, 30s);
  ASSERT_FALSE(listing.ok());
  EXPECT_NE(listing.error().message.find("line 1"), std::string::npos) << listing.error().message;
}

TEST(ZfsList, RefusesToRunWithABadName) {
  FakeCommandRunner runner;
  for (const char* bad : {"pool/a;reboot", "$(x)", "-rf", "tank/a b"}) {
    EXPECT_FALSE(list_snapshots(runner, bad, Recursive::yes, 30s).ok()) << bad;
  }
  EXPECT_TRUE(runner.calls.empty());
}

// ---------------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------------

TEST(ZfsPool, Health) {
  FakeCommandRunner runner;
  runner.on("zpool list -H -o name,health backup", {0, "backup\tDEGRADED\n", ""});
  runner.on("zpool list -H -o name,health gone", {1, "", "cannot open 'gone': no such pool\n"});
  const auto health = zpool_health(runner, "backup", 10s);
  ASSERT_TRUE(health.ok()) << health.error().message;
  EXPECT_EQ(health->health, "DEGRADED");
  EXPECT_FALSE(health->online());
  const auto gone = zpool_health(runner, "gone", 10s);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.error().message.find("not imported"), std::string::npos);
  EXPECT_FALSE(zpool_health(runner, "backup/data", 10s).ok());
  EXPECT_FALSE(zpool_health(runner, "-x", 10s).ok());
}

TEST(ZfsPool, ImportedAndImport) {
  FakeCommandRunner runner;
  runner.on("zpool list -H -o name backup", {0, "backup\n", ""});
  runner.on("zpool list -H -o name other", {1, "", "cannot open 'other': no such pool\n"});
  runner.on("zpool list -H -o name weird", {1, "", "internal error\n"});
  runner.on("zpool import other", {0, "", ""});
  runner.on("zpool import -d /srv/lab broken", {1, "", "cannot import 'broken': no such pool available\n"});
  EXPECT_TRUE(*pool_imported(runner, "backup", 10s));
  EXPECT_FALSE(*pool_imported(runner, "other", 10s));
  EXPECT_FALSE(pool_imported(runner, "weird", 10s).ok());
  EXPECT_TRUE(zpool_import(runner, "other", 10s).ok());
  const auto broken = zpool_import(runner, "broken", 10s, {"/srv/lab"});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("no such pool available"), std::string::npos);
  EXPECT_FALSE(zpool_import(runner, "x", 10s, {"relative"}).ok());
}

// ---------------------------------------------------------------------------------------------
// Against real zfs-fuse (root only)
// ---------------------------------------------------------------------------------------------

// A tiny fork/exec runner for this test only (the real LocalCommandRunner lives elsewhere).
class TestLocalRunner final : public CommandRunner {
 public:
  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds /*timeout*/) override {
    int out_pipe[2];
    int err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return make_error("pipe failed");
    const pid_t pid = fork();
    if (pid < 0) return make_error("fork failed");
    if (pid == 0) {
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
      close(out_pipe[0]);
      close(err_pipe[0]);
      close(out_pipe[1]);
      close(err_pipe[1]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    CommandOutput result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        } else {
          (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
        }
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status)) return make_error("{} killed by a signal", argv[0]);
    result.exit_status = WEXITSTATUS(status);
    return result;
  }
  [[nodiscard]] std::string where() const override { return "local"; }
};

TEST(ZfsFuse, ListsRealSnapshotsInOrder) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a zfs-fuse pool";
  TestLocalRunner sh;
  const auto probe = sh.run({"zpool", "list", "-H"}, 10s);
  if (!probe.ok() || probe->exit_status != 0) {
    GTEST_SKIP() << "zfs-fuse unavailable (zpool list failed: " << (probe.ok() ? trim(probe->err) : "not found")
                 << ")";
  }
  const std::string pool = fmt::format("hzunit{}", getpid());
  const std::string dir = fmt::format("/tmp/{}", pool);  // own directory, so `zpool import -d` scans only it
  const std::string image = dir + "/pool.img";
  std::filesystem::create_directories(dir);
  struct Cleanup {
    TestLocalRunner& runner;
    std::string name, directory;
    ~Cleanup() {
      // Right after an import zfs-fuse may still be mounting ("pool is busy"): retry until gone.
      for (int attempt = 0; attempt < 50; ++attempt) {
        const auto destroyed = runner.run({"zpool", "destroy", "-f", name}, std::chrono::seconds(30));
        const auto listed = runner.run({"zpool", "list", "-H", "-o", "name", name}, std::chrono::seconds(30));
        if (destroyed.ok() && listed.ok() && listed->exit_status != 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      std::error_code ec;
      std::filesystem::remove_all(directory, ec);
    }
  } cleanup{sh, pool, dir};
  ASSERT_EQ(sh.run({"truncate", "-s", "128M", image}, 10s)->exit_status, 0);
  auto run_ok = [&](std::vector<std::string> argv) {
    const auto r = sh.run(argv, 30s);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->exit_status, 0) << join(argv, " ") << ": " << r->err;
  };
  run_ok({"zpool", "create", "-f", pool, image});
  run_ok({"zfs", "create", pool + "/a"});
  run_ok({"zfs", "create", pool + "/a/b"});
  run_ok({"zfs", "create", pool + "/a/empty"});
  run_ok({"zfs", "snapshot", pool + "/a@first"});
  run_ok({"zfs", "snapshot", "-r", pool + "/a@second"});
  run_ok({"zfs", "snapshot", pool + "/a/b@third"});
  run_ok({"zfs", "destroy", pool + "/a/empty@second"});

  const auto listing = list_snapshots(sh, pool + "/a", Recursive::yes, 30s);
  ASSERT_TRUE(listing.ok()) << listing.error().message;
  ASSERT_EQ(listing->status, ListStatus::found);
  const auto& idx = listing->snapshots;
  ASSERT_EQ(idx.size(), 3u);
  ASSERT_EQ(idx.at(pool + "/a").size(), 2u);
  EXPECT_EQ(idx.at(pool + "/a")[0].name, "first");
  EXPECT_EQ(idx.at(pool + "/a")[1].name, "second");
  ASSERT_EQ(idx.at(pool + "/a/b").size(), 2u);
  EXPECT_EQ(newest_snapshot(idx.at(pool + "/a/b"))->name, "third");
  EXPECT_TRUE(idx.at(pool + "/a/empty").empty());

  // GUIDs agree with what zfs itself reports for each snapshot.
  for (const auto& [ds, snaps] : idx) {
    for (const auto& s : snaps) {
      const auto g = sh.run({"zfs", "get", "-H", "-p", "-o", "value", "guid", s.full_name()}, 30s);
      ASSERT_TRUE(g.ok());
      EXPECT_EQ(std::string(trim(g->out)), std::to_string(s.guid)) << s.full_name();
    }
  }

  const auto shallow = list_snapshots(sh, pool + "/a", Recursive::no, 30s);
  ASSERT_TRUE(shallow.ok()) << shallow.error().message;
  EXPECT_EQ(shallow->snapshots.size(), 1u);
  EXPECT_EQ(shallow->snapshots.at(pool + "/a").size(), 2u);

  const auto missing = list_snapshots(sh, pool + "/nope", Recursive::yes, 30s);
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_EQ(missing->status, ListStatus::missing);

  const auto health = zpool_health(sh, pool, 30s);
  ASSERT_TRUE(health.ok()) << health.error().message;
  EXPECT_TRUE(health->online());
  EXPECT_TRUE(*pool_imported(sh, pool, 30s));
  EXPECT_FALSE(*pool_imported(sh, pool + "x", 30s));

  // Export, then import from the image's directory (how the lab's file-backed pools come back).
  run_ok({"zpool", "export", pool});
  EXPECT_FALSE(*pool_imported(sh, pool, 30s));
  EXPECT_FALSE(zpool_health(sh, pool, 30s).ok());
  const auto imported = zpool_import(sh, pool, 60s, {dir});
  ASSERT_TRUE(imported.ok()) << imported.error().message;
  EXPECT_TRUE(*pool_imported(sh, pool, 30s));
  const auto again = list_snapshots(sh, pool + "/a", Recursive::yes, 30s);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->snapshots, listing->snapshots);
}

}  // namespace
