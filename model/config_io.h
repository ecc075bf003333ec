// ModelConfig <-> JSON (checkpoint metadata) and the comparison that refuses a
// checkpoint of another model with the first field that differs.
#pragma once

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace linpar {

nlohmann::json config_to_json(const ModelConfig& config);
ModelConfig config_from_json(const nlohmann::json& json);  // UserError on missing fields
// UserError "<what>: model mismatch: layers is 4 in the checkpoint, 2 in this run" for the
// first architectural field that differs (name and init do not count).
void check_same_architecture(const ModelConfig& saved, const ModelConfig& current,
                             const std::string& what);

std::string lrpe_name(LrpeLayers lrpe);
LrpeLayers lrpe_from_name(const std::string& name);  // UserError on unknown names
std::string decay_name(DecayRule rule);
DecayRule decay_from_name(const std::string& name);

}  // namespace linpar
