#!/usr/bin/env bash
# `make stress`: weir under stress, through the production binary (.build/dist/weir), in throwaway network
# namespaces (198.18.0.0/15, 2001:db8::/32), deleted on exit even on failure. Four parts (issue 11):
#   soak    `weir run` with 1,000 concurrent connections, REDIRECT then TPROXY (scripts/stress/soak.sh)
#   faults  faults injected while traffic flows, and what the client sees (scripts/stress/faults.sh)
#   storm   far more new connections than somaxconn allows; the admin endpoint must keep answering (storm.sh)
#   scale   10,000 to 100,000 excluded CIDRs and 1,000 ports against iptables (scripts/stress/scale.sh)
#   systemd the real systemd: restart, package upgrade and kill -9 under 1,000 streaming connections
#           (scripts/stress/systemd.sh; needs the .deb: `make stress` builds it)
# It ends with a summary table; every line must pass, or the exit status is 1. Figures (timings, memory) are
# printed after it and are never pass/fail.
#
#   STRESS_SOAK_SECONDS   length of each soak mode (default 300)
#   STRESS_CONNS          concurrent connections of the soak (default 1000)
#   STRESS_SOAK_MODES     the soak's capture modes (default "REDIRECT TPROXY")
#   STRESS_IDLE_TIMEOUT   --idle-timeout of the agent, in seconds (default 5)
#   STRESS_STORM_SECONDS  length of the connection storm (default 20)
#   STRESS_SCALE_SIZES    excluded CIDR counts (default "10000 50000 100000")
#   STRESS_IPTABLES_MAX   largest iptables ruleset tried (default 100000; above it the iptables side is skipped)
#   STRESS_ONLY           a subset of "soak faults storm scale systemd" (all five, both soak modes: a full run)
#   STRESS_LOGS           where logs are kept (default .build/stress/<date>)
#   STRESS_RESULTS_KEEP   set: a full run leaves docs/stress-results.md as it is
#   STRESS_ALLOW_DIRTY    set to 1: a full run writes docs/stress-results.md even from a tree with
#                         uncommitted changes (its header then names the tree "<commit>-dirty")
# A full run also writes docs/stress-results.md, the Stress section of BENCHMARKS.md (not when
# STRESS_RESULTS_KEEP is set, to leave the committed results as they are). Its header names the tree the run came
# from (`git describe --always --dirty`); from a tree with uncommitted changes to tracked files (or outside git) the
# run refuses, before measuring anything, to write it unless STRESS_ALLOW_DIRTY=1: results must name a commit that
# holds the scripts and code that produced them. Every report (logs/report.md too) starts with the same header.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "stress: needs root (network namespaces)" >&2; exit 1; }

WEIR=$(realpath "${WEIR:-.build/dist/weir}")
[ -x "$WEIR" ] || { echo "stress: $WEIR missing; run 'make stress'" >&2; exit 1; }
SOAK=${STRESS_SOAK_SECONDS:-300}
SOAK_CONNS=${STRESS_CONNS:-1000}
IDLE=${STRESS_IDLE_TIMEOUT:-5}
IDLE_SAMPLE=5
STORM=${STRESS_STORM_SECONDS:-20}
SCALE_SIZES=${STRESS_SCALE_SIZES:-10000 50000 100000}
IPT_MAX=${STRESS_IPTABLES_MAX:-100000}
ONLY=${STRESS_ONLY:-soak faults storm scale systemd}
SOAK_MODES=${STRESS_SOAK_MODES:-REDIRECT TPROXY}
# The tree this run comes from, as scripts/bench.sh records it (`git describe --always --dirty`: "-dirty" when a
# tracked file has uncommitted changes). Both are taken now: a commit made while the run goes on is not what it
# measured.
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DESCRIBE=$(git describe --always --dirty 2>/dev/null || echo unknown)
WRITE_RESULTS=0
if [ "$ONLY" = "soak faults storm scale systemd" ] && [ "$SOAK_MODES" = "REDIRECT TPROXY" ] && [ -z "${STRESS_RESULTS_KEEP:-}" ]; then
  WRITE_RESULTS=1
  if [[ $DESCRIBE == *-dirty || $DESCRIBE == unknown ]] && [ "${STRESS_ALLOW_DIRTY:-}" != 1 ]; then
    echo "stress: the tree is not a clean commit (git describe: $DESCRIBE): a full run would write" \
      "docs/stress-results.md naming a commit that does not hold the code it measured. Commit first, or set" \
      "STRESS_RESULTS_KEEP=1 (keep the committed results; the report stays in the logs) or STRESS_ALLOW_DIRTY=1" \
      "(write it, marked -dirty)." >&2
    exit 1
  fi
