#!/usr/bin/env bash
# Every test: install what is missing, build, prepare the default corpus (the
# training tests use it), run the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
scripts/prepare_corpus.sh data/kjv
cd build
ctest -j "$(nproc)" --output-on-failure --timeout 1200
