#pragma once
// File helpers: crash-safe writes and whole-file reads.

#include <filesystem>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "hozo/util/result.hpp"

namespace hozo {

/// Reads a whole file.
Result<std::string> read_file(const std::filesystem::path& path);

/// Whether a write must be on disk before it returns.
enum class Durability {
  synced,    ///< fsync the file and the directory: survives a power cut
  volatile_  ///< no fsync: still atomic for readers (never a torn file), may be lost in a crash
};

/// Writes `data` crash-safely: temp file in the same directory, fsync, rename over
/// `path`, fsync the directory. Readers see either the old or the new content, never a mix.
/// Durability::volatile_ skips both fsyncs (for files that only matter while hozo runs).
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode = 0600,
                               Durability durability = Durability::synced);

/// Creates a new file crash-safely (temp file in the same directory, fsync, link(2) to `path`,
/// fsync the directory): an existing `path` is never replaced (Error naming it).
Result<void> write_file_new(const std::filesystem::path& path, std::string_view data, mode_t mode = 0600);

/// Creates a directory and its parents with the given mode (existing ones are left alone).
Result<void> make_dirs(const std::filesystem::path& path, mode_t mode = 0700);

/// Expands a leading "~/" using $HOME.
std::filesystem::path expand_home(std::string_view path);

}  // namespace hozo
