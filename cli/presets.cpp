// linpar presets: the model presets, their shapes and parameter counts beside
// the published counts they reproduce.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/config_io.h"

namespace linpar::cli {

int presets_command(const std::vector<std::string>& args) {
  po::options_description options("presets options");
  po::variables_map v;
  if (!parse_options("presets", "", args, options, v)) return 0;
  fmt::print("{:<10} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6} {:>16} {:>12}  {}\n", "preset", "layers",
             "width", "heads", "glu_dim", "vocab", "lrpe", "parameters", "published", "source");
  for (const PresetInfo& p : model_presets()) {
    const ModelConfig& c = p.config;
    fmt::print("{:<10} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6} {:>16} {:>12}  {}\n", c.name, c.n_layers,
               c.width, c.n_heads, c.glu_dim, c.vocab_size, lrpe_name(c.lrpe), c.parameter_count(),
               p.published_parameters > 0 ? fmt::format("{:.3g}", p.published_parameters) : "-",
               p.source);
  }
  return 0;
}

}  // namespace linpar::cli
