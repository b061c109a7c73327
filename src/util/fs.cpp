#include "hozo/util/fs.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hozo {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

Result<void> fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_error("cannot open directory {}: {}", dir.string(), errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return make_error("cannot fsync directory {}: {}", dir.string(), errno_text(err));
  return ok();
}

}  // namespace

Result<std::string> read_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("cannot read {}: {}", path.string(), errno_text(errno));
  // One read of the whole file into its final buffer (a regular file's size is known; one byte
  // more sees the end in the same call); files of unknown size (/proc, pipes) grow the buffer.
  struct stat st {};
  const bool sized = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
  std::string text(sized ? static_cast<std::size_t>(st.st_size) + 1 : 8192, '\0');
  std::size_t size = 0;
  for (;;) {
    if (size == text.size()) text.resize(text.size() * 2);
    const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return make_error("cannot read {}: {}", path.string(), errno_text(err));
    }
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text.resize(size);
  return text;
}

namespace {

/// Writes `data` to a new temporary file in `dir` (mode `mode`, fsynced, closed) and returns its
/// name; on failure nothing is left behind. `purpose` names the temporary ("tmp", "new").
Result<std::string> write_synced_temp(const std::filesystem::path& dir, const std::filesystem::path& path,
                                      std::string_view data, mode_t mode, std::string_view purpose,
                                      Durability durability = Durability::synced) {
  std::string tmpl = (dir / ("." + path.filename().string() + "." + std::string(purpose) + "-XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return make_error("cannot create temporary file in {}: {}", dir.string(), errno_text(errno));
  const auto fail = [&](std::string_view what) -> Result<std::string> {
    const int err = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    return make_error("cannot write {}: {}: {}", path.string(), what, errno_text(err));
  };
  if (::fchmod(fd, mode) != 0) return fail("chmod");
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    written += static_cast<std::size_t>(n);
  }
  if (durability == Durability::synced && ::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    return make_error("cannot write {}: close: {}", path.string(), errno_text(err));
  }
  return tmpl;
}

std::filesystem::path dir_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

}  // namespace

Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode,
                               Durability durability) {
  const auto dir = dir_of(path);
  auto tmp = write_synced_temp(dir, path, data, mode, "tmp", durability);
  if (!tmp) return tmp.error();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp->c_str());
    return make_error("cannot rename {} to {}: {}", *tmp, path.string(), errno_text(err));
  }
  return durability == Durability::synced ? fsync_dir(dir) : ok();
}

Result<void> write_file_new(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  const auto dir = dir_of(path);
  auto tmp = write_synced_temp(dir, path, data, mode, "new");
  if (!tmp) return tmp.error();
  const int rc = ::link(tmp->c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp->c_str());
  if (rc != 0) {
    if (err == EEXIST) return make_error("{} already exists; not replacing it", path.string());
    return make_error("cannot create {}: {}", path.string(), errno_text(err));
  }
  return fsync_dir(dir);
}

Result<void> make_dirs(const std::filesystem::path& path, mode_t mode) {
  std::filesystem::path current;
  for (const auto& part : path) {
    current /= part;
    if (::mkdir(current.c_str(), mode) != 0 && errno != EEXIST) {
      return make_error("cannot create directory {}: {}", current.string(), errno_text(errno));
    }
  }
  return ok();
}

std::filesystem::path expand_home(std::string_view path) {
  if (path == "~" || path.starts_with("~/")) {
    const char* home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') return std::filesystem::path(home) / std::string(path.substr(path.size() > 1 ? 2 : 1));
  }
  return std::filesystem::path(std::string(path));
}

}  // namespace hozo
