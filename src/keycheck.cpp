#include "hozo/keycheck.hpp"

#include <libssh/libssh.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

#include <fmt/format.h>

#include "hozo/ssh.hpp"
#include "hozo/ssh_api.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

/// The first bytes of the base64 payload of an OpenSSH private key, decoded.
std::string decode_base64_prefix(std::string_view text, std::size_t max_bytes) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=' || out.size() >= max_bytes) break;
    const auto pos = kAlphabet.find(c);
    if (pos == std::string_view::npos) continue;  // line breaks
    buffer = (buffer << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xffU);
    }
  }
  return out;
}

/// True when the key file says it is encrypted (OpenSSH format: cipher name other than "none";
/// PEM: an ENCRYPTED header).
bool is_encrypted_key(const std::string& text) {
  if (text.find("ENCRYPTED") != std::string::npos) return true;
  constexpr std::string_view kBegin = "-----BEGIN OPENSSH PRIVATE KEY-----";
  const auto begin = text.find(kBegin);
  if (begin == std::string::npos) return false;
  const std::string raw = decode_base64_prefix(std::string_view(text).substr(begin + kBegin.size()), 64);
  constexpr std::string_view kMagic("openssh-key-v1\0", 15);
  if (raw.size() < kMagic.size() + 4 || std::string_view(raw).substr(0, kMagic.size()) != kMagic) return false;
  std::size_t len = 0;
  for (std::size_t i = 0; i < 4; ++i) len = (len << 8) | static_cast<unsigned char>(raw[kMagic.size() + i]);
  const auto cipher = std::string_view(raw).substr(kMagic.size() + 4, len);
  return cipher != "none";
}

struct SessionDeleter {
  void operator()(ssh_session s) const noexcept { ssh_free(s); }
};

/// Whether known_hosts has an entry for host:port (hashed entries included), without connecting.
enum class Entry { found, missing, unreadable };

Entry known_hosts_entry(const std::filesystem::path& file, const std::string& host, int port) {
  if (!libssh::load()) return Entry::unreadable;
  std::unique_ptr<std::remove_pointer_t<ssh_session>, SessionDeleter> session(ssh_new());
  if (!session) return Entry::unreadable;
  int no = 0;
  const unsigned int p = static_cast<unsigned int>(port);
  const std::string path = file.string();
  if (ssh_options_set(session.get(), SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
      ssh_options_set(session.get(), SSH_OPTIONS_HOST, host.c_str()) < 0 ||
      ssh_options_set(session.get(), SSH_OPTIONS_PORT, &p) < 0 ||
      ssh_options_set(session.get(), SSH_OPTIONS_KNOWNHOSTS, path.c_str()) < 0 ||
      ssh_options_set(session.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0) {
    return Entry::unreadable;
  }
  switch (ssh_session_has_known_hosts_entry(session.get())) {
    case SSH_KNOWN_HOSTS_OK:
      return Entry::found;
    case SSH_KNOWN_HOSTS_ERROR:
      return Entry::unreadable;
    default:
      return Entry::missing;
  }
}

}  // namespace

std::optional<std::string> identity_file_problem(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) {
    return fmt::format("{} does not exist (create a key without passphrase: ssh-keygen -t ed25519 -N '' -f {}, then "
                       "add {}.pub to the box's authorized_keys)",
                       path.string(), path.string(), path.string());
  }
  if (std::filesystem::is_directory(status)) return fmt::format("{} is a directory, not a private key file", path.string());
  if (!std::filesystem::is_regular_file(status)) return fmt::format("{} is not a regular file", path.string());
  if (::access(path.c_str(), R_OK) != 0) {
    return fmt::format("{} is not readable: {}", path.string(), std::strerror(errno));
  }
  if (std::filesystem::file_size(path, ec) > 64 * 1024) return fmt::format("{} is too large for a key", path.string());
  auto text = read_file(path);
  if (!text) return text.error().message;
  const std::string_view head = trim(*text);
  const bool public_key = head.starts_with("ssh-") || head.starts_with("ecdsa-") || head.starts_with("sk-") ||
                          head.starts_with("---- BEGIN SSH2 PUBLIC KEY");
  if (public_key || (path.extension() == ".pub" && head.find("PRIVATE KEY") == std::string_view::npos)) {
    auto priv = path;
    priv.replace_extension();
    return fmt::format("{} is a public key; ssh_key takes the private key{}", path.string(),
                       path.extension() == ".pub" ? fmt::format(" ({})", priv.string()) : std::string());
  }
  if (is_encrypted_key(*text)) {
    return fmt::format("{} is protected by a passphrase, and hozo runs unattended with nobody to type it: use a key "
                       "without passphrase (ssh-keygen -p -N '' -f {} removes it, or make a dedicated one)",
                       path.string(), path.string());
  }
  ssh_key key = nullptr;
  if (auto loaded = libssh::load(); !loaded) return loaded.error().message;
  if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK || key == nullptr) {
    return fmt::format("{} is not a private key libssh can read (or it is protected by a passphrase)", path.string());
  }
  ssh_key_free(key);
  return std::nullopt;
}

