// Guards around yaml-cpp 0.7's parse of a whole config stream: a node-less first pass that bounds
// the parser (it never finishes some malformed streams), the test that lets plain one-document
// text skip that pass, and YAML merge keys, which yaml-cpp 0.7 does not resolve.
#include "config_yaml.hpp"

#include <cctype>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>

#include "hozo/util/strings.hpp"

namespace hozo::config_detail {

namespace {

/// Thrown by ParseWatch to stop a parse that does not make progress.
struct RunawayParse {
  YAML::Mark mark;
};

/// Watches the parser's events without building nodes. yaml-cpp 0.7 never finishes some
/// malformed streams: a document starting with ',' yields empty documents forever
/// (jbeder/yaml-cpp#1040, fixed upstream after 0.7). So the events are bounded by the input
/// size, and where each document starts is recorded to spot a parser that stands still.
class ParseWatch final : public YAML::EventHandler {
 public:
  explicit ParseWatch(std::size_t max_events) : max_events_(max_events) {}

  /// Where the last document started.
  std::optional<YAML::Mark> document_start;

  void OnDocumentStart(const YAML::Mark& m) override {
    document_start = m;
    tick(m);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { tick(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { tick(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { tick(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    tick(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    tick(m);
  }
  void OnMapEnd() override {}

 private:
  void tick(const YAML::Mark& m) {
    if (++events_ > max_events_) throw RunawayParse{m};
  }
  std::size_t events_ = 0;
  std::size_t max_events_;
};

}  // namespace

/// Parses the stream once without building nodes: syntax errors, empty streams, several
/// documents and runaway parses become issues. True when `text` holds exactly one document.
bool check_stream(const std::string& text, std::vector<YamlProblem>& problems) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  ParseWatch watch(8 * text.size() + 64);
  try {
    if (!parser.HandleNextDocument(watch)) {
      problems.push_back(
          YamlProblem{YAML::Mark::null_mark(), "", "the configuration is empty (expected settings: and jobs:)"});
      return false;
    }
    const auto first = watch.document_start;
    if (parser.HandleNextDocument(watch)) {  // a second document, or a parser standing still
      const auto second = watch.document_start.value_or(YAML::Mark::null_mark());
      if (first && first->pos == second.pos) throw RunawayParse{second};
      problems.push_back(YamlProblem{second, "", "only one YAML document is allowed (remove the second ---)"});
      return false;
    }
  } catch (const RunawayParse& stuck) {
    problems.push_back(
        YamlProblem{stuck.mark, "", "YAML syntax error: the parser makes no progress here (a stray ',' or similar?)"});
    return false;
  }
  return true;
}

/// True when `text` is plainly one document: its first content is a key (a letter, digit or quote,
/// optionally after one leading "---" line) and no later line starts a document or a directive
/// ("---", "...", "%"). Such text cannot hit the parser bugs check_stream guards against, and
/// YAML::Load reads its one document: the second, node-less parse (half of a config load) is
/// skipped. Anything else takes check_stream.
bool plainly_one_document(std::string_view text) {
  bool content = false;  // past the first content line
  bool leading_marker = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.starts_with("---") || line.starts_with("...") || line.starts_with("%")) {
      if (content || leading_marker || !line.starts_with("---") ||
          (line.size() > 3 && line[3] != ' ' && line[3] != '\r')) {
        return false;
      }
      if (const auto rest = trim(line.substr(3)); !rest.empty() && rest.front() != '#') return false;
      leading_marker = true;
      continue;
    }
    if (content) continue;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const char c = line[first];
    if (!(std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '"' || c == '\'')) return false;
    content = true;
  }
  return true;
}

/// Resolves YAML merge keys (`<<: *anchor` or `<<: [*a, *b]`, YAML 1.1), which yaml-cpp 0.7
/// leaves as a plain "<<" key: the merged mappings' entries are added where the mapping does not
/// set the key itself (earlier mappings in a list win). The nodes are shared, so every value keeps
/// its line and column. False (with an issue) when a "<<" value is not a mapping or a list of them.
bool resolve_merge_keys(YAML::Node node, std::vector<YamlProblem>& problems, int depth) {
  if (depth > 64) {
    problems.push_back(
        YamlProblem{node.Mark(), "", "nested too deeply (more than 64 levels of merge keys or collections)"});
    return false;
  }
  if (node.IsSequence()) {
    for (auto element : node) {
      if (!resolve_merge_keys(element, problems, depth + 1)) return false;
    }
    return true;
  }
  if (!node.IsMap()) return true;
  std::optional<YAML::Node> merge_key;
  std::optional<YAML::Node> merge_value;
  for (auto kv : node) {
    if (kv.first.IsScalar() && kv.first.Scalar() == "<<" && kv.first.Tag() != "!" && !merge_key) {
      merge_key.emplace(kv.first);
      merge_value.emplace(kv.second);
    } else if (!resolve_merge_keys(kv.second, problems, depth + 1)) {
      return false;
    }
  }
  if (!merge_key) return true;
  std::vector<YAML::Node> sources;
  if (merge_value->IsMap()) {
    sources.push_back(*merge_value);
  } else if (merge_value->IsSequence()) {
    for (auto element : *merge_value) sources.push_back(element);
  }
  if (sources.empty() || std::any_of(sources.begin(), sources.end(), [](const YAML::Node& n) { return !n.IsMap(); })) {
    problems.push_back(YamlProblem{
        merge_value->Mark(), "<<",
        "a merge key takes a mapping or a list of mappings (e.g. <<: *defaults, with &defaults on a mapping)"});
    return false;
  }
  std::set<std::string> present;
  for (auto kv : node) {
    if (kv.first.IsScalar() && !kv.first.is(*merge_key)) present.insert(kv.first.Scalar());
  }
  node.remove(*merge_key);
  for (auto& source : sources) {
    if (!resolve_merge_keys(source, problems, depth + 1)) return false;
    for (auto kv : source) {
      if (!kv.first.IsScalar() || present.contains(kv.first.Scalar())) continue;
      present.insert(kv.first.Scalar());
      node.force_insert(kv.first, kv.second);
    }
  }
  return true;
}

}  // namespace hozo::config_detail
