// The documentation keeps up with the code: every config key is in man/hozo.yaml.5, every
// subcommand and exit code is in man/hozo.1 and README.md, and both man pages are lint-clean.

#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hozo/config.hpp"

namespace {

const std::string kSourceDir = HOZO_SOURCE_DIR;
const std::string kHozoBin = HOZO_BIN;

std::string read_text(const std::string& relative) {
  std::ifstream in(kSourceDir + "/" + relative, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << relative;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct CommandOutput {
  int status = -1;  ///< exit status, or -1 when the command did not exit normally
  std::string output;  ///< stdout and stderr together
};

CommandOutput run_command(const std::string& command) {
  CommandOutput result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int raw = ::pclose(pipe);
  if (raw != -1 && WIFEXITED(raw)) result.status = WEXITSTATUS(raw);
  return result;
}

bool has_program(const std::string& name) {
  return run_command("command -v " + shell_quote(name) + " >/dev/null").status == 0;
}

// ------------------------------------------------------------------------------ mdoc parsing

/// True for an mdoc macro name used as an argument of another macro ("Ar", "Pq", "Ns", ...).
bool is_macro_word(const std::string& w) {
  static const std::regex macro("^[A-Z][a-z]{1,2}$");
  return std::regex_match(w, macro);
}

bool is_punctuation(const std::string& w) {
  return w == "," || w == "|" || w == ";" || w == "." || w == ":" || w == "(" || w == ")";
}

/// One `.It` line of an mdoc page with where it stands.
struct ManItem {
  std::string section;     ///< text of the enclosing .Sh
  std::string subsection;  ///< words of the enclosing .Ss ("" before the first one in a section)
  std::vector<std::string> cm;  ///< the leading `Cm` words: ".It Cm a , Cm b Pq x" -> {a, b}
  std::vector<std::string> args;  ///< every word after ".It"
  int line = 0;
};

/// The `Cm` words at the start of a macro line's arguments: collected from the first `Cm`
/// until any other macro; "Cm" may repeat and separating punctuation is skipped.
std::vector<std::string> leading_cm_words(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  bool in_cm = false;
  for (const auto& w : args) {
    if (w == "Cm") {
      in_cm = true;
    } else if (is_macro_word(w)) {
      if (in_cm || !out.empty()) break;
    } else if (in_cm && !is_punctuation(w)) {
      out.push_back(w);
    }
  }
  return out;
}

std::vector<ManItem> man_items(const std::string& text) {
  std::vector<ManItem> items;
  std::string section;
  std::string subsection;
  int number = 0;
  for (const auto& line : lines_of(text)) {
    ++number;
    if (line.rfind(".Sh ", 0) == 0) {
      section = line.substr(4);
      subsection.clear();
    } else if (line.rfind(".Ss ", 0) == 0) {
      subsection = line.substr(4);
    } else if (line.rfind(".It", 0) == 0 && (line.size() == 3 || line[3] == ' ')) {
      auto words = words_of(line);
      words.erase(words.begin());
      ManItem item;
      item.section = section;
      item.subsection = subsection;
      item.cm = leading_cm_words(words);
      item.args = std::move(words);
      item.line = number;
      items.push_back(std::move(item));
    }
  }
  return items;
}

/// "datasets[]" -> "datasets".
std::string strip_brackets(std::string s) {
  for (auto pos = s.find("[]"); pos != std::string::npos; pos = s.find("[]")) s.erase(pos, 2);
  return s;
}

/// Whether a .Ss heading names the block `block` as one of its words ("Ss syncoid", "Ss Cm notifications.smtp").
bool subsection_names(const std::string& subsection, const std::string& block) {
  for (const auto& w : words_of(subsection)) {
    if (strip_brackets(w) == block) return true;
  }
  return false;
}

// ------------------------------------------------------------------------------ config keys

// Rule: a top-level key K is documented when some `.It` line of man/hozo.yaml.5 has K among its
// leading `Cm` words (".It Cm K Pq ...", ".It Cm alias , Cm K Pq ..."). A nested key
// "BLOCK.K" ("syncoid.compress", "datasets[].recursive", "notifications.smtp.host") is
// documented when such a `.It` line stands in a `.Ss` whose heading names BLOCK (brackets
// dropped), so "host" under ".Ss wol_relay" does not count for "notifications.smtp.host".
TEST(DocsTest, EveryConfigKeyIsInHozoYaml5) {
  const auto keys = hozo::known_job_keys();
  ASSERT_GT(keys.size(), 40U) << "known_job_keys() looks incomplete";
  const auto items = man_items(read_text("man/hozo.yaml.5"));
  ASSERT_FALSE(items.empty()) << "no .It lines found in man/hozo.yaml.5";
  for (const auto& key : keys) {
    const auto dot = key.rfind('.');
    const std::string last = dot == std::string::npos ? key : key.substr(dot + 1);
    const std::string block = dot == std::string::npos ? std::string() : strip_brackets(key.substr(0, dot));
    const bool found = std::any_of(items.begin(), items.end(), [&](const ManItem& item) {
      if (std::find(item.cm.begin(), item.cm.end(), last) == item.cm.end()) return false;
      return block.empty() || subsection_names(item.subsection, block);
    });
    if (block.empty()) {
      EXPECT_TRUE(found) << "man/hozo.yaml.5 does not document the key \"" << key << "\" (expected a line like "
                         << "\".It Cm " << last << " Pq type\")";
    } else {
      EXPECT_TRUE(found) << "man/hozo.yaml.5 does not document the key \"" << key << "\" (expected \".It Cm "
                         << last << " Pq type\" under \".Ss " << block << "\")";
    }
  }
}

// The reverse: a key documented in the key sections must exist (catches typos and removed keys).
TEST(DocsTest, HozoYaml5DocumentsOnlyKnownKeys) {
  std::set<std::string> known;
  for (const auto& key : hozo::known_job_keys()) {
    const auto dot = key.rfind('.');
    known.insert(dot == std::string::npos ? key : key.substr(dot + 1));
  }
  std::size_t checked = 0;
  for (const auto& item : man_items(read_text("man/hozo.yaml.5"))) {
    if (item.section != "JOB KEYS" && item.section != "NESTED BLOCKS") continue;
    for (const auto& word : item.cm) {
      ++checked;
      EXPECT_TRUE(known.contains(word)) << "man/hozo.yaml.5:" << item.line << ": \"" << word
                                        << "\" is documented as a key but hozo does not accept it";
    }
  }
  EXPECT_GT(checked, 40U) << "the JOB KEYS / NESTED BLOCKS sections of man/hozo.yaml.5 look empty";
}

TEST(DocsTest, HozoYaml5MentionsEveryTopLevelKey) {
  const std::string page = read_text("man/hozo.yaml.5");
  for (const char* key : {"settings", "jobs", "auth"}) {
    EXPECT_NE(page.find(std::string(".It Ic ") + key), std::string::npos) << "top-level key " << key;
  }
}

// ------------------------------------------------------------------------------ subcommands

/// The subcommand names listed in a CLI11 help text ("Subcommands:" / "SUBCOMMANDS:" section).
std::vector<std::string> help_subcommands(const std::string& help) {
  std::vector<std::string> names;
  bool in_section = false;
  for (const auto& line : lines_of(help)) {
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.rfind("subcommands:", 0) == 0) {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    const auto words = words_of(line);
    if (words.empty() || line.front() != ' ') {  // blank line or the next heading ends the section
      in_section = false;
      continue;
    }
    names.push_back(words.front());
  }
  return names;
}

/// Every runnable command path ("status", "jobs run", "config validate", ...), found by walking
/// `hozo [GROUP...] --help`. A command with subcommands of its own contributes only those.
std::vector<std::string> cli_commands() {
  std::vector<std::string> leaves;
  std::vector<std::string> pending{""};
  while (!pending.empty()) {
    const std::string prefix = pending.back();
    pending.pop_back();
    std::string command = shell_quote(kHozoBin);
    for (const auto& w : words_of(prefix)) command += " " + shell_quote(w);
    const auto help = run_command(command + " --help");
    EXPECT_EQ(help.status, 0) << command << " --help failed:\n" << help.output;
    const auto children = help_subcommands(help.output);
    if (children.empty()) {
      if (!prefix.empty()) leaves.push_back(prefix);
      continue;
    }
    for (const auto& child : children) pending.push_back(prefix.empty() ? child : prefix + " " + child);
  }
  std::sort(leaves.begin(), leaves.end());
  return leaves;
}

TEST(DocsTest, EverySubcommandIsInHozo1AndReadme) {
  const auto commands = cli_commands();
  // The walk itself must work, or the checks below prove nothing.
  for (const char* expected : {"config validate", "config example", "jobs list", "jobs show", "jobs run", "status"}) {
    ASSERT_NE(std::find(commands.begin(), commands.end(), expected), commands.end())
        << "\"" << expected << "\" not found in the --help output of " << kHozoBin;
  }

  const auto items = man_items(read_text("man/hozo.1"));
  std::vector<std::string> readme_commands;  // first cells of README.md table rows: "hozo jobs run NAME... | --all"
  for (const auto& line : lines_of(read_text("README.md"))) {
    if (line.rfind("| `hozo ", 0) != 0) continue;
    const auto end = line.find('`', 3);
    if (end != std::string::npos) readme_commands.push_back(line.substr(3, end - 3));
  }
  ASSERT_FALSE(readme_commands.empty()) << "README.md has no command table (rows like \"| `hozo status` | ... |\")";

  for (const auto& command : commands) {
    const auto path = words_of(command);
    // man/hozo.1: ".It Cm jobs run Ar name ..." (the leading Cm words start with the path).
    const bool in_man = std::any_of(items.begin(), items.end(), [&](const ManItem& item) {
      return item.cm.size() >= path.size() && std::equal(path.begin(), path.end(), item.cm.begin());
    });
    EXPECT_TRUE(in_man) << "man/hozo.1 does not document \"hozo " << command << "\" (expected \".It Cm " << command
                        << " ...\" under COMMANDS)";
    // README.md: "| `hozo jobs run NAME...` | ... |".
    const std::string wanted = "hozo " + command;
    const bool in_readme = std::any_of(readme_commands.begin(), readme_commands.end(), [&](const std::string& cell) {
      return cell.rfind(wanted, 0) == 0 && (cell.size() == wanted.size() || cell[wanted.size()] == ' ');
    });
    EXPECT_TRUE(in_readme) << "README.md's command table has no row for \"hozo " << command << "\"";
  }
}

/// The long options ("--dry-run") in the "Options:" section of a CLI11 help text (not --help).
std::vector<std::string> help_long_options(const std::string& help) {
  std::vector<std::string> options;
  bool in_section = false;
  static const std::regex long_option(R"((^|[ ,])(--[a-z][a-z0-9-]*))");
  for (const auto& line : lines_of(help)) {
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.rfind("options:", 0) == 0) {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    if (line.empty() || line.front() != ' ') {
      in_section = false;
      continue;
    }
    const auto spec = words_of(line).empty() ? std::string() : words_of(line).front();  // "-n,--dry-run"
    std::smatch m;
    if (std::regex_search(spec, m, long_option) && m[2] != "--help") options.push_back(m[2]);
  }
  return options;
}

TEST(DocsTest, EveryLongOptionIsInHozo1) {
  const std::string page = read_text("man/hozo.1");
  std::vector<std::string> paths = cli_commands();
  paths.emplace_back("");  // the global options
  std::size_t seen = 0;
  for (const auto& command : paths) {
    std::string argv = shell_quote(kHozoBin);
    for (const auto& w : words_of(command)) argv += " " + shell_quote(w);
    const auto help = run_command(argv + " --help");
    ASSERT_EQ(help.status, 0) << argv << " --help failed:\n" << help.output;
    for (const auto& option : help_long_options(help.output)) {
      ++seen;
      // mdoc: "Fl -dry-run" renders as --dry-run.
      EXPECT_NE(page.find("Fl " + option.substr(1)), std::string::npos)
          << "man/hozo.1 does not document " << option << " of \"hozo " << command << "\" (expected \"Fl "
          << option.substr(1) << "\")";
    }
  }
  EXPECT_GE(seen, 20u) << "too few options parsed from --help: the check proves nothing";
}

// ------------------------------------------------------------------------------ exit codes

std::set<int> declared_exit_codes() {
  const std::string header = read_text("include/hozo/util/exit_code.hpp");
  const auto begin = header.find("enum class ExitCode");
  const auto end = header.find("};", begin);
  EXPECT_NE(begin, std::string::npos);
  EXPECT_NE(end, std::string::npos);
  std::set<int> codes;
  if (begin == std::string::npos || end == std::string::npos) return codes;
  const std::string body = header.substr(begin, end - begin);
  static const std::regex enumerator(R"((\w+)\s*=\s*(\d+))");
  for (auto it = std::sregex_iterator(body.begin(), body.end(), enumerator); it != std::sregex_iterator(); ++it) {
    codes.insert(std::stoi((*it)[2].str()));
  }
  return codes;
}

TEST(DocsTest, EveryExitCodeIsInReadmeAndHozo1) {
  const auto codes = declared_exit_codes();
  for (const int expected : {0, 1, 2, 69, 70, 75, 78, 130}) {
    ASSERT_TRUE(codes.contains(expected)) << "exit code " << expected << " not parsed from exit_code.hpp";
  }

  // README.md: the table under "## Exit codes", rows "| 78 | configuration error |".
  std::set<int> readme;
  bool in_section = false;
  for (const auto& line : lines_of(read_text("README.md"))) {
    if (line.rfind("## ", 0) == 0) in_section = line.find("Exit codes") != std::string::npos;
    static const std::regex row(R"(^\|\s*(\d+)\s*\|)");
    std::smatch m;
    if (in_section && std::regex_search(line, m, row)) readme.insert(std::stoi(m[1].str()));
  }

  // man/hozo.1: ".It 78" in the EXIT STATUS section.
  std::set<int> man;
  for (const auto& item : man_items(read_text("man/hozo.1"))) {
    if (item.section != "EXIT STATUS" || item.args.empty()) continue;
    const auto& w = item.args.front();
    if (!w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      man.insert(std::stoi(w));
    }
  }

  for (const int code : codes) {
    EXPECT_TRUE(readme.contains(code)) << "README.md's exit-code table lacks " << code;
    EXPECT_TRUE(man.contains(code)) << "man/hozo.1's EXIT STATUS section lacks \".It " << code << "\"";
  }
  for (const int code : readme) EXPECT_TRUE(codes.contains(code)) << "README.md documents unknown exit code " << code;
  for (const int code : man) EXPECT_TRUE(codes.contains(code)) << "man/hozo.1 documents unknown exit code " << code;
}

// ------------------------------------------------------------------------------ mandoc lint

class ManLint : public testing::TestWithParam<const char*> {};

TEST_P(ManLint, MandocLintIsClean) {
  if (!has_program("mandoc")) GTEST_SKIP() << "mandoc is not installed (apt-get install mandoc)";
  const std::string page = kSourceDir + "/" + GetParam();
  const auto lint = run_command("mandoc -Tlint -Wwarning " + shell_quote(page));
  EXPECT_EQ(lint.output, "") << "mandoc -Tlint -Wwarning " << GetParam();
  EXPECT_EQ(lint.status, 0) << "mandoc -Tlint -Wwarning " << GetParam() << " exited with " << lint.status;
}

std::string page_test_name(const testing::TestParamInfo<const char*>& param) {
  std::string name = param.param;
  std::replace_if(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) == 0; },
                  '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Pages, ManLint, testing::Values("man/hozo.1", "man/hozo.yaml.5"), page_test_name);

// Lines of the man pages stay readable in a terminal-sized editor (and in `git diff`).
TEST(DocsTest, ManPageSourceLinesAreShort) {
  for (const char* page : {"man/hozo.1", "man/hozo.yaml.5"}) {
    int number = 0;
    for (const auto& line : lines_of(read_text(page))) {
      ++number;
      EXPECT_LT(line.size(), 80U) << page << ":" << number << " is " << line.size() << " bytes long";
    }
  }
}

}  // namespace
