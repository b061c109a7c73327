#include "hozo/disk.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <system_error>

#include "hozo/util/fd.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

bool is_lower_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool is_id_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '+' || c == '-';
}

std::string_view first_meaningful_line(std::string_view output) {
  for (auto line : split_lines(output)) {
    line = trim(line);
    if (line.empty()) continue;
    // "/dev/sda:" alone is the header hdparm prints before every device.
    if (line.back() == ':' && line.find(' ') == std::string_view::npos) continue;
    return line;
  }
  return {};
}

Result<std::string> read_sysfs_value(const std::filesystem::path& path) {
  auto content = read_file(path);
  if (!content) return make_error("cannot read {}: {}", path.string(), content.error().message);
  return std::string(trim(*content));
}

}  // namespace

std::string_view to_string(SpinState state) noexcept {
  switch (state) {
    case SpinState::active: return "active";
    case SpinState::standby: return "standby";
    case SpinState::sleeping: return "sleeping";
    case SpinState::unknown: return "unknown";
  }
  return "unknown";
}

Result<SpinState> parse_hdparm_state(std::string_view output) {
  static constexpr std::string_view kMarker = "drive state is:";
  for (auto line : split_lines(output)) {
    const auto pos = line.find(kMarker);
    if (pos == std::string_view::npos) continue;
    const std::string value = to_lower(trim(line.substr(pos + kMarker.size())));
    if (value == "active/idle" || value == "active" || value == "idle" || starts_with(value, "idle_")) {
      return SpinState::active;
    }
    if (value == "standby" || starts_with(value, "standby_")) return SpinState::standby;
    if (value == "sleeping") return SpinState::sleeping;
    if (value == "unknown") return SpinState::unknown;
    return make_error("hdparm -C: unexpected drive state '{}'", printable(value));
  }
  const auto line = first_meaningful_line(output);
  if (line.empty()) return make_error("hdparm -C: no output");
  return make_error("hdparm -C: {}", printable(line.substr(0, 200)));
}

std::vector<std::string> hdparm_state_argv(const std::string& dev_path) { return {"hdparm", "-C", dev_path}; }

Result<void> validate_block_device_name(std::string_view name) {
  if (name.empty()) return make_error("empty device name");
  if (name.size() < 2 || name.size() > 32) return make_error("invalid device name (length {})", name.size());
  if (name[0] < 'a' || name[0] > 'z') return make_error("invalid device name '{}'", printable(name));
  for (const char c : name) {
    if (!is_lower_alnum(c)) return make_error("invalid device name '{}'", printable(name));
  }
  return ok();
}

Result<void> validate_disk_id(std::string_view id) {
  if (id.empty()) return make_error("empty disk id");
  if (id.size() > 200) return make_error("invalid disk id (length {})", id.size());
  if (id[0] == '.' || id[0] == '-') return make_error("invalid disk id '{}'", printable(id));
  if (id.find("..") != std::string_view::npos) return make_error("invalid disk id '{}'", printable(id));
  for (const char c : id) {
    if (!is_id_char(c)) return make_error("invalid disk id '{}'", printable(id));
  }
  return ok();
}

Result<BlockDevice> resolve_block_device(const DiskPaths& paths, std::string_view name) {
  if (auto valid = validate_block_device_name(name); !valid) return std::move(valid).error();
  std::error_code ec;
  if (!std::filesystem::exists(paths.sys_block / name, ec)) {
    return make_error(ExitCode::unavailable, "no block device '{}'", name);
  }
  BlockDevice device{std::string(name), paths.dev / name};
  struct stat st {};
  if (::stat(device.dev_path.c_str(), &st) != 0) {
    return make_error(ExitCode::unavailable, "no device node {}", device.dev_path.string());
  }
  if (paths.require_block_special && !S_ISBLK(st.st_mode)) {
    return make_error("{} is not a block device", device.dev_path.string());
  }
  return device;
}

