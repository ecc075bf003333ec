#!/usr/bin/env bash
# Fails when a C++/CUDA line changed since the formatting baseline is not as
# clang-format (.clang-format: Google style, 100 columns) writes it, and
# prints the diff that would fix it. The baseline (scripts/format_baseline)
# is the commit before formatting was enforced: older lines are left as they
# are, every line written since is checked. `scripts/check_format.sh --fix`
# reformats those lines in the working tree. scripts/test.sh runs the check.
set -euo pipefail
cd "$(dirname "$0")/.."
base="$(tr -d '[:space:]' < scripts/format_baseline)"
if ! command -v git-clang-format >/dev/null || ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format is missing (scripts/setup.sh installs it)" >&2
  exit 2
fi
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "check_format: not a git checkout; nothing to compare with, skipped"
  exit 0
fi
if ! git cat-file -e "${base}^{commit}" 2>/dev/null; then
  # A shallow clone: check what its history holds, the last commit's lines.
  if git cat-file -e "HEAD~1^{commit}" 2>/dev/null; then
    echo "check_format: the baseline ${base:0:7} is not in this clone (shallow?): checking the last commit's lines"
    base="$(git rev-parse HEAD~1)"
  else
    echo "check_format: a clone of one commit has nothing to compare with: skipped" >&2
    exit 0
  fi
fi
extensions=cpp,h,cu,cuh
# New files git does not track yet are all new lines (git clang-format skips them).
mapfile -t untracked < <(git ls-files --others --exclude-standard -- '*.cpp' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = "--fix" ]; then
  git clang-format --force --extensions "$extensions" "$base" || true
  if [ ${#untracked[@]} -gt 0 ]; then clang-format -i "${untracked[@]}"; fi
  exit 0
fi
if [ ${#untracked[@]} -gt 0 ] && ! clang-format --dry-run -Werror "${untracked[@]}" 2>/dev/null; then
  clang-format --dry-run "${untracked[@]}" 2>&1 | head -40
  echo "check_format: new files are not formatted (scripts/check_format.sh --fix formats them)" >&2
  exit 1
fi
diff="$(git clang-format --diff --extensions "$extensions" "$base" 2>&1 || true)"
if [ -z "$diff" ] || echo "$diff" | grep -qE "^(no modified files to format|clang-format did not modify any files)"; then
  echo "check_format: every line changed since ${base:0:7} is formatted"
  exit 0
fi
echo "$diff"
echo "check_format: the lines above are not formatted (scripts/check_format.sh --fix formats them)" >&2
exit 1
