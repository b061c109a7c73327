#include "config_values.hpp"

#include <arpa/inet.h>
#include <algorithm>

#include <fmt/format.h>

#include "hozo/schedule.hpp"
#include "hozo/util/strings.hpp"

namespace hozo::config_detail {

// ---------------------------------------------------------------------------------------------
// Small value checks. Each returns an error message, or nullopt when the value is fine.
// ---------------------------------------------------------------------------------------------

/// A value for an error message: quoted, control characters escaped, shortened.
std::string show(std::string_view v) {
  constexpr std::size_t kMax = 80;
  if (v.size() > kMax) return fmt::format("\"{}...\"", printable(v.substr(0, kMax)));
  return fmt::format("\"{}\"", printable(v));
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool all_of(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return is_alnum(c) || extra.find(c) != std::string_view::npos; });
}

std::optional<std::string> check_job_name(std::string_view v) {
  if (!v.empty() && v.size() <= 64 && is_alnum(v.front()) && all_of(v, "_.-")) return std::nullopt;
  return fmt::format("invalid job name {} (1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit)",
                     show(v));
}

/// "AA-bb-cc-dd-ee-ff" -> "aa:bb:cc:dd:ee:ff"; nullopt when not a MAC-style 6-byte hex string.
std::optional<std::string> normalize_mac(std::string_view v) {
  if (v.size() != 17) return std::nullopt;
  const char sep = v[2];
  if (sep != ':' && sep != '-') return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i % 3 == 2) {
      if (v[i] != sep) return std::nullopt;
      out += ':';
    } else {
      if (!is_hex(v[i])) return std::nullopt;
      out += static_cast<char>(v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 'a' : v[i]);
    }
  }
  return out;
}

std::optional<std::string> check_mac(std::string_view v) {
  const auto mac = normalize_mac(v);
  if (!mac) return fmt::format("invalid MAC {} (expected six hex bytes like aa:bb:cc:dd:ee:ff)", show(v));
  if (*mac == "00:00:00:00:00:00") return fmt::format("invalid MAC {}: all zeros is no network card's address", show(v));
  if (*mac == "ff:ff:ff:ff:ff:ff") {
    return fmt::format("invalid MAC {}: that is the broadcast address, not the box's network card", show(v));
  }
  const int first = std::stoi(mac->substr(0, 2), nullptr, 16);
  if ((first & 1) != 0) {
    return fmt::format("invalid MAC {}: a multicast address (the first byte is odd); a network card's MAC has an "
                       "even first byte",
                       show(v));
  }
  return std::nullopt;
}

std::optional<std::string> check_secureon(std::string_view v) {
  if (normalize_mac(v)) return std::nullopt;
  return std::string("invalid SecureOn password (expected six hex bytes like aa:bb:cc:dd:ee:ff)");
}

std::optional<std::string> check_dataset(std::string_view v) {
  const auto bad = [&](std::string_view why) { return fmt::format("invalid dataset name {}: {}", show(v), why); };
  if (v.empty()) return bad("empty");
  if (v.size() > 255) return bad("longer than 255 characters");
  if (v.find_first_of("@#") != std::string_view::npos) return bad("snapshots/bookmarks (@, #) are not datasets");
  if (v.front() == '-') return bad("must not start with '-'");
  if (v.front() == '/' || v.back() == '/') return bad("must not start or end with '/'");
  for (const char c : v) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != ':' && c != '-' && c != '/') {
      return bad(fmt::format("character {} is not allowed (only A-Z a-z 0-9 _ . : - and /)", show({&c, 1})));
    }
  }
  const auto parts = split(v, '/');
  for (const auto part : parts) {
    if (part.empty()) return bad("empty component ('//')");
    if (part == "." || part == "..") return bad("'.' and '..' components are not allowed");
  }
  const auto pool = parts.front();
  if (!((pool.front() >= 'a' && pool.front() <= 'z') || (pool.front() >= 'A' && pool.front() <= 'Z'))) {
    return bad("the pool name must begin with a letter");
  }
  for (const std::string_view reserved : {"mirror", "raidz", "draid", "spare", "log"}) {
    if (pool.starts_with(reserved) && (pool == reserved || reserved != "log")) {
      return bad(fmt::format("\"{}\" is a reserved pool name", reserved));
    }
  }
  return std::nullopt;
}