Result<BlockDevice> resolve_disk_id(const DiskPaths& paths, std::string_view id) {
  if (auto valid = validate_disk_id(id); !valid) return std::move(valid).error();
  const auto link = paths.dev / "disk" / "by-id" / id;
  std::error_code ec;
  const auto target = std::filesystem::canonical(link, ec);
  if (ec) return make_error(ExitCode::unavailable, "no disk with id '{}'", id);
  const auto dev_root = std::filesystem::canonical(paths.dev, ec);
  if (ec) return make_error("cannot resolve {}", paths.dev.string());
  if (target.parent_path() != dev_root) return make_error("disk id '{}' does not resolve to a device node", id);
  const std::string name = target.filename().string();
  if (!validate_block_device_name(name)) return make_error("disk id '{}' resolves to an unexpected name", id);
  return resolve_block_device(paths, name);
}

Result<bool> read_rotational(const DiskPaths& paths, std::string_view name) {
  auto value = read_sysfs_value(paths.sys_block / name / "queue" / "rotational");
  if (!value) return std::move(value).error();
  if (*value == "1") return true;
  if (*value == "0") return false;
  return make_error("unexpected rotational value '{}'", printable(*value));
}

Result<std::uint64_t> parse_block_stat_reads(std::string_view content) {
  const auto trimmed = trim(content);
  const auto end = trimmed.find_first_of(" \t\n");
  const auto field = trimmed.substr(0, end);
  const auto value = parse_int(field);
  if (!value || *value < 0) return make_error("unexpected block stat content '{}'", printable(field.substr(0, 40)));
  return static_cast<std::uint64_t>(*value);
}

Result<std::uint64_t> read_io_reads(const DiskPaths& paths, std::string_view name) {
  auto value = read_sysfs_value(paths.sys_block / name / "stat");
  if (!value) return std::move(value).error();
  return parse_block_stat_reads(*value);
}

Result<std::uint64_t> read_device_size(const DiskPaths& paths, std::string_view name) {
  auto value = read_sysfs_value(paths.sys_block / name / "size");
  if (!value) return std::move(value).error();
  const auto sectors = parse_int(*value);
  if (!sectors || *sectors < 0) return make_error("unexpected size '{}'", printable(*value));
  return static_cast<std::uint64_t>(*sectors) * 512U;
}

std::uint64_t spinup_offset(std::uint64_t size_bytes, std::uint64_t seed) noexcept {
  constexpr std::uint64_t kBlock = 4096;
  if (size_bytes < 2 * kBlock) return 0;
  const std::uint64_t blocks = size_bytes / kBlock - 1;  // last full block excluded
  // splitmix64 step so neighbouring seeds land far apart.
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (z % (blocks + 1)) * kBlock;
}

Result<void> direct_read_4k(const std::filesystem::path& dev_path, std::uint64_t offset) {
  constexpr std::size_t kSize = 4096;
  Fd fd(::open(dev_path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOCTTY));
  bool direct = true;
  if (!fd.open() && errno == EINVAL) {
    fd = Fd(::open(dev_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    direct = false;
  }
  if (!fd.open()) return make_error("cannot open {}: {}", dev_path.string(), std::strerror(errno));
  void* raw = nullptr;
  if (::posix_memalign(&raw, kSize, kSize) != 0) return make_error("out of memory");
  const std::unique_ptr<void, decltype(&std::free)> buffer(raw, &std::free);
  ssize_t n = ::pread(fd.get(), buffer.get(), kSize, static_cast<off_t>(offset));
  if (n < 0 && errno == EINVAL && direct) {
    // O_DIRECT accepted at open but refused at read (filesystem without direct I/O).
    Fd buffered(::open(dev_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!buffered.open()) return make_error("cannot open {}: {}", dev_path.string(), std::strerror(errno));
    n = ::pread(buffered.get(), buffer.get(), kSize, static_cast<off_t>(offset));
  }
  if (n < 0) return make_error("read of {} failed: {}", dev_path.string(), std::strerror(errno));
  return ok();
}

}  // namespace hozo
