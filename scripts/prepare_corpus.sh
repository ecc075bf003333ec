#!/usr/bin/env bash
# Prepares the default corpus: the King James Bible from Debian's bible-kjv
# package, as byte tokens in OUT_DIR/train.bin and OUT_DIR/val.bin (the last
# 2% of the text, cut at a line boundary). Idempotent: does nothing when both
# files exist. Usage: scripts/prepare_corpus.sh [OUT_DIR] (default data/kjv).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-data/kjv}"
linpar="${LINPAR:-build/cli/linpar}"

if [ -s "$out_dir/train.bin" ] && [ -s "$out_dir/val.bin" ] && [ -s "$out_dir/corpus.json" ]; then
  exit 0
fi
if ! command -v bible >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bible-kjv >/dev/null
fi
if [ ! -x "$linpar" ]; then
  echo "prepare_corpus: $linpar is not built yet (run scripts/build.sh)" >&2
  exit 2
fi
mkdir -p "$out_dir"
tmp="$out_dir/kjv.txt.tmp"
bible -f 'Genesis 1:1-Revelation 22:21' > "$tmp"
mv "$tmp" "$out_dir/kjv.txt"
"$linpar" prepare-data --text "$out_dir/kjv.txt" --out-dir "$out_dir" --val-fraction 0.02
