#!/usr/bin/env bash
# Generates the man page and the shell completions from a built weir binary, so they always say what that binary
# does: OUTDIR/weir.1.gz (help2man over `weir --help` and `weir --version`, with every subcommand's --help as its own
# section) and OUTDIR/completions/{weir.bash,_weir,weir.fish} (argument-parser's --generate-completion-script).
# Reproducible: the date is SOURCE_DATE_EPOCH's (the commit's) and gzip stores no name or time.
# Usage: scripts/build-docs.sh BIN OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: build-docs.sh BIN OUTDIR}
outdir=${2:?usage: build-docs.sh BIN OUTDIR}
[ -x "$bin" ] || { echo "build-docs: $bin is not an executable" >&2; exit 1; }
command -v help2man >/dev/null || { echo "build-docs: help2man missing (apt-get install help2man)" >&2; exit 1; }
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
work=$(mktemp -d /tmp/weir-docs.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The help as a terminal 80 columns wide would show it, whatever terminal runs the build.
export COLUMNS=80

# One section per subcommand: its --help verbatim (no fill), roff-escaped (backslashes; a line starting with . or ').
subcommands=$("$bin" --help | sed -n '/^SUBCOMMANDS:/,/^$/p' | awk '/^  [a-z]/ {sub(/,$/, "", $1); print $1}')
[ -n "$subcommands" ] || { echo "build-docs: no SUBCOMMANDS in '$bin --help'" >&2; exit 1; }
{
  for s in $subcommands; do
    echo "[COMMAND: weir $s]"
    echo ".nf"
    "$bin" "$s" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
    echo ".fi"
  done
  echo "[SEE ALSO]"
  echo "The README and docs/ (install.md, tuning.md, proxy.md, kubernetes.md) in /usr/share/doc/weir."
} > "$work/include"
help2man --no-info --section=1 --source="weir" --manual="User Commands" \
  --name="node-level traffic capture, kernel tuning and transparent proxy" \
  --include="$work/include" --output="$work/weir.1" "$bin"
mkdir -p "$outdir/completions"
gzip -9n < "$work/weir.1" > "$outdir/weir.1.gz.tmp" && mv "$outdir/weir.1.gz.tmp" "$outdir/weir.1.gz"
for shell in bash zsh fish; do
  case $shell in bash) f=weir.bash;; zsh) f=_weir;; fish) f=weir.fish;; esac
  # Sourced by bash-completion, never run: no #! line (lintian's bash-completion-with-hashbang).
  "$bin" --generate-completion-script "$shell" | sed '1{/^#!/d}' > "$outdir/completions/$f.tmp"
  [ -s "$outdir/completions/$f.tmp" ] || { echo "build-docs: no $shell completion from $bin" >&2; exit 1; }
  mv "$outdir/completions/$f.tmp" "$outdir/completions/$f"
done
