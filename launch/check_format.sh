#!/usr/bin/env bash
# Checks that the C++ files changed since the formatting rules (.clang-format) were last
# changed, and any uncommitted ones, are formatted by clang-format. Prints the files that are
# not and how to fix them; exit 1 then. Called by launch/test.sh.
#   launch/check_format.sh [BASE]   (default: the last commit that changed .clang-format)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format is missing (launch/install_deps.sh installs it)" >&2
  exit 1
fi
base="${1:-$(git log -1 --format=%H -- .clang-format 2>/dev/null || true)}"
if [ -z "$base" ]; then
  echo "check_format: no commit has .clang-format yet; nothing to compare with" >&2
  exit 0
fi
mapfile -t files < <({ git diff --name-only --diff-filter=ACMR "$base" -- '*.cc' '*.h';
                        git ls-files --others --exclude-standard -- '*.cc' '*.h'; } | sort -u)
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} changed C++ file(s) are not formatted:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} changed C++ file(s) formatted"
