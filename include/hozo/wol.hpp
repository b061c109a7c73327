#pragma once
// Wake-on-LAN: MAC parsing, magic packets (optionally with a SecureOn password), sending
// them over UDP broadcast, and the argv for waking through a relay host.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// A 48-bit Ethernet address.
using MacAddress = std::array<std::uint8_t, 6>;

/// A SecureOn password: six bytes written like a MAC address.
using SecureOnPassword = std::array<std::uint8_t, 6>;

/// Parses "aa:bb:cc:dd:ee:ff" or "aa-bb-cc-dd-ee-ff" (hex, case-insensitive, one separator
/// style throughout). Anything else is an Error naming the text and the expected form.
Result<MacAddress> parse_mac(std::string_view text);

/// Lower-case, colon-separated form: "aa:bb:cc:dd:ee:ff".
std::string format_mac(const MacAddress& mac);

/// Parses a SecureOn password written like a MAC address. The Error never echoes the
/// text (it is a secret).
Result<SecureOnPassword> parse_secureon_password(std::string_view text);

/// The magic packet: 6 x 0xFF, then the MAC 16 times (102 bytes), then the password if
/// one is given (108 bytes).
std::vector<std::uint8_t> build_magic_packet(const MacAddress& mac,
                                             const std::optional<SecureOnPassword>& password = std::nullopt);

/// Where and how to send magic packets.
struct WolOptions {
  MacAddress mac{};
  std::optional<SecureOnPassword> password;
  /// IPv4 literal (limited or directed broadcast, or unicast) or a host name (resolved, IPv4 only).
  std::string broadcast = "255.255.255.255";
  int port = 9;
  /// Network interface to send from (SO_BINDTODEVICE); empty = let routing decide.
  std::string interface_name;
  /// How many packets to send (1..100).
  int repeat = 3;
  /// Pause between two packets.
  Millis spacing{100};
};

/// Sends `repeat` magic packets over UDP with SO_BROADCAST. Returns how many were sent;
/// errors name the address/interface and the errno text.
Result<int> send_magic_packet(const WolOptions& options);

/// The argv to run on a WOL relay: `relay.command` with "{mac}", "{broadcast}" and "{port}"
/// substituted (anywhere inside an element). Error when the command is empty or an element
/// would contain NUL or a line break.
Result<std::vector<std::string>> relay_wake_argv(const WolRelay& relay, const MacAddress& mac,
                                                 std::string_view broadcast, int port);

}  // namespace hozo
