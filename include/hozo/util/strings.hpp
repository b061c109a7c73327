#pragma once
// String helpers that know nothing about ZFS or SSH.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hozo {

/// Removes leading and trailing ASCII whitespace.
std::string_view trim(std::string_view s) noexcept;

/// Splits on a single character; keeps empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);

/// Splits text into lines (handles a missing final newline, strips '\r').
std::vector<std::string_view> split_lines(std::string_view s);

/// Joins with a separator.
std::string join(const std::vector<std::string>& parts, std::string_view sep);

/// True when s starts/ends with the given prefix/suffix.
bool starts_with(std::string_view s, std::string_view prefix) noexcept;
bool ends_with(std::string_view s, std::string_view suffix) noexcept;

/// ASCII lower-casing.
std::string to_lower(std::string_view s);

/// Quotes one argument for a POSIX shell (single quotes; ' becomes '\'' ).
/// Used only for the remote command line sent over SSH, which a shell parses.
std::string shell_quote(std::string_view arg);

/// Quotes every argument and joins with spaces: a safe remote command line.
std::string shell_join(const std::vector<std::string>& argv);

/// Parses a non-negative decimal integer; nullopt on any junk or overflow.
std::optional<long long> parse_int(std::string_view s) noexcept;

/// Levenshtein distance, for did-you-mean hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` if it is close enough to be a plausible typo.
std::optional<std::string> did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

/// Makes a string safe to print on one log line: control characters become \xNN.
std::string printable(std::string_view s);

/// A size for people: "512 B", "1.5 KiB", "3.2 GiB"; "?" for a negative (unknown) size.
std::string format_bytes(std::int64_t bytes);

}  // namespace hozo
