#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "hozo/wol.hpp"

using namespace hozo;

namespace {

constexpr MacAddress kMac{0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc};

/// A UDP socket bound to 127.0.0.1 on an ephemeral port.
class UdpReceiver {
 public:
  UdpReceiver() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return;
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  UdpReceiver(const UdpReceiver&) = delete;
  UdpReceiver& operator=(const UdpReceiver&) = delete;
  ~UdpReceiver() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int port() const { return port_; }

  /// Receives datagrams until `expected` arrived and then `linger_ms` more passed without one,
  /// or `wait_ms` passed without one.
  std::vector<std::vector<std::uint8_t>> receive_all(std::size_t expected, int wait_ms = 1000, int linger_ms = 50) {
    std::vector<std::vector<std::uint8_t>> out;
    for (;;) {
      const int wait = out.size() >= expected ? linger_ms : wait_ms;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, wait) <= 0) break;
      std::vector<std::uint8_t> buf(2048);
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) break;
      buf.resize(static_cast<std::size_t>(n));
      out.push_back(std::move(buf));
    }
    return out;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::vector<std::uint8_t> expected_packet(const MacAddress& mac) {
  std::vector<std::uint8_t> p(6, 0xFF);
  for (int i = 0; i < 16; ++i) p.insert(p.end(), mac.begin(), mac.end());
  return p;
}

}  // namespace

TEST(WolMac, AcceptsColonAndDashCaseInsensitive) {
  for (const char* text : {"00:11:22:aa:bb:cc", "00-11-22-AA-BB-CC", "00:11:22:Aa:bB:cc"}) {
    const auto mac = parse_mac(text);
    ASSERT_TRUE(mac.ok()) << text << ": " << mac.error().message;
    EXPECT_EQ(*mac, kMac) << text;
    EXPECT_EQ(format_mac(*mac), "00:11:22:aa:bb:cc");
  }
}

TEST(WolMac, RejectsMalformed) {
  for (const char* text : {"", "zz:11:22:aa:bb:cc", "00:11:22:aa:bb", "00:11:22:aa:bb:cc:dd", "00:11-22:aa:bb:cc",
                           "00-11-22-aa-bb:cc", "0011.22aa.bbcc", "001122aabbcc", "0:11:22:aa:bb:cc",
                           " 00:11:22:aa:bb:cc", "00:11:22:aa:bb:cc ", "00:11:22:aa:bb:c", "00_11_22_aa_bb_cc",
                           "00:11:22:aa:bb:gg"}) {
    const auto mac = parse_mac(text);
    EXPECT_FALSE(mac.ok()) << "accepted \"" << text << "\"";
    if (!mac.ok()) {
      EXPECT_NE(mac.error().message.find("invalid MAC address"), std::string::npos);
      EXPECT_NE(mac.error().message.find("aa:bb:cc:dd:ee:ff"), std::string::npos);
    }
  }
  const auto bad = parse_mac("zz:11:22:aa:bb:cc");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("\"zz:11:22:aa:bb:cc\""), std::string::npos) << bad.error().message;
}

TEST(WolMac, SecureOnPasswordParsesAndNeverEchoes) {
  const auto pw = parse_secureon_password("01-23-45-67-89-AB");
  ASSERT_TRUE(pw.ok());
  EXPECT_EQ(*pw, (SecureOnPassword{0x01, 0x23, 0x45, 0x67, 0x89, 0xab}));
  const auto bad = parse_secureon_password("hunter2hunter2");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.find("hunter2"), std::string::npos);
}

TEST(WolPacket, ByteExactWithoutPassword) {
  const auto packet = build_magic_packet(kMac);
  ASSERT_EQ(packet.size(), 102u);
  EXPECT_EQ(packet, expected_packet(kMac));
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(packet[i], 0xFF);
  for (std::size_t rep = 0; rep < 16; ++rep) {
    for (std::size_t j = 0; j < 6; ++j) EXPECT_EQ(packet[6 + rep * 6 + j], kMac[j]) << rep << "/" << j;
  }
}

