#pragma once
// What a syncoid run moves, read from its output while it runs: syncoid's size estimate lines and
// the byte counts of pv, which syncoid puts into its pipe when pv is installed locally.
//
// syncoid (2.1.0 to 2.3.0) prints one line before each zfs send, e.g.
//   INFO: Sending oldest full snapshot pool/data@snap (~ 1.2 MB) to new target filesystem:      (2.1/2.2)
//   INFO: Sending oldest full snapshot pool/data@snap to new target filesystem u@h:t (~ 42 KB):   (2.3)
//   Sending incremental pool/data@a ... b (~ 4 KB):
//   INFO: Updating new target filesystem with incremental pool/data@a ... b (~ UNKNOWN):
//   Resuming interrupted zfs send/receive from pool/data to t (~ 3.1 MB remaining):
// ("UNKNOWN" when `zfs send -nvP` gives nothing; KB/MB/GB are syncoid's 1024-based units).
// pv draws nothing when its stderr is not a terminal, so hozo passes --pv-options=-n -b -i 1
// (pv_options_for_hozo): one decimal byte count per line, the last one the total of that send.
// A user's own --pv-options in syncoid.extra_args wins; pv's default display (-b: "1.91MiB ...",
// updates separated by \r, which hozo's line reader splits on) is read too.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hozo {

/// The pv options hozo gives syncoid: numeric byte counts, one line a second.
inline constexpr std::string_view kHozoPvOptions = "-n -b -i 1";

/// syncoid's announcement of one zfs send: the source dataset and its size estimate.
struct SendAnnouncement {
  std::string dataset;               ///< source dataset (before '@' or '#'); empty when not recognised
  std::int64_t estimated_bytes = -1;  ///< -1 = "UNKNOWN"
};

/// Parses a syncoid line announcing a send ("Sending ...", "Updating ...", "Resuming ...",
/// "--no-stream selected; sending ..." with "(~ SIZE)"); nullopt for any other line.
std::optional<SendAnnouncement> parse_send_announcement(std::string_view line);

/// syncoid's readablebytes(): "4 KB", "1.2 MB", "3.0 GB" (1024-based); nullopt for "UNKNOWN" or junk.
std::optional<std::int64_t> parse_syncoid_size(std::string_view text);

/// A pv byte count: a line of digits (pv -n -b), or the leading size of pv's default display
/// ("1.91MiB 0:00:01 [1.76MiB/s] ..." or "512 B ..."); nullopt otherwise.
std::optional<std::int64_t> parse_pv_bytes(std::string_view line);


/// Where DatasetTransfer::bytes came from.
enum class BytesSource { none, pv, estimate };
/// "none", "pv", "estimate".
std::string_view to_string(BytesSource source) noexcept;

/// Follows the output of one syncoid run (one dataset pair, possibly several sends when recursive).
class TransferMeter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  /// Feeds one line of syncoid's stdout or stderr; returns true when it carried a figure
  /// (an announcement or a pv count).
  bool feed(std::string_view line, TimePoint now);

  /// Bytes sent so far: pv's counts of every send, else the estimates of the sends announced.
  [[nodiscard]] std::int64_t bytes() const noexcept;
  /// Where bytes() comes from.
  [[nodiscard]] BytesSource source() const noexcept;
  /// Sum of syncoid's estimates; -1 when no send had one.
  [[nodiscard]] std::int64_t estimated_bytes() const noexcept { return estimated_any_ ? estimated_ : -1; }
  /// Dataset of the send in progress (empty before the first announcement).
  [[nodiscard]] const std::string& dataset() const noexcept { return dataset_; }
  /// pv's count of the send in progress.
  [[nodiscard]] std::int64_t current_done() const noexcept { return current_; }
  /// Estimate of the send in progress; -1 = unknown.
  [[nodiscard]] std::int64_t current_total() const noexcept { return current_total_; }
  /// Average rate of the send in progress (bytes/s from its announcement to the last pv figure; 0 = not known yet).
  [[nodiscard]] double rate() const noexcept;
  /// Seconds left of the send in progress at rate(); -1 when unknown.
  [[nodiscard]] double eta_seconds() const noexcept;
  /// Whether any pv count was seen.
  [[nodiscard]] bool pv_seen() const noexcept { return pv_seen_; }
  /// Number of sends announced.
  [[nodiscard]] int sends() const noexcept { return sends_; }

 private:
  void close_send();

  std::int64_t done_pv_ = 0;        // pv totals of the finished sends
  std::int64_t current_ = 0;
  std::int64_t current_total_ = -1;
  std::int64_t estimated_ = 0;
  bool estimated_any_ = false;
  bool pv_seen_ = false;
  bool current_pv_ = false;
  int sends_ = 0;
  std::string dataset_;
  std::optional<TimePoint> send_start_;  // announcement (else first pv figure) of the send in progress
  std::int64_t start_bytes_ = 0;         // pv's count at send_start_ (0 after an announcement)
  std::optional<TimePoint> last_figure_;
};

}  // namespace hozo
