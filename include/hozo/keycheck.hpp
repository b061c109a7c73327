#pragma once
// Offline checks of the files on this machine that a job's SSH connection needs, for
// `hozo config validate` and `hozo jobs run --dry-run`: the identity file (exists, is a file, is
// a private key, has no passphrase) and, under host_key_policy strict, the known_hosts entry of
// the box. No network: the box is not contacted (that is `hozo check`).

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hozo/config.hpp"

namespace hozo {

/// Problems with a job's identity file(s) (errors: the run cannot log in) and its known_hosts
/// entry (warnings: the key has not been pinned yet). Issues carry the job's name and position.
std::vector<ConfigIssue> check_ssh_files(const Job& job);

/// Why `path` cannot serve as an unattended SSH identity (missing, a directory, a public key,
/// unreadable, passphrase-protected, not a key), or nullopt when libssh loads it without a passphrase.
std::optional<std::string> identity_file_problem(const std::filesystem::path& path);

}  // namespace hozo
