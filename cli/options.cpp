#include "cli/options.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "core/error.h"
#include "model/config_io.h"

namespace linpar::cli {

bool parse_options(const std::string& command, const std::string& usage,
                   const std::vector<std::string>& args, po::options_description& options,
                   po::variables_map& values,
                   const po::positional_options_description* positional) {
  options.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(),
      "INI file with option = value lines (the command line wins)");
  try {
    po::command_line_parser parser(args);
    parser.options(options);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), values);
    if (values.count("help")) {
      std::cout << "usage: linpar " << command << " " << usage << "\n\n" << options << "\n";
      return false;
    }
    if (values.count("config")) {
      const std::string path = values["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) user_error("--config {}: cannot open the file", path);
      // Values already stored from the command line are kept: the command line wins.
      po::store(po::parse_config_file(in, options), values);
    }
    po::notify(values);
  } catch (const po::error& e) {
    user_error("{}: {}", command, e.what());
  }
  return true;
}

void add_model_options(po::options_description& options) {
  options.add_options()("model", po::value<std::string>()->default_value("tnl-tiny"),
                        "model preset (see `linpar presets`)")("layers", po::value<int64_t>(),
                                                               "override: number of layers")(
      "width", po::value<int64_t>(), "override: model width D")("heads", po::value<int64_t>(),
                                                                "override: attention heads H")(
      "glu-dim", po::value<int64_t>(), "override: SGLU width F")("vocab-size", po::value<int64_t>(),
                                                                 "override: vocabulary size V")(
      "lrpe", po::value<std::string>(), "override: LRPE layers: none|first|all")(
      "decay", po::value<std::string>(), "override: decay rule: released|paper")(
      "tie-embeddings", po::value<bool>(), "override: tie LM head to the embedding (true|false)")(
      "attention-block", po::value<int64_t>(), "lightning-attention block size");
}

ModelConfig model_config_from(const po::variables_map& v) {
  ModelConfig config = preset_config(v["model"].as<std::string>());
  if (v.count("layers")) config.n_layers = v["layers"].as<int64_t>();
  if (v.count("width")) config.width = v["width"].as<int64_t>();
  if (v.count("heads")) config.n_heads = v["heads"].as<int64_t>();
  if (v.count("glu-dim")) config.glu_dim = v["glu-dim"].as<int64_t>();
  if (v.count("vocab-size")) config.vocab_size = v["vocab-size"].as<int64_t>();
  if (v.count("lrpe")) config.lrpe = lrpe_from_name(v["lrpe"].as<std::string>());
  if (v.count("decay")) config.decay = decay_from_name(v["decay"].as<std::string>());
  if (v.count("tie-embeddings")) config.tie_embeddings = v["tie-embeddings"].as<bool>();
  if (v.count("attention-block")) config.attention_block = v["attention-block"].as<int64_t>();
  config.validate();
  return config;
}

}  // namespace linpar::cli