bool is_hostname(std::string_view v) {
  if (v.empty() || v.size() > 253) return false;
  for (const auto label : split(v, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' || !all_of(label, "-")) {
      return false;
    }
  }
  return true;
}

bool is_ip_literal(std::string_view v) {
  const std::string s(v);
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

/// Only digits and dots, with at least one dot: meant as an IPv4 address, never a host name.
bool looks_like_ipv4(std::string_view v) {
  return v.find('.') != std::string_view::npos &&
         std::all_of(v.begin(), v.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

std::optional<std::string> check_host(std::string_view v) {
  if (looks_like_ipv4(v)) {
    const std::string s(v);
    unsigned char buf[4];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) return std::nullopt;
    return fmt::format("invalid IPv4 address {} (four numbers 0-255 separated by dots)", show(v));
  }
  if (is_ip_literal(v) || is_hostname(v)) return std::nullopt;
  if (v.find('@') != std::string_view::npos) {
    return fmt::format("invalid host {} (put the user in ssh_user, not in the host)", show(v));
  }
  return fmt::format("invalid host {} (expected a host name or an IPv4/IPv6 address)", show(v));
}

std::optional<std::string> check_optional_host(std::string_view v) { return v.empty() ? std::nullopt : check_host(v); }

std::optional<std::string> check_user(std::string_view v) {
  if (!v.empty() && v.size() <= 32 && ((v.front() >= 'a' && v.front() <= 'z') || v.front() == '_')) {
    if (std::all_of(v.begin(), v.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        })) {
      return std::nullopt;
    }
  }
  return fmt::format("invalid user name {} (expected [a-z_][a-z0-9_.-]*)", show(v));
}

/// A local file path: safe characters only, no '..' tricks needed or allowed.
std::optional<std::string> check_path(std::string_view v) {
  if (v.empty()) return std::string("empty path");
  if (v.size() > 4096) return std::string("path too long");
  if (!all_of(v, "/._+,:@%=~-")) {
    return fmt::format("invalid path {} (allowed: A-Z a-z 0-9 / . _ + , : @ % = ~ -)", show(v));
  }
  if (v.front() == '-') return fmt::format("invalid path {} (must not start with '-')", show(v));
  return std::nullopt;
}

/// An absolute path or one starting with "~/".
std::optional<std::string> check_abs_path(std::string_view v) {
  if (auto err = check_path(v)) return err;
  if (v.front() != '/' && !v.starts_with("~/"))
    return fmt::format("path {} must be absolute or start with ~/", show(v));
  return std::nullopt;
}

/// A directory on the box (zpool import -d): absolute, no '~' (the box's home is not ours).
std::optional<std::string> check_abs_dir(std::string_view v) {
  if (auto err = check_path(v)) return err;
  if (v.front() != '/') return fmt::format("directory {} must be absolute", show(v));
  return std::nullopt;
}

std::optional<std::string> check_optional_abs_path(std::string_view v) {
  return v.empty() ? std::nullopt : check_abs_path(v);
}

std::optional<std::string> check_device(std::string_view v) {
  if (v.empty()) return std::nullopt;
  if (!v.starts_with("/dev/") || v.size() == 5 || !all_of(v, "/._+,:@=-")) {
    return fmt::format("invalid device {} (expected a path like /dev/disk/by-id/...)", show(v));
  }
  for (const auto part : split(v, '/')) {
    if (part == "..") return fmt::format("invalid device {} ('..' is not allowed)", show(v));
  }
  return std::nullopt;
}

std::optional<std::string> check_schedule(std::string_view v) {
  auto parsed = parse_schedule(v);
  if (parsed) return std::nullopt;
  return fmt::format("invalid schedule {}: {}", show(v), parsed.error().message);
}

std::optional<std::string> check_url(std::string_view v) {
  const bool scheme = v.starts_with("http://") || v.starts_with("https://");
  const bool clean = std::none_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>' || c == '\\';
  });
  if (scheme && clean && v.size() > 8 && v.size() <= 2048) return std::nullopt;
  return fmt::format("invalid URL {} (expected http:// or https://...)", show(v));
}

