#include "hozo/wol.hpp"

#include "hozo/util/fd.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Six hex octets separated by all ':' or all '-'; nullopt otherwise.
std::optional<std::array<std::uint8_t, 6>> parse_six_octets(std::string_view text) noexcept {
  if (text.size() != 17) return std::nullopt;
  const char sep = text[2];
  if (sep != ':' && sep != '-') return std::nullopt;
  std::array<std::uint8_t, 6> bytes{};
  for (std::size_t i = 0; i < 6; ++i) {
    const std::size_t pos = i * 3;
    if (i > 0 && text[pos - 1] != sep) return std::nullopt;
    const int hi = hex_value(text[pos]);
    const int lo = hex_value(text[pos + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return bytes;
}

std::string errno_text(int err) { return std::strerror(err); }


Result<in_addr> resolve_ipv4(const std::string& host) {
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0 || list == nullptr) {
    if (list != nullptr) freeaddrinfo(list);
    return make_error(ExitCode::failure, "wake-on-LAN: cannot resolve broadcast address \"{}\" (IPv4): {}",
                      printable(host), rc == EAI_SYSTEM ? errno_text(errno) : std::string(gai_strerror(rc)));
  }
  addr = reinterpret_cast<const sockaddr_in*>(list->ai_addr)->sin_addr;
  freeaddrinfo(list);
  return addr;
}

}  // namespace

Result<MacAddress> parse_mac(std::string_view text) {
  if (const auto bytes = parse_six_octets(text)) return *bytes;
  return make_error(ExitCode::config,
                    "invalid MAC address \"{}\": expected six hex octets separated by ':' or '-', "
                    "like aa:bb:cc:dd:ee:ff",
                    printable(text));
}

std::string format_mac(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

Result<SecureOnPassword> parse_secureon_password(std::string_view text) {
  if (const auto bytes = parse_six_octets(text)) return *bytes;
  return make_error(ExitCode::config,
                    "invalid SecureOn password: expected six hex bytes separated by ':' or '-', "
                    "like 01:23:45:67:89:ab (value not shown)");
}

std::vector<std::uint8_t> build_magic_packet(const MacAddress& mac, const std::optional<SecureOnPassword>& password) {
  std::vector<std::uint8_t> packet;
  packet.reserve(6 + 16 * 6 + 6);
  packet.insert(packet.end(), 6, 0xFF);
  for (int i = 0; i < 16; ++i) packet.insert(packet.end(), mac.begin(), mac.end());
  if (password) packet.insert(packet.end(), password->begin(), password->end());
  return packet;
}

Result<int> send_magic_packet(const WolOptions& options) {
  if (options.port < 1 || options.port > 65535) {
    return make_error(ExitCode::config, "wake-on-LAN: port {} is out of range 1..65535", options.port);
  }
  if (options.repeat < 1 || options.repeat > 100) {
    return make_error(ExitCode::config, "wake-on-LAN: repeat count {} is out of range 1..100", options.repeat);
  }
  auto addr = resolve_ipv4(options.broadcast);
  if (!addr) return std::move(addr).error();

  char addr_text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &*addr, addr_text, sizeof addr_text);
  const std::string target = options.broadcast == addr_text
                                 ? fmt::format("{}:{}", addr_text, options.port)
                                 : fmt::format("{} ({}):{}", printable(options.broadcast), addr_text, options.port);

  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) {
    return make_error("wake-on-LAN: cannot create UDP socket: {}", errno_text(errno));
  }
  const int one = 1;
  if (::setsockopt(sock.get(), SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) {
    return make_error("wake-on-LAN: cannot enable SO_BROADCAST: {}", errno_text(errno));
  }
  if (!options.interface_name.empty()) {
    if (options.interface_name.size() >= IFNAMSIZ) {
      return make_error(ExitCode::config, "wake-on-LAN: interface name \"{}\" is too long",
                        printable(options.interface_name));
    }
    if (::setsockopt(sock.get(), SOL_SOCKET, SO_BINDTODEVICE, options.interface_name.c_str(),
                     static_cast<socklen_t>(options.interface_name.size() + 1)) != 0) {
      return make_error("wake-on-LAN: cannot bind to interface \"{}\": {}", printable(options.interface_name),
                        errno_text(errno));
    }
  }

  sockaddr_in dest{};
  dest.sin_family = AF_INET;
  dest.sin_port = htons(static_cast<std::uint16_t>(options.port));
  dest.sin_addr = *addr;
  const auto packet = build_magic_packet(options.mac, options.password);

  int sent = 0;
  for (int i = 0; i < options.repeat; ++i) {
    if (i > 0 && options.spacing.count() > 0) std::this_thread::sleep_for(options.spacing);
    ssize_t n = -1;
    do {
      n = ::sendto(sock.get(), packet.data(), packet.size(), 0, reinterpret_cast<const sockaddr*>(&dest),
                   sizeof dest);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      const int err = errno;
      return make_error("wake-on-LAN: sending to {}{} failed after {} packet(s): {}", target,
                        options.interface_name.empty() ? std::string()
                                                       : fmt::format(" via {}", printable(options.interface_name)),
                        sent, errno_text(err));
    }
    if (static_cast<std::size_t>(n) != packet.size()) {
      return make_error("wake-on-LAN: short send to {} ({} of {} bytes)", target, n, packet.size());
    }
    ++sent;
  }
  return sent;
}

Result<std::vector<std::string>> relay_wake_argv(const WolRelay& relay, const MacAddress& mac,
                                                 std::string_view broadcast, int port) {
  if (relay.command.empty()) {
    return make_error(ExitCode::config, "wake-on-LAN relay {}: the command is empty", printable(relay.host));
  }
  const std::string mac_text = format_mac(mac);
  const std::string port_text = std::to_string(port);
  std::vector<std::string> argv;
  argv.reserve(relay.command.size());
  for (const auto& element : relay.command) {
    std::string out;
    std::size_t i = 0;
    while (i < element.size()) {
      if (element[i] == '{') {
        const std::string_view rest = std::string_view(element).substr(i);
        if (starts_with(rest, "{mac}")) {
          out += mac_text;
          i += 5;
          continue;
        }
        if (starts_with(rest, "{broadcast}")) {
          out += broadcast;
          i += 11;
          continue;
        }
        if (starts_with(rest, "{port}")) {
          out += port_text;
          i += 6;
          continue;
        }
      }
      out += element[i++];
    }
    if (out.find_first_of(std::string_view("\0\n\r", 3)) != std::string::npos) {
      return make_error(ExitCode::config,
                        "wake-on-LAN relay {}: command element \"{}\" contains a NUL or line break",
                        printable(relay.host), printable(out));
    }
    argv.push_back(std::move(out));
  }
  return argv;
}

}  // namespace hozo
