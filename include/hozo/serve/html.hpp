#pragma once
// HTML building blocks of the dashboard: escaping for each context a value can land in, and the
// small formatted pieces (ages, byte counts, the inline-SVG sparkline). Every value that reaches
// a page goes through one of these; the pages have no inline script at all.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hozo::serve {

/// Escapes text for an HTML text node or a double- or single-quoted attribute value:
/// & < > " ' become entities; invalid UTF-8 and control characters (other than \n and \t) become U+FFFD.
std::string escape_html(std::string_view text);

/// Percent-encodes one URL path segment or query value (everything but A-Z a-z 0-9 - . _ ~).
std::string url_component(std::string_view text);

/// "5s", "3m 12s", "2h 5m", "4d 3h" (the two largest units).
std::string short_duration(double seconds);

/// "1.5 GiB", "512 B"; "-" for nullopt.
std::string bytes_text(std::optional<std::int64_t> bytes);

/// An inline <svg> polyline of `values` (oldest first) scaled to width × height, with a
/// <title> naming what it shows; an empty string for fewer than two values.
std::string sparkline_svg(const std::vector<double>& values, int width, int height, std::string_view title);

}  // namespace hozo::serve
