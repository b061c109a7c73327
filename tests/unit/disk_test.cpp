#include "hozo/disk.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_support.hpp"

namespace hozo {
namespace {

// Real `hdparm -C` outputs (hdparm 9.65, SATA disk and NVMe / USB bridges).
constexpr const char* kActive = "\n/dev/sda:\n drive state is:  active/idle\n";
constexpr const char* kStandby = "\n/dev/sdb:\n drive state is:  standby\n";
constexpr const char* kSleeping = "\n/dev/sdc:\n drive state is:  sleeping\n";
constexpr const char* kUnknown = "\n/dev/nvme0n1:\n drive state is:  unknown\n";
constexpr const char* kUsbBridge =
    "\n/dev/sdd:\n SG_IO: bad/missing sense data, sb[]:  70 00 05 00 00 00 00 0a 00 00 00 00 20 00 00 00 00 00\n"
    " drive state is:  unknown\n";
constexpr const char* kNoSuchFile = "/dev/sdx: No such file or directory\n";
constexpr const char* kIoctlFailed =
    "\n/dev/sde:\n HDIO_DRIVE_CMD(check powermode) failed: Input/output error\n";
constexpr const char* kIdleB = "\n/dev/sdf:\n drive state is:  idle_b\n";
constexpr const char* kStandbyZ = "\n/dev/sdg:\n drive state is:  standby_z\n";

TEST(HdparmParse, RealSamples) {
  EXPECT_EQ(*parse_hdparm_state(kActive), SpinState::active);
  EXPECT_EQ(*parse_hdparm_state(kStandby), SpinState::standby);
  EXPECT_EQ(*parse_hdparm_state(kSleeping), SpinState::sleeping);
  EXPECT_EQ(*parse_hdparm_state(kUnknown), SpinState::unknown);
  EXPECT_EQ(*parse_hdparm_state(kUsbBridge), SpinState::unknown);
  EXPECT_EQ(*parse_hdparm_state(kIdleB), SpinState::active);
  EXPECT_EQ(*parse_hdparm_state(kStandbyZ), SpinState::standby);
}

TEST(HdparmParse, ErrorsCarryTheMessage) {
  auto missing = parse_hdparm_state(kNoSuchFile);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("No such file or directory"), std::string::npos);
  auto ioctl = parse_hdparm_state(kIoctlFailed);
  ASSERT_FALSE(ioctl.ok());
  EXPECT_NE(ioctl.error().message.find("Input/output error"), std::string::npos);
  EXPECT_FALSE(parse_hdparm_state("").ok());
  EXPECT_FALSE(parse_hdparm_state(" drive state is:  weird\n").ok());
  EXPECT_FALSE(parse_hdparm_state(std::string(10000, '\x01')).ok());
}

TEST(HdparmParse, Names) {
  EXPECT_EQ(to_string(SpinState::active), "active");
  EXPECT_EQ(to_string(SpinState::standby), "standby");
  EXPECT_EQ(to_string(SpinState::sleeping), "sleeping");
  EXPECT_EQ(to_string(SpinState::unknown), "unknown");
  EXPECT_EQ(hdparm_state_argv("/dev/sda"), (std::vector<std::string>{"hdparm", "-C", "/dev/sda"}));
}

TEST(DeviceName, Valid) {
  for (const char* name : {"sda", "sdb", "nvme0n1", "vdb", "md127", "dm0", "sdaa"}) {
    EXPECT_TRUE(validate_block_device_name(name).ok()) << name;
  }
  EXPECT_TRUE(validate_block_device_name(std::string("a") + std::string(31, 'b')).ok());
}

TEST(DeviceName, Invalid) {
  for (const char* name : {"", "a", "../../etc/passwd", "..", "sda;reboot", "%2e%2e", "SDA", "Sda", "sda/",
                           "/dev/sda", "sda ", " sda", "sd-a", "sd_a", "1sda", "sda\n", "sda$(id)", "sda`id`",
                           "sda|x", "sda&", "nvme0n1p1.", "s\xc3\xa4"}) {
    EXPECT_FALSE(validate_block_device_name(name).ok()) << name;
  }
  EXPECT_FALSE(validate_block_device_name(std::string("a") + std::string(32, 'b')).ok());
  EXPECT_FALSE(validate_block_device_name(std::string(5000, 'a')).ok());
  EXPECT_FALSE(validate_block_device_name(std::string("sda\0x", 5)).ok());
}

TEST(DiskId, Validation) {
  EXPECT_TRUE(validate_disk_id("ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567").ok());
  EXPECT_TRUE(validate_disk_id("wwn-0x5000c500a1b2c3d4").ok());
  EXPECT_TRUE(validate_disk_id("usb-WD_Elements_25A3_5758-0:0").ok());
  for (const char* id : {"", "..", "../sda", "a/b", ".hidden", "-x", "a..b", "x;reboot", "x y", "%2e%2e", "x\n"}) {
    EXPECT_FALSE(validate_disk_id(id).ok()) << id;
  }
  EXPECT_FALSE(validate_disk_id(std::string(201, 'a')).ok());
}

class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    paths.sys_block = dir.path() / "sys" / "block";
    paths.dev = dir.path() / "dev";
    paths.require_block_special = false;
    fs::create_directories(paths.sys_block / "sda" / "queue");
    fs::create_directories(paths.sys_block / "nvme0n1" / "queue");
    fs::create_directories(paths.dev / "disk" / "by-id");
    put(paths.sys_block / "sda" / "queue" / "rotational", "1\n");
    put(paths.sys_block / "sda" / "stat",
        "   12345      150  1234567     3456     6789      100   987654    12345        0     9876    15801\n");
    put(paths.sys_block / "sda" / "size", "7814037168\n");
    put(paths.sys_block / "nvme0n1" / "queue" / "rotational", "0\n");
    put(paths.sys_block / "nvme0n1" / "stat", "garbage\n");
    put(paths.dev / "sda", std::string(16384, 'x'));
    put(paths.dev / "nvme0n1", "");
    put(paths.dev / "notsys", "");
    fs::create_symlink("../../sda", paths.dev / "disk" / "by-id" / "ata-DISK_1");
    fs::create_symlink("../../notsys", paths.dev / "disk" / "by-id" / "ata-NOTSYS");
    fs::create_symlink("/etc/passwd", paths.dev / "disk" / "by-id" / "ata-EVIL");
  }
  static void put(const std::filesystem::path& p, const std::string& content) {
    std::ofstream(p, std::ios::binary) << content;
  }
  test::TempDir dir{"hozo-disk"};
  DiskPaths paths;
};

