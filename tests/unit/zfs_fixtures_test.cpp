// Every parser of ZFS output over the fixtures in tests/unit/fixtures: zfs-fuse (captured in the
// lab) and OpenZFS 2.1-2.3 (written after the man pages and test suite). See fixtures/README.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "hozo/backupd.hpp"
#include "hozo/chain.hpp"
#include "hozo/check.hpp"
#include "hozo/zfs.hpp"

using namespace hozo;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(HOZO_SOURCE_DIR) / "tests/unit/fixtures";

std::string read(const std::string& name) {
  std::ifstream in(kFixtures / name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// What the command printed and how it exited: FILE, FILE.stderr, FILE.rc.
CommandOutput command(const std::string& name) {
  CommandOutput out;
  out.out = read(name);
  if (std::filesystem::exists(kFixtures / (name + ".stderr"))) out.err = read(name + ".stderr");
  if (std::filesystem::exists(kFixtures / (name + ".rc"))) out.exit_status = std::stoi(read(name + ".rc"));
  return out;
}

/// A runner that answers every command with one fixture.
class FixtureRunner final : public CommandRunner {
 public:
  explicit FixtureRunner(CommandOutput out) : out_(std::move(out)) {}
  Result<CommandOutput> run(const std::vector<std::string>& /*argv*/, std::chrono::seconds /*timeout*/) override {
    return out_;
  }
  [[nodiscard]] std::string where() const override { return "fixture"; }

 private:
  CommandOutput out_;
};

// ---------------------------------------------------------------- zpool status (backupd /status)

TEST(ZfsFixtures, HealthyPoolWithFeatureNoticeIsOnline) {
  for (const char* f : {"openzfs/zpool-status-features.txt", "openzfs/zpool-status-legacy.txt", "zfs-fuse/zpool-status.txt"}) {
    PoolStatus pool;
    pool.name = "backup";
    pool.health = "ONLINE";
    apply_zpool_status(pool, read(f));
    EXPECT_EQ(pool.state, "ONLINE") << f;  // status:/action: paragraphs do not mean unhealthy
    EXPECT_EQ(pool.errors, "No known data errors") << f;
    EXPECT_FALSE(pool.scan.empty()) << f;
  }
  PoolStatus pool;
  apply_zpool_status(pool, read("openzfs/zpool-status-features.txt"));
  EXPECT_EQ(pool.scan, "scrub repaired 0B in 00:41:07 with 0 errors on Sun Nov  9 01:05:08 2025");
}

TEST(ZfsFixtures, DegradedPoolStatus) {
  PoolStatus pool;
  apply_zpool_status(pool, read("openzfs/zpool-status-degraded.txt"));
  EXPECT_EQ(pool.state, "DEGRADED");
  EXPECT_EQ(pool.scan, "resilvered 1.21G in 00:03:12 with 0 errors on Sat Nov 29 10:00:00 2025");
}

// ---------------------------------------------------------------- zpool list

TEST(ZfsFixtures, ZpoolListExactAndHuman) {
  auto exact = parse_zpool_list(read("openzfs/zpool-list-p.txt"));
  ASSERT_TRUE(exact.ok()) << exact.error().message;
  ASSERT_EQ(exact->size(), 2u);
  EXPECT_EQ((*exact)[0].size, 3985729650688u);
  EXPECT_EQ((*exact)[0].alloc, 1202590842880u);
  EXPECT_EQ((*exact)[1].health, "DEGRADED");
  auto human = parse_zpool_list(read("zfs-fuse/zpool-list.txt"));
  ASSERT_TRUE(human.ok()) << human.error().message;
  ASSERT_EQ(human->size(), 1u);
  EXPECT_EQ((*human)[0].size, 123u << 20);
  // zfs-fuse rejects -p: exit 2 and "invalid option 'p'" (backupd falls back to human sizes).
  const auto no_p = command("zfs-fuse/zpool-list-p.txt");
  EXPECT_NE(no_p.exit_status, 0);
  EXPECT_NE(no_p.err.find("invalid option"), std::string::npos);
}

// ---------------------------------------------------------------- zpool import listing

TEST(ZfsFixtures, ImportListingBothLayouts) {
  const auto fuse = parse_import_listing(command("zfs-fuse/zpool-import-list.txt").out);
  ASSERT_EQ(fuse.size(), 1u);
  EXPECT_EQ(fuse[0].pool, "backup");
  EXPECT_EQ(fuse[0].id, "13062554537844659512");
  EXPECT_EQ(fuse[0].state, "ONLINE");
  EXPECT_FALSE(fuse[0].needs_force());
  const auto openzfs = parse_import_listing(command("openzfs/zpool-import-list.txt").out);
  ASSERT_EQ(openzfs.size(), 2u);
  EXPECT_EQ(openzfs[0].pool, "backup");
  EXPECT_EQ(openzfs[0].id, "15124932482618034322");
  EXPECT_EQ(openzfs[1].pool, "offsite2");
  EXPECT_EQ(openzfs[1].state, "ONLINE");
  EXPECT_EQ(openzfs[1].action,
            "The pool can be imported using its name or numeric identifier, though some features will not be "
            "available without an explicit 'zpool upgrade'.");
  const auto forced = parse_import_listing(
      "   pool: backup\n     id: 1\n  state: ONLINE\nstatus: The pool was last accessed by another system.\n"
      " action: The pool can be imported using its name or numeric identifier and\n\tthe '-f' flag.\n"
      "   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-EY\n config:\n\n\tbackup  ONLINE\n\t  sdb  ONLINE\n");
  ASSERT_EQ(forced.size(), 1u);
  EXPECT_TRUE(forced[0].needs_force());
}

TEST(ZfsFixtures, NoPoolsToImport) {
  const auto openzfs = command("openzfs/zpool-import-none.txt");  // stderr, exit 0
  EXPECT_EQ(openzfs.exit_status, 0);
  EXPECT_TRUE(parse_import_listing(openzfs.out).empty());
  EXPECT_TRUE(parse_import_listing(openzfs.err).empty());
  const auto fuse = command("zfs-fuse/zpool-import-none.txt");  // nothing, exit 1
  EXPECT_EQ(fuse.exit_status, 1);
  EXPECT_TRUE(parse_import_listing(fuse.out).empty());
}

// ---------------------------------------------------------------- zfs send -nvP

TEST(ZfsFixtures, SendSizeEstimate) {
  EXPECT_EQ(parse_send_size(read("openzfs/zfs-send-nvP-full.txt")), 4238291456u);
  EXPECT_EQ(parse_send_size(read("openzfs/zfs-send-nvP-incremental.txt")), 1261568u);
  EXPECT_EQ(parse_send_size(read("openzfs/zfs-send-nvP-recursive.txt")), 4238382592u);
  const auto fuse = command("zfs-fuse/zfs-send-nvP.txt");  // no -n: exit 2, usage on stderr
  EXPECT_NE(fuse.exit_status, 0);
  EXPECT_FALSE(parse_send_size(fuse.out + "\n" + fuse.err));
}

// ---------------------------------------------------------------- zfs allow

TEST(ZfsFixtures, ZfsAllowBlocks) {
  const auto text = read("openzfs/zfs-allow.txt");
  auto child = parse_zfs_allow(text, "backup/hozo/data", AllowSubject{"zfsbackup", {"backup"}});
  ASSERT_TRUE(child.ok()) << child.error().message;
  EXPECT_EQ(*child, (std::set<std::string>{"create", "mount", "receive", "destroy", "rollback", "hold", "userprop"}));
  auto self = parse_zfs_allow(text, "backup/hozo", AllowSubject{"zfsbackup", {}});
  ASSERT_TRUE(self.ok());
  EXPECT_EQ(*self, (std::set<std::string>{"create", "mount", "receive", "destroy", "rollback"}));
  auto other = parse_zfs_allow(text, "backup/hozo", AllowSubject{"nobody", {}});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());  // `everyone snapshot` is Local on backup only
  auto pool = parse_zfs_allow(text, "backup", AllowSubject{"nobody", {}});
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(*pool, (std::set<std::string>{"snapshot"}));
  const auto fuse = command("zfs-fuse/zfs-allow.txt");  // broken on zfs-fuse: exit 255, nothing on stdout
  EXPECT_EQ(fuse.exit_status, 255);
  auto none = parse_zfs_allow(fuse.out, "backup", AllowSubject{"root", {}});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// ---------------------------------------------------------------- snapshot listing

TEST(ZfsFixtures, SnapshotListing) {
  auto fuse = parse_snapshot_listing(read("zfs-fuse/zfs-get-snapshots.txt"), "backup/data", Recursive::no);
  ASSERT_TRUE(fuse.ok()) << fuse.error().message;
  ASSERT_EQ(fuse->at("backup/data").size(), 2u);
  EXPECT_EQ(fuse->at("backup/data").back().name, "second");
  EXPECT_EQ(fuse->at("backup/data").back().guid, 118800551893412287u);
  auto openzfs = parse_snapshot_listing(read("openzfs/zfs-get-snapshots.txt"), "tank/data", Recursive::yes);
  ASSERT_TRUE(openzfs.ok()) << openzfs.error().message;
  ASSERT_EQ(openzfs->at("tank/data").size(), 2u);
  EXPECT_EQ(openzfs->at("tank/data").back().name, "autosnap_2025-11-30_00:00:02_daily");
  EXPECT_EQ(openzfs->at("tank/data").back().guid, 5022946131874312207u);
  ASSERT_EQ(openzfs->at("tank/data/child").size(), 1u);
  // and through list_snapshots, as verify runs it
  FixtureRunner runner(command("openzfs/zfs-get-snapshots.txt"));
  auto listed = list_snapshots(runner, "tank/data", Recursive::yes, std::chrono::seconds(5));
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  EXPECT_EQ(listed->status, ListStatus::found);
}

// ---------------------------------------------------------------- zfs get -p available

TEST(ZfsFixtures, AvailableBytes) {
  EXPECT_EQ(parse_property_u64(read("openzfs/zfs-get-p-available.txt")), 2741528170496u);
  EXPECT_EQ(parse_property_u64(read("zfs-fuse/zfs-get-p-available.txt")), 94875648u);
  EXPECT_FALSE(parse_property_u64("-\n"));
  EXPECT_FALSE(parse_property_u64(""));
}

}  // namespace

// ---------------------------------------------------------------- zpool get feature@bookmarks (create_bookmark)

TEST(ZfsFixtures, BookmarkFeature) {
  EXPECT_EQ(parse_bookmark_feature(command("openzfs/zpool-get-feature-bookmarks.txt")), BookmarkSupport::yes);
  EXPECT_EQ(parse_bookmark_feature(command("openzfs/zpool-get-feature-bookmarks-enabled.txt")), BookmarkSupport::yes);
  EXPECT_EQ(parse_bookmark_feature(command("openzfs/zpool-get-feature-bookmarks-disabled.txt")), BookmarkSupport::no);
  // zfs-fuse knows no feature flags: exit 2, "bad property list: invalid property 'feature@bookmarks'".
  const auto fuse = command("zfs-fuse/zpool-get-feature-bookmarks.txt");
  EXPECT_EQ(fuse.exit_status, 2);
  EXPECT_NE(fuse.err.find("invalid property 'feature@bookmarks'"), std::string::npos);
  EXPECT_EQ(parse_bookmark_feature(fuse), BookmarkSupport::no);
}

TEST(ZfsFixtures, CreateBookmarkDecision) {
  const auto support = [](const char* f) { return parse_bookmark_feature(command(f)); };
  SyncoidSettings s;
  s.no_sync_snap = true;
  // Left to hozo: on where the pool supports bookmarks (OpenZFS), off on zfs-fuse.
  auto d = decide_create_bookmark(s, support("openzfs/zpool-get-feature-bookmarks.txt"), "tank");
  EXPECT_TRUE(d.create) << d.why;
  EXPECT_NE(d.why.find("tank supports bookmarks"), std::string::npos) << d.why;
  d = decide_create_bookmark(s, support("openzfs/zpool-get-feature-bookmarks-enabled.txt"), "backup");
  EXPECT_TRUE(d.create) << d.why;
  d = decide_create_bookmark(s, support("openzfs/zpool-get-feature-bookmarks-disabled.txt"), "old");
  EXPECT_FALSE(d.create) << d.why;
  d = decide_create_bookmark(s, support("zfs-fuse/zpool-get-feature-bookmarks.txt"), "tank");
  EXPECT_FALSE(d.create) << d.why;
  EXPECT_NE(d.why.find("does not support"), std::string::npos) << d.why;
  // syncoid bookmarks only with --no-sync-snap: without it, never automatically.
  s.no_sync_snap = false;
  d = decide_create_bookmark(s, support("openzfs/zpool-get-feature-bookmarks.txt"), "tank");
  EXPECT_FALSE(d.create) << d.why;
  // Written in the config: the config wins either way.
  s.no_sync_snap = true;
  s.create_bookmark_set = true;
  s.create_bookmark = false;
  EXPECT_FALSE(decide_create_bookmark(s, support("openzfs/zpool-get-feature-bookmarks.txt"), "tank").create);
  s.create_bookmark = true;
  EXPECT_TRUE(decide_create_bookmark(s, support("zfs-fuse/zpool-get-feature-bookmarks.txt"), "tank").create);
}
