#pragma once
// An owned POSIX file descriptor (closed on destruction), shared by net, process and wol code.

#include <unistd.h>

#include <utility>

namespace hozo {

/// Owns a file descriptor; move-only; closes it when destroyed or reset.
class Fd {
 public:
  Fd() = default;
  /// Takes ownership of `fd` (may be -1).
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  /// Closes the descriptor now (idempotent).
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// Gives the descriptor up (to a library that closes it); -1 when none.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  /// The raw descriptor (-1 when none).
  [[nodiscard]] int get() const noexcept { return fd_; }
  /// True when a descriptor is held.
  [[nodiscard]] bool open() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace hozo
