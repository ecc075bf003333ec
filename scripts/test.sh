#!/usr/bin/env bash
# Every test: install what is missing, check the formatting of the lines
# changed since the baseline (scripts/check_format.sh), build, prepare the
# default corpus (the training tests use it), run the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh clang-format
scripts/check_format.sh
scripts/build.sh
scripts/prepare_corpus.sh data/kjv
cd build
ctest -j "$(nproc)" --output-on-failure --timeout 1200
