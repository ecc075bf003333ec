// linpar prepare-data: text -> train.bin / val.bin with the byte tokenizer
// (scripts/prepare_corpus.sh uses it for the default corpus).
#include "cli/commands.h"
#include "cli/options.h"
#include "core/log.h"
#include "model/token_file.h"
#include "model/tokenizer.h"

namespace linpar::cli {

int prepare_data_command(const std::vector<std::string>& args) {
  po::options_description options("prepare-data options");
  options.add_options()("text", po::value<std::string>()->required(), "input text file (UTF-8)")(
      "out-dir", po::value<std::string>()->required(),
      "directory for train.bin, val.bin, corpus.json")(
      "val-fraction", po::value<double>()->default_value(0.02),
      "last fraction of the text kept for validation");
  po::variables_map v;
  if (!parse_options("prepare-data", "--text FILE --out-dir DIR", args, options, v)) return 0;
  ByteTokenizer tokenizer;
  prepare_text_corpus(v["text"].as<std::string>(), v["out-dir"].as<std::string>(),
                      v["val-fraction"].as<double>(), tokenizer);
  log::info("wrote {}/train.bin and {}/val.bin", v["out-dir"].as<std::string>(),
            v["out-dir"].as<std::string>());
  return 0;
}

}  // namespace linpar::cli
