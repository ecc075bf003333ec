#!/usr/bin/env bash
# Copies the header-only nlohmann-json (Debian package) into .device/ so that a
# device run can carry it to the GPU machine, which has no package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device/nlohmann_json
mkdir -p .device/nlohmann_json/share/cmake .device/nlohmann_json/include
cp -r /usr/share/cmake/nlohmann_json .device/nlohmann_json/share/cmake/
cp -r /usr/include/nlohmann .device/nlohmann_json/include/