std::optional<std::string> check_optional_url(std::string_view v) { return v.empty() ? std::nullopt : check_url(v); }

std::optional<std::string> check_interface(std::string_view v) {
  if (v.empty() || (v.size() <= 15 && all_of(v, "_.:@-") && v.front() != '-')) return std::nullopt;
  return fmt::format("invalid network interface name {}", show(v));
}

std::optional<std::string> check_ntfy_topic(std::string_view v) {
  if (v.empty() || (v.size() <= 64 && all_of(v, "_-"))) return std::nullopt;
  return fmt::format("invalid ntfy topic {} (1-64 characters of A-Z a-z 0-9 _ -)", show(v));
}

std::optional<std::string> check_token(std::string_view v) {
  if (std::none_of(v.begin(), v.end(), [](char c) { return c == ' ' || c == '\t'; })) return std::nullopt;
  return std::string("must not contain blanks");
}

std::optional<std::string> check_pushover_key(std::string_view v) {
  if (v.size() <= 64 && all_of(v, "")) return std::nullopt;
  return std::string("invalid Pushover key (expected letters and digits)");
}

std::optional<std::string> check_email(std::string_view v) {
  const auto at = v.find('@');
  if (at != std::string_view::npos && at > 0 && v.size() <= 254 && all_of(v.substr(0, at), "._%+-") &&
      is_hostname(v.substr(at + 1))) {
    return std::nullopt;
  }
  return fmt::format("invalid e-mail address {}", show(v));
}

std::optional<std::string> check_bwlimit(std::string_view v) {
  std::size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  bool ok = i > 0;
  if (ok && i < v.size() && v[i] == '.') {
    const auto start = ++i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    ok = i > start;
  }
  if (ok && i < v.size() && std::string_view("kKmMgGtT").find(v[i]) != std::string_view::npos) ++i;
  if ((ok && i == v.size()) || v.empty()) return std::nullopt;
  return fmt::format("invalid bandwidth limit {} (expected e.g. 500k, 10M, 1.5G)", show(v));
}

std::optional<std::string> check_identifier(std::string_view v) {
  if (v.empty() || (v.size() <= 64 && all_of(v, "_:.-"))) return std::nullopt;
  return fmt::format("invalid syncoid identifier {} (only A-Z a-z 0-9 _ : . -)", show(v));
}

const std::vector<std::string>& compress_methods() {
  static const std::vector<std::string> methods{"gzip",        "pigz-fast", "pigz-slow",   "zstd-fast",
                                                "zstdmt-fast", "zstd-slow", "zstdmt-slow", "lz4",
                                                "xz",          "lzo",       "none"};
  return methods;
}

std::optional<std::string> check_compress(std::string_view v) {
  if (v.empty()) return std::nullopt;
  const auto& m = compress_methods();
  if (std::find(m.begin(), m.end(), v) != m.end()) return std::nullopt;
  std::string msg = fmt::format("unknown compression {} (one of {})", show(v), join(m, ", "));
  if (const auto hint = did_you_mean(v, m)) msg += fmt::format("; did you mean \"{}\"?", *hint);
  return msg;
}

/// syncoid's location: an absolute path or a bare command name looked up in $PATH.
std::optional<std::string> check_program(std::string_view v) {
  if (!v.empty() && v.front() != '-' && all_of(v, "._+-")) return std::nullopt;
  if (!v.empty() && v.front() == '/') return check_path(v);
  return fmt::format("invalid program {} (an absolute path or a command name)", show(v));
}

std::optional<std::string> check_nonempty(std::string_view v) {
  if (trim(v).empty()) return std::string("must not be empty");
  return std::nullopt;
}

}  // namespace hozo::config_detail