TEST_F(FakeTree, ResolvesKernelNames) {
  auto sda = resolve_block_device(paths, "sda");
  ASSERT_TRUE(sda.ok()) << sda.error().message;
  EXPECT_EQ(sda->name, "sda");
  EXPECT_EQ(sda->dev_path, paths.dev / "sda");
  EXPECT_FALSE(resolve_block_device(paths, "sdz").ok());          // not in sysfs
  EXPECT_FALSE(resolve_block_device(paths, "notsys").ok());       // node without sysfs entry
  EXPECT_FALSE(resolve_block_device(paths, "../sda").ok());
  paths.require_block_special = true;
  EXPECT_FALSE(resolve_block_device(paths, "sda").ok());  // a regular file is not a block device
}

TEST_F(FakeTree, ResolvesById) {
  auto disk = resolve_disk_id(paths, "ata-DISK_1");
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  EXPECT_EQ(disk->name, "sda");
  EXPECT_FALSE(resolve_disk_id(paths, "ata-EVIL").ok());     // points outside /dev
  EXPECT_FALSE(resolve_disk_id(paths, "ata-NOTSYS").ok());   // not a kernel block device
  EXPECT_FALSE(resolve_disk_id(paths, "ata-MISSING").ok());
  EXPECT_FALSE(resolve_disk_id(paths, "../../sda").ok());
}

TEST_F(FakeTree, SysfsCounters) {
  EXPECT_TRUE(*read_rotational(paths, "sda"));
  EXPECT_FALSE(*read_rotational(paths, "nvme0n1"));
  EXPECT_EQ(*read_io_reads(paths, "sda"), 12345U);
  EXPECT_FALSE(read_io_reads(paths, "nvme0n1").ok());
  EXPECT_FALSE(read_rotational(paths, "sdz").ok());
  EXPECT_EQ(*read_device_size(paths, "sda"), 7814037168ULL * 512U);
  EXPECT_FALSE(parse_block_stat_reads("").ok());
  EXPECT_FALSE(parse_block_stat_reads("-5 1 2").ok());
  EXPECT_EQ(*parse_block_stat_reads("7 0 0"), 7U);
}

TEST_F(FakeTree, SpinupReadAndOffsets) {
  const std::uint64_t size = 7814037168ULL * 512U;
  for (std::uint64_t seed = 0; seed < 1000; ++seed) {
    const auto off = spinup_offset(size, seed);
    EXPECT_EQ(off % 4096, 0U);
    EXPECT_LE(off + 4096, size);
  }
  EXPECT_NE(spinup_offset(size, 1), spinup_offset(size, 2));
  EXPECT_EQ(spinup_offset(4096, 7), 0U);
  EXPECT_EQ(spinup_offset(0, 7), 0U);
  EXPECT_TRUE(direct_read_4k(paths.dev / "sda", 8192).ok());
  EXPECT_FALSE(direct_read_4k(paths.dev / "missing", 0).ok());
}

}  // namespace
}  // namespace hozo
