#pragma once
// Backup-disk helpers for backupd: `hdparm -C` parsing, block-device name validation and
// resolution (kernel names under /sys/block, /dev/disk/by-id names), sysfs counters, and the
// small direct read that spins a sleeping disk up. Roots are configurable so tests can use a
// fake sysfs and /dev tree. Nothing here goes through a shell.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/util/result.hpp"

namespace hozo {

/// Power state of a disk as `hdparm -C` reports it.
enum class SpinState {
  active,    ///< "active/idle" (also idle_a/idle_b/idle_c): platters spinning
  standby,   ///< "standby" (also standby_y/standby_z): spun down
  sleeping,  ///< "sleeping": deepest power-saving mode, needs a reset to wake
  unknown    ///< the drive did not say (NVMe, USB bridges without SAT pass-through, ...)
};

/// "active", "standby", "sleeping", "unknown".
std::string_view to_string(SpinState state) noexcept;

/// Parses `hdparm -C DEV` output (stdout and stderr together is fine). Returns the state from
/// the "drive state is:" line; an Error (with the first meaningful line of the output) when
/// there is no such line, e.g. "No such file or directory" or a failed ioctl.
Result<SpinState> parse_hdparm_state(std::string_view output);

/// The argv for querying a device's power state: {"hdparm", "-C", dev_path}.
std::vector<std::string> hdparm_state_argv(const std::string& dev_path);

/// Where backupd looks for block devices; tests point both at a temporary tree.
struct DiskPaths {
  std::filesystem::path sys_block = "/sys/block";  ///< kernel block devices
  std::filesystem::path dev = "/dev";              ///< device nodes (and disk/by-id links)
  /// Require the resolved node to be a block special file (off only for fake trees in tests).
  bool require_block_special = true;
};

/// Checks a kernel block-device name: `^[a-z][a-z0-9]{1,31}$` ("sda", "nvme0n1", "vdb").
/// Anything else (slashes, dots, '%', ';', uppercase, empty, too long) is an Error.
Result<void> validate_block_device_name(std::string_view name);

/// Checks a /dev/disk/by-id name: 1..200 characters from [A-Za-z0-9._:+-], not starting
/// with '.' or '-', no "..". ("ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567", "wwn-0x5000c500a1b2c3d4")
Result<void> validate_disk_id(std::string_view id);

/// A block device that passed validation and exists.
struct BlockDevice {
  std::string name;                ///< kernel name: "sda"
  std::filesystem::path dev_path;  ///< "/dev/sda" (under DiskPaths::dev)
};

/// Resolves a kernel name: validated, must exist as `sys_block/NAME` (and as `dev/NAME`).
Result<BlockDevice> resolve_block_device(const DiskPaths& paths, std::string_view name);

/// Resolves a by-id name: validated, `dev/disk/by-id/ID` must resolve (symlinks followed) to a
/// node directly under `dev` whose name is a valid kernel name; with require_block_special it
/// must be a block device.
Result<BlockDevice> resolve_disk_id(const DiskPaths& paths, std::string_view id);

/// `sys_block/NAME/queue/rotational`: true for spinning disks.
Result<bool> read_rotational(const DiskPaths& paths, std::string_view name);

/// Field 1 of `sys_block/NAME/stat`: reads completed since boot.
Result<std::uint64_t> read_io_reads(const DiskPaths& paths, std::string_view name);

/// Parses the content of a sysfs block `stat` file and returns its first field.
Result<std::uint64_t> parse_block_stat_reads(std::string_view content);

/// Size in bytes from `sys_block/NAME/size` (512-byte sectors).
Result<std::uint64_t> read_device_size(const DiskPaths& paths, std::string_view name);

/// A 4 KiB-aligned offset in [0, size - 4096] derived from `seed` (0 when size < 8 KiB).
std::uint64_t spinup_offset(std::uint64_t size_bytes, std::uint64_t seed) noexcept;

/// Reads 4 KiB at `offset` from `dev_path` with O_DIRECT (so the page cache cannot answer
/// and the disk has to spin up). Falls back to a buffered read where O_DIRECT is refused
/// (EINVAL: tmpfs, some fake trees).
Result<void> direct_read_4k(const std::filesystem::path& dev_path, std::uint64_t offset);

}  // namespace hozo
