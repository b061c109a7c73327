#include "hozo/transfer.hpp"

#include <array>
#include <cmath>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// A decimal number at the start of `s` ("12", "1.25"); advances `s` past it.
std::optional<double> take_number(std::string_view& s) {
  std::size_t i = 0;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == 0) return std::nullopt;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    const std::size_t start = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start) return std::nullopt;
  }
  std::string text(s.substr(0, i));
  for (auto& c : text) {
    if (c == ',') c = '.';
  }
  s.remove_prefix(i);
  return std::strtod(text.c_str(), nullptr);
}

std::optional<std::int64_t> scaled(double value, int power) {
  const double bytes = value * std::pow(1024.0, power);
  if (!(bytes >= 0.0) || bytes > 9.0e18) return std::nullopt;
  return static_cast<std::int64_t>(std::llround(bytes));
}

}  // namespace

std::optional<std::int64_t> parse_syncoid_size(std::string_view text) {
  text = trim(text);
  auto value = take_number(text);
  if (!value) return std::nullopt;
  text = trim(text);
  static constexpr std::array<std::string_view, 5> kUnits{"B", "KB", "MB", "GB", "TB"};
  for (std::size_t p = 0; p < kUnits.size(); ++p) {
    if (text == kUnits[p]) return scaled(*value, static_cast<int>(p));
  }
  return std::nullopt;
}

std::optional<SendAnnouncement> parse_send_announcement(std::string_view line) {
  line = trim(line);
  if (line.starts_with("INFO: ")) line.remove_prefix(6);
  const bool known = line.starts_with("Sending ") || line.starts_with("Updating new target filesystem") ||
                     line.starts_with("Resuming interrupted") || line.starts_with("--no-stream selected");
  if (!known) return std::nullopt;
  const auto open = line.rfind("(~ ");
  if (open == std::string_view::npos) return std::nullopt;
  const auto close = line.find(')', open);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view size = line.substr(open + 3, close - open - 3);
  if (size.ends_with(" remaining")) size.remove_suffix(10);
  SendAnnouncement a;
  if (const auto bytes = parse_syncoid_size(size)) a.estimated_bytes = *bytes;
  // The source: the first word holding '@' or '#' ("pool/fs@snap", 2.3.0 may prefix "host:"),
  // else the word after "from " (a resumed send names datasets only).
  for (const auto word : split(line.substr(0, open), ' ')) {
    const auto mark = word.find_first_of("@#");
    if (mark == std::string_view::npos || mark == 0) continue;
    std::string_view ds = word.substr(0, mark);
    if (const auto colon = ds.rfind(':'); colon != std::string_view::npos) ds.remove_prefix(colon + 1);
    a.dataset = std::string(ds);
    break;
  }
  if (a.dataset.empty()) {
    if (const auto from = line.find(" from "); from != std::string_view::npos) {
      auto rest = line.substr(from + 6);
      a.dataset = std::string(rest.substr(0, rest.find(' ')));
    }
  }
  return a;
}

std::optional<std::int64_t> parse_pv_bytes(std::string_view line) {
  line = trim(line);
  if (line.empty()) return std::nullopt;
  // pv -n -b: the count alone ("-t" adds the elapsed seconds in front: take the last word).
  if (line.find_first_not_of("0123456789. ") == std::string_view::npos) {
    const auto last = line.substr(line.rfind(' ') == std::string_view::npos ? 0 : line.rfind(' ') + 1);
    if (last.empty() || last.find('.') != std::string_view::npos) return std::nullopt;
    const auto n = parse_int(last);
    if (!n || *n < 0) return std::nullopt;
    return static_cast<std::int64_t>(*n);
  }
  // pv's display: "1.91MiB 0:00:01 [1.76MiB/s] [===>  ] 66% ETA 0:00:00" or "512 B 0:00:01 ..."
  std::string_view s = line;
  const auto value = take_number(s);
  if (!value) return std::nullopt;
  if (s.starts_with(' ')) s.remove_prefix(1);
  static constexpr std::array<std::string_view, 6> kUnits{"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  for (std::size_t p = kUnits.size(); p-- > 0;) {
    const auto unit = kUnits[p];
    if (s.starts_with(unit) && (s.size() == unit.size() || s[unit.size()] == ' ')) {
      // Only a pv line: the size is followed by the elapsed time, a rate in brackets, or nothing.
      const auto rest = trim(s.substr(unit.size()));
      if (!rest.empty() && !is_digit(rest.front()) && rest.front() != '[' && rest.front() != '<') return std::nullopt;
      return scaled(*value, static_cast<int>(p));
    }
  }
  return std::nullopt;
}

std::string_view to_string(BytesSource source) noexcept {
  switch (source) {
    case BytesSource::none:
      return "none";
    case BytesSource::pv:
      return "pv";
    case BytesSource::estimate:
      return "estimate";
  }
  return "none";
}

void TransferMeter::close_send() {
  if (sends_ == 0 && !current_pv_) return;
  done_pv_ += current_;
  current_ = 0;
  current_total_ = -1;
  current_pv_ = false;
  send_start_.reset();
  start_bytes_ = 0;
  last_figure_.reset();
}

bool TransferMeter::feed(std::string_view line, TimePoint now) {
  if (auto a = parse_send_announcement(line)) {
    close_send();
    ++sends_;
    dataset_ = std::move(a->dataset);
    current_total_ = a->estimated_bytes;
    if (a->estimated_bytes >= 0) {
      estimated_ += a->estimated_bytes;
      estimated_any_ = true;
    }
    send_start_ = now;
    return true;
  }
  const auto n = parse_pv_bytes(line);
  if (!n) return false;
  // A count below the last one is a new pv (a send syncoid did not announce, e.g. a retry).
  if (current_pv_ && *n < current_) {
    close_send();  // its size is unknown; the dataset stays
  }
  if (!send_start_) {
    send_start_ = now;
    start_bytes_ = *n;
  }
  current_ = *n;
  current_pv_ = true;
  pv_seen_ = true;
  last_figure_ = now;
  return true;
}

std::int64_t TransferMeter::bytes() const noexcept {
  if (pv_seen_) return done_pv_ + current_;
  if (estimated_any_) return estimated_;
  return 0;
}

BytesSource TransferMeter::source() const noexcept {
  if (pv_seen_) return BytesSource::pv;
  if (estimated_any_) return BytesSource::estimate;
  return BytesSource::none;
}

double TransferMeter::rate() const noexcept {
  if (!send_start_ || !last_figure_) return 0.0;
  const double seconds = std::chrono::duration<double>(*last_figure_ - *send_start_).count();
  if (seconds <= 0.0) return 0.0;
  return static_cast<double>(current_ - start_bytes_) / seconds;
}

double TransferMeter::eta_seconds() const noexcept {
  const double r = rate();
  if (current_total_ < 0 || r <= 0.0) return -1.0;
  const auto left = current_total_ - current_;
  return left <= 0 ? 0.0 : static_cast<double>(left) / r;
}

}  // namespace hozo
