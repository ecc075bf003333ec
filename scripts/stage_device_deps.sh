#!/usr/bin/env bash
# Copies the header-only nlohmann-json (Debian package) into .device/ so that a
# device run can carry it to the GPU machine, which has no package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device/nlohmann_json
mkdir -p .device/nlohmann_json/share/cmake .device/nlohmann_json/include
cp -r /usr/share/cmake/nlohmann_json .device/nlohmann_json/share/cmake/
cp -r /usr/include/nlohmann .device/nlohmann_json/include/

# The GPU image has Boost's headers but not Boost.Program_options' library
# (the linpar CLI needs it): carry Debian's Boost 1.74 headers and
# program_options as .deb files, unpacked on the device into a private prefix
# (scripts/gpu_check.sh), so headers and library come from one Boost.
rm -rf .device/boost-debs
mkdir -p .device/boost-debs
(cd .device/boost-debs && apt-get download libboost1.74-dev libboost-program-options1.74-dev \
  libboost-program-options1.74.0 2>/dev/null)
