// Parse benchmark for `zfs get -H -p -o name,property,value guid,createtxg` output.
// Prints a table; never asserts on time. Usage: zfs_parse_bench [SNAPSHOTS...]
// (default: 1000 10000 100000 300000). Link against hozo_core.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "hozo/zfs.hpp"

namespace {

// `count` snapshots spread over a dataset and `children` descendants, rows as zfs prints them.
std::string generate(std::size_t count, std::size_t children) {
  std::string out;
  out.reserve(count * 2 * 56);
  const auto dataset = [](std::size_t c) {
    return c == 0 ? std::string("tank/data") : fmt::format("tank/data/child{}", c);
  };
  for (std::size_t c = 0; c <= children; ++c) {
    out += fmt::format("{0}\tguid\t{1}\n{0}\tcreatetxg\t{2}\n", dataset(c), 42 + c, c + 1);
  }
  for (std::size_t i = 0; i < count; ++i) {
    const std::string name = fmt::format("{}@autosnap_{:08}_hourly", dataset(i % (children + 1)), i);
    out += fmt::format("{0}\tguid\t{1}\n{0}\tcreatetxg\t{2}\n", name, 0x9e3779b97f4a7c15ULL ^ (i * 1000003ULL),
                       1000 + i);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(static_cast<std::size_t>(std::strtoull(argv[i], nullptr, 10)));
  if (sizes.empty()) sizes = {1000, 10000, 100000, 300000};

  std::printf("%12s %10s %10s %12s %14s\n", "snapshots", "rows", "MiB", "best ms", "snapshots/s");
  for (const std::size_t count : sizes) {
    const std::string input = generate(count, 9);
    double best_ms = 1e300;
    std::size_t parsed = 0;
    for (int round = 0; round < 5; ++round) {
      const auto start = std::chrono::steady_clock::now();
      auto index = hozo::parse_snapshot_listing(input, "tank/data", hozo::Recursive::yes);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (!index.ok()) {
        std::fprintf(stderr, "parse failed: %s\n", index.error().message.c_str());
        return 1;
      }
      parsed = 0;
      for (const auto& entry : *index) parsed += entry.second.size();
      if (ms < best_ms) best_ms = ms;
    }
    if (parsed != count) {
      std::fprintf(stderr, "expected %zu snapshots, parsed %zu\n", count, parsed);
      return 1;
    }
    std::printf("%12zu %10zu %10.1f %12.2f %14.0f\n", count, 2 * count + 20,
                static_cast<double>(input.size()) / (1024.0 * 1024.0), best_ms,
                static_cast<double>(count) / (best_ms / 1000.0));
  }
  return 0;
}