std::vector<ConfigIssue> check_ssh_files(const Job& job) {
  std::vector<ConfigIssue> out;
  const std::string base = fmt::format("jobs[{}]", job.index);
  const auto add = [&](std::string key, std::string message, Severity severity) {
    out.push_back({job.where, fmt::format("{}.{}", base, key), std::move(message), severity, job.name});
  };
  const auto options = ssh_options_for(job);
  if (!job.ssh_key.empty()) {
    if (auto problem = identity_file_problem(expand_home(job.ssh_key))) add("ssh_key", *problem, Severity::error);
  } else if (auto found = resolve_identity_file(options); !found) {
    const auto dir = expand_home("~/.ssh");
    add("ssh_key",
        fmt::format("not set, and none of the default keys {}/id_ed25519, id_ecdsa, id_rsa exists (the run would "
                    "use {}/id_ed25519): set ssh_key, or create one with ssh-keygen -t ed25519 -N '' -f {}/id_ed25519",
                    dir.string(), dir.string(), dir.string()),
        Severity::error);
  } else if (auto problem = identity_file_problem(*found)) {
    add("ssh_key", fmt::format("not set; the default key {}", *problem), Severity::error);
  }
  if (job.wol_relay && !job.wol_relay->ssh_key.empty()) {
    if (auto problem = identity_file_problem(expand_home(job.wol_relay->ssh_key))) {
      add("wol_relay.ssh_key", *problem, Severity::error);
    }
  }
  if (job.host_key_policy == HostKeyPolicy::strict) {
    const auto& file = options.known_hosts;
    std::error_code ec;
    const std::string pin = fmt::format("pin the box's key with `hozo hostkey {} --accept` (after comparing its "
                                        "fingerprint with the box's), or set host_key_policy: accept-new",
                                        job.name);
    if (!std::filesystem::exists(file, ec)) {
      add("known_hosts",
          fmt::format("host_key_policy is strict and the known_hosts file {} does not exist: runs fail until you {}",
                      file.string(), pin),
          Severity::warning);
    } else {
      switch (known_hosts_entry(file, job.target_host, job.ssh_port)) {
        case Entry::found:
          break;
        case Entry::missing:
          add("known_hosts",
              fmt::format("host_key_policy is strict and {} has no key for {}{}: runs fail until you {}", file.string(),
                          job.target_host, job.ssh_port == 22 ? "" : fmt::format(" port {}", job.ssh_port), pin),
              Severity::warning);
          break;
        case Entry::unreadable:
          add("known_hosts", fmt::format("cannot read the known_hosts file {}", file.string()), Severity::warning);
          break;
      }
    }
  }
  return out;
}

}  // namespace hozo