TEST(WolPacket, ByteExactWithPassword) {
  const SecureOnPassword pw{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01};
  const auto packet = build_magic_packet(kMac, pw);
  ASSERT_EQ(packet.size(), 108u);
  auto expected = expected_packet(kMac);
  expected.insert(expected.end(), pw.begin(), pw.end());
  EXPECT_EQ(packet, expected);
}

TEST(WolSend, DeliversByteExactPacketsToLoopback) {
  UdpReceiver rx;
  ASSERT_GT(rx.port(), 0);
  WolOptions options;
  options.mac = kMac;
  options.broadcast = "127.0.0.1";
  options.port = rx.port();
  options.repeat = 4;
  options.spacing = Millis(5);
  const auto sent = send_magic_packet(options);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  EXPECT_EQ(*sent, 4);
  const auto packets = rx.receive_all(4);
  ASSERT_EQ(packets.size(), 4u);
  for (const auto& p : packets) EXPECT_EQ(p, expected_packet(kMac));
}

TEST(WolSend, PasswordAndHostNameAndSinglePacket) {
  UdpReceiver rx;
  ASSERT_GT(rx.port(), 0);
  WolOptions options;
  options.mac = kMac;
  options.password = SecureOnPassword{1, 2, 3, 4, 5, 6};
  options.broadcast = "localhost";  // resolved (IPv4 only)
  options.port = rx.port();
  options.repeat = 1;
  const auto sent = send_magic_packet(options);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  EXPECT_EQ(*sent, 1);
  const auto packets = rx.receive_all(1);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].size(), 108u);
  EXPECT_EQ(packets[0], build_magic_packet(kMac, options.password));
}

TEST(WolSend, ErrorsNameTheAddressOrInterface) {
  WolOptions options;
  options.mac = kMac;
  options.broadcast = "no-such-host.invalid";
  auto r = send_magic_packet(options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no-such-host.invalid"), std::string::npos) << r.error().message;

  options.broadcast = "127.0.0.1";
  options.interface_name = "hozo-nonexistent0";
  r = send_magic_packet(options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("hozo-nonexistent0"), std::string::npos) << r.error().message;

  options.interface_name.clear();
  options.port = 70000;
  EXPECT_FALSE(send_magic_packet(options).ok());
  options.port = 9;
  options.repeat = 0;
  EXPECT_FALSE(send_magic_packet(options).ok());
}

TEST(WolRelayArgv, SubstitutesPlaceholders) {
  WolRelay relay;
  relay.host = "pi.lan";
  const auto argv = relay_wake_argv(relay, kMac, "192.168.1.255", 9);
  ASSERT_TRUE(argv.ok()) << argv.error().message;
  EXPECT_EQ(*argv, (std::vector<std::string>{"wakeonlan", "-i", "192.168.1.255", "-p", "9", "00:11:22:aa:bb:cc"}));

  relay.command = {"etherwake", "-b", "--target={mac}@{broadcast}:{port}", "{unknown}", "{mac"};
  const auto custom = relay_wake_argv(relay, kMac, "10.0.0.255", 7);
  ASSERT_TRUE(custom.ok());
  EXPECT_EQ(*custom, (std::vector<std::string>{"etherwake", "-b", "--target=00:11:22:aa:bb:cc@10.0.0.255:7",
                                               "{unknown}", "{mac"}));
}

TEST(WolRelayArgv, RejectsNulNewlineAndEmpty) {
  WolRelay relay;
  relay.host = "pi.lan";
  relay.command = {"wakeonlan", "{broadcast}"};
  EXPECT_FALSE(relay_wake_argv(relay, kMac, "1.2.3.4\nreboot", 9).ok());
  relay.command = {"wakeonlan", std::string("a\0b", 3)};
  EXPECT_FALSE(relay_wake_argv(relay, kMac, "1.2.3.4", 9).ok());
  relay.command.clear();
  EXPECT_FALSE(relay_wake_argv(relay, kMac, "1.2.3.4", 9).ok());
}
