#!/usr/bin/env bash
# WeirSystem is the one door to the kernel: no Swift file under Sources/ outside Sources/WeirSystem may import Glibc
# or CWeirLinux, in any form (`import Glibc`, `@_exported import Glibc`, `@_implementationOnly import CWeirLinux`,
# `import struct Glibc.stat`, `import func Glibc.close`, `import Glibc.foo`, an import after `;` on one line, inside
# `#if canImport(Glibc)` or not). What such a file needs goes through WeirSystem. Tests/ are exempt (tests may call
# the C library directly to set up and inspect what they test); so are comments.
#
# Usage: scripts/check-imports.sh [ROOT]     check ROOT/Sources (default: this repository); exit 1 and one line
#                                            "FILE:LINE: TEXT" per offending import (FILE relative to ROOT)
#        scripts/check-imports.sh --self-test   run the check on made-up trees: every form above is caught, and
#                                            WeirSystem, Tests/, comments and the allow-list pass
set -uo pipefail

forbidden='Glibc|CWeirLinux'

# Files outside WeirSystem allowed to import anyway, as "PATH<TAB>REASON" (PATH relative to the root). Keep it empty:
# an entry says why the C library cannot go through WeirSystem there. An entry whose file no longer imports fails
# the check, so the list cannot go stale.
allow=(
)

# An import line: optional attributes (`@_exported`, `@_implementationOnly`, `@preconcurrency`...), `import`, an
# optional declaration kind, then a forbidden module, alone or followed by `.member`. `;` may start a statement.
import_re="(^|;)[[:space:]]*(@[[:alnum:]_]+([(][^)]*[)])?[[:space:]]+)*import[[:space:]]+"
import_re+="((typealias|struct|class|enum|protocol|let|var|func)[[:space:]]+)?($forbidden)([.;[:space:]]|\$)"

# check ROOT: prints the offending lines, returns 1 when there is one (or a stale allow-list entry).
check() {
  local root=$1 status=0 hits file entry path found
  [ -d "$root/Sources" ] || { echo "check-imports: $root/Sources is not a directory"; return 2; }
  # Every .swift file under Sources/ but WeirSystem; "-n" and "-H" name file and line; "//" comments are dropped
  # first (a line comment can hide nothing: the pattern anchors at the line's start or a `;`).
  hits=$(cd "$root" && find Sources -path Sources/WeirSystem -prune -o -type f -name '*.swift' -print0 \
    | sort -z | IMPORT_RE=$import_re xargs -0 -r awk '
        { line = $0; sub(/\/\/.*/, "", line) }
        line ~ ENVIRON["IMPORT_RE"] { printf "%s:%d: %s\n", FILENAME, FNR, $0 }')
  for entry in "${allow[@]}"; do
    path=${entry%%$'\t'*}
    found=$(P="$path:" awk 'index($0, ENVIRON["P"]) == 1' <<<"$hits")
    if [ -z "$found" ]; then echo "$path: allow-listed but imports neither Glibc nor CWeirLinux: remove the entry"; status=1
    else hits=$(P="$path:" awk 'index($0, ENVIRON["P"]) != 1' <<<"$hits"); fi
  done
  [ -z "$hits" ] || { echo "$hits"; status=1; }
  return $status
}

# --self-test: made-up trees with every form of the import, and what must pass.
self_test() {
  local failures=0 out expected
  tmp=$(mktemp -d /tmp/weir-check-imports.XXXXXX); trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/clean/Sources/WeirSystem" "$tmp/clean/Sources/WeirAgent" "$tmp/clean/Tests/WeirAgentTests"
  printf 'import CWeirLinux\nimport Glibc\n' > "$tmp/clean/Sources/WeirSystem/Process.swift"
  printf 'import Glibc\n@testable import WeirAgent\n' > "$tmp/clean/Tests/WeirAgentTests/T.swift"
  printf '%s\n' 'import WeirSystem' '// import Glibc' 'let s = "import Glibc"' 'import GlibcCompat' \
    '    /// call close(2) (import Glibc in WeirSystem)' 'import CNetfilter' > "$tmp/clean/Sources/WeirAgent/A.swift"
  if ! out=$(check "$tmp/clean"); then echo "self-test: a clean tree failed:"; echo "$out"; failures=1; fi

  cp -r "$tmp/clean" "$tmp/dirty"
  printf '%s\n' 'import Glibc' '@_exported import CWeirLinux' '  @_implementationOnly import Glibc' \
    'import struct Glibc.stat' 'import func Glibc.close' 'import Glibc.stdio' 'import WeirCore; import Glibc' \
    '#if canImport(Glibc)' 'import Glibc // for close' '#endif' '@preconcurrency import Glibc' \
    > "$tmp/dirty/Sources/WeirAgent/B.swift"
  expected=$(printf 'Sources/WeirAgent/B.swift:%s\n' 1 2 3 4 5 6 7 9 11)
  out=$(check "$tmp/dirty"); local rc=$?
  if [ "$rc" != 1 ] || [ "$(cut -d: -f1,2 <<<"$out")" != "$expected" ]; then
    echo "self-test: expected exit 1 and B.swift lines 1-7, 9, 11; got exit $rc:"; echo "$out"; failures=1
  fi

  # The allow-list: an entry hides its file's imports, and a stale entry fails.
  allow=("Sources/WeirAgent/B.swift"$'\t'"self-test")
  if ! out=$(check "$tmp/dirty"); then echo "self-test: an allow-listed file failed:"; echo "$out"; failures=1; fi
  if out=$(check "$tmp/clean"); then echo "self-test: a stale allow-list entry passed"; failures=1; fi
  return $failures
}

case "${1:-}" in
  --self-test) self_test ;;
  -*) echo "usage: scripts/check-imports.sh [ROOT | --self-test]" >&2; exit 2 ;;
  *) check "${1:-$(cd "$(dirname "$0")/.." && pwd)}" ;;
esac