fi
LOGS=$(realpath -m "${STRESS_LOGS:-.build/stress/$(date -u +%Y%m%d-%H%M%S)}")
mkdir -p "$LOGS"
WORK=$(mktemp -d /tmp/weir-stress.XXXXXX)
SUMMARY=$LOGS/summary.tsv
FIGURES=$LOGS/figures.tsv
KNOWN=$LOGS/known.tsv
: >"$SUMMARY"
: >"$FIGURES"
: >"$KNOWN"

. scripts/stress/lib.sh
. scripts/stress/soak.sh
. scripts/stress/faults.sh
. scripts/stress/storm.sh
. scripts/stress/scale.sh
. scripts/stress/systemd.sh

cleanup() {
  local p ns
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${NS_LIST[@]}"; do ns_del "$ns"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Namespaces left by an earlier run that was killed (wst-<its pid>-*, that pid gone) go first.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wst-[0-9]+-' || true); do
  pid=$(cut -d- -f2 <<<"$ns")
  kill -0 "$pid" 2>/dev/null || ns_del "$ns"
done

LOAD=$WORK/load
gcc -O2 -Wall -o "$LOAD" scripts/stress/load.c -lm
say "weir: $("$WEIR" --version); tree $DESCRIBE; logs in $LOGS"
say "soak ${SOAK}s per mode, $SOAK_CONNS connections, idle timeout ${IDLE}s; storm ${STORM}s; scale: $SCALE_SIZES"
started=$(date +%s)

for part in $ONLY; do
  case $part in
    soak) for m in $SOAK_MODES; do soak "$m"; done ;;
    faults) faults ;;
    storm) storm ;;
    scale) scale ;;
    systemd) stress_systemd ;;
    *) echo "stress: unknown part '$part' in STRESS_ONLY" >&2; exit 2 ;;
  esac
done

elapsed=$(( $(date +%s) - started ))
{
  # The header: its first line as it always was; the second names the tree (git describe --always --dirty).
  printf '_Commit %s, %s, kernel %s, %s CPUs._\n' "$COMMIT" "$("$WEIR" --version 2>/dev/null | head -n 1)" \
    "$(uname -r)" "$(nproc)"
  note=""
  if [[ $DESCRIBE == *-dirty || $DESCRIBE == unknown ]]; then
    note="; not a clean commit"
    [ "$WRITE_RESULTS" = 1 ] && note+=", written with STRESS_ALLOW_DIRTY=1"
  fi
  # shellcheck disable=SC2016 # the backquotes are Markdown
  printf '_Tree: `%s` (`git describe --always --dirty`%s)._\n' "$DESCRIBE" "$note"
  printf '\n## Summary (%s, soak %ss per mode, %s connections, idle timeout %ss, %d min in all)\n\n' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$SOAK" "$SOAK_CONNS" "$IDLE" $(( (elapsed + 30) / 60 ))
  printf '| part | check | measured | pass when | result |\n|---|---|---|---|---|\n'
  awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$SUMMARY"
  if [ -s "$KNOWN" ]; then
    printf '\n## Known issues, measured (not fixed yet; not pass/fail)\n\n| part | issue | measured |\n|---|---|---|\n'
    awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$KNOWN"
  fi
  printf '\n## Figures (reported, not pass/fail)\n\n| part | measure | value |\n|---|---|---|\n'
  awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$FIGURES"
} | tee "$LOGS/report.md"
# A run of every part is what BENCHMARKS.md shows (its Stress section, on the next `make bench` or
# `make bench-report`); a partial run stays in its log directory.
if [ "$WRITE_RESULTS" = 1 ]; then
  cp "$LOGS/report.md" docs/stress-results.md
fi
failed=$(awk -F'\t' '$5 != "pass"' "$SUMMARY" | wc -l)
total=$(wc -l <"$SUMMARY")
printf '\nstress: %d of %d checks passed, %d known issues measured; logs and report.md in %s\n' $((total - failed)) \
  "$total" "$(wc -l <"$KNOWN")" "$LOGS"
[ "$failed" -eq 0 ] && [ "$total" -gt 0 ]
