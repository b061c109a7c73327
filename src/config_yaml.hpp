#pragma once
// Private to the config module: guards around yaml-cpp's parse of the whole stream (config_yaml.cpp).

#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace hozo::config_detail {

/// A problem of the YAML stream itself: where, the key it concerns ("" or "<<") and what.
struct YamlProblem {
  YAML::Mark mark;
  std::string key;
  std::string message;
};

/// Parses the stream once without building nodes: syntax errors, empty streams, several
/// documents and runaway parses become problems. True when `text` holds exactly one document.
bool check_stream(const std::string& text, std::vector<YamlProblem>& problems);

/// True when `text` is plainly one document (then check_stream can be skipped); see config_yaml.cpp.
bool plainly_one_document(std::string_view text);

/// Resolves YAML merge keys (`<<: *anchor` or `<<: [*a, *b]`, YAML 1.1), which yaml-cpp 0.7
/// leaves as a plain "<<" key. False (with a problem) when a "<<" value is not a mapping or a
/// list of them, or the nesting is too deep.
bool resolve_merge_keys(YAML::Node node, std::vector<YamlProblem>& problems, int depth = 0);

}  // namespace hozo::config_detail
