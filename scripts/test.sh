#!/usr/bin/env bash
# The whole suite: a check that no script or test signals processes by name, the packaging checks, the systemd test,
# the fuzz targets' regressions and a short fuzz run, then the Swift tests: pure unit tests and kernel tests (root,
# inside throwaway network namespaces). Every part runs even when an earlier one failed.
#
# Usage: scripts/test.sh              (make test passes WEIR_BIN, the production binary .build/dist/weir)
#        scripts/test.sh --preflight  (make test runs this first, before any build)
#
# WEIR_REQUIRE_KERNEL=1 (set by .ci/run): nothing may be skipped. A reason known before the build (not root, a missing
# tool) fails the preflight at once; a kernel, systemd or packaging check skipped later, or a Swift test not run,
# fails the run. Without it (a contributor without root), skipped checks are counted and the run can pass.
#
# The last line is the total over every part, alone on its line (CI reads it):
#   weir: N passed, N failed, N skipped
# and the exit status is non-zero if anything failed (or, with WEIR_REQUIRE_KERNEL=1, was skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
require=${WEIR_REQUIRE_KERNEL:-}
[ -z "$require" ] || [ "$require" = 1 ] || { echo "test: WEIR_REQUIRE_KERNEL must be 1 or unset, not '$require'" >&2; exit 2; }

# Tools the kernel tests, the systemd test and the packaging checks need (scripts/install-deps.sh installs them).
tools=(ip nft conntrack iptables systemd-nspawn systemd-analyze buildah podman runc lintian dpkg-deb dpkg-shlibdeps
  nsenter setpriv flock /usr/bin/python3 /usr/lib/cni/bridge /bin/busybox)

# Reasons known before any build why kernel, systemd or packaging checks would be skipped, one per line.
known_skips() {
  local PATH=$PATH:/usr/sbin:/sbin
  [ "$(id -u)" = 0 ] || echo "not root: the kernel tests (network namespaces), the systemd test (systemd-nspawn) and the image (buildah, podman) need root"
  local t; for t in "${tools[@]}"; do command -v "$t" >/dev/null || echo "missing $t (scripts/install-deps.sh installs it as root)"; done
}
preflight() {
  local why; why=$(known_skips)
  [ -n "$why" ] || return 0
  if [ "$require" = 1 ]; then
    sed 's/^/test: /' <<<"$why" >&2
    echo "test: WEIR_REQUIRE_KERNEL=1 and these checks would be skipped: failing before the build" >&2
    echo "weir: 0 passed, 1 failed, 0 skipped"
    exit 1
  fi
  sed 's/^/test: /; s/$/ (those checks are skipped and counted)/' <<<"$why" >&2
}
if [ "${1:-}" = --preflight ]; then preflight; exit 0; fi
[ $# = 0 ] || { echo "usage: scripts/test.sh [--preflight]" >&2; exit 2; }
preflight

passed=0; failed=0; skipped=0
log=$(mktemp -d /tmp/weir-test.XXXXXX); trap 'rm -rf "$log"' EXIT
# add PART PASSED FAILED SKIPPED: a part's counts into the totals, and one line for the final table.
parts=()
add() {
  passed=$((passed + $2)); failed=$((failed + $3)); skipped=$((skipped + $4))
  parts+=("$(printf '%-10s %4d passed, %d failed, %d skipped' "$1" "$2" "$3" "$4")")
}
# counts PREFIX FILE: "P F S" from a "PREFIX: N passed, N failed, N skipped" line, or nothing.
counts() { sed -nE "s/^$1: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped\$/\1 \2 \3/p" "$2" | tail -n 1; }

# --- no script or test signals a process it did not start ----------------------------------------------------------
# A network namespace does not isolate process ids: pkill/killall (by name) or a kill of a negative pid (a process
# group) from a script or test can hit an operator's own agent, another test or a systemd container. Comment lines
# are ignored. (The pattern below spells the names with brackets so that this file does not match itself.)
signals_by_name() {
  local hits rc
  hits=$(git grep --untracked -I -n -E \
    -e '(^|[^[:alnum:]_-])(p[k]ill|kil[l]all|kil[l]pg)([^[:alnum:]_-]|$)' \
    -e '(^|[^[:alnum:]_.-])kil[l] +(-[[:alnum:]]+|-s +[[:alnum:]]+) +(-- +)?["'\'']?-["'\'']?[0-9$]' \
    -e '(^|[^[:alnum:]_.-])kil[l] +-- +["'\'']?-["'\'']?[0-9$]' \
    -e '(^|[^[:alnum:]_])kil[l]\( *-' \
    -- scripts Tests Makefile .ci ':!Tests/Fuzz/corpus' ':!Tests/Fuzz/regressions'); rc=$?
  # git grep: 0 found, 1 none, more: it could not search (then this check cannot pass).
  [ "$rc" -le 1 ] || { echo "git grep exited $rc"; return 1; }
  hits=$(grep -vE '^[^:]+:[0-9]+:[[:space:]]*(#|//|\*|/\*)' <<<"$hits")
  [ -z "$hits" ] || { echo "$hits"; return 1; }
}
name="no script, test, Makefile or .ci file signals processes by name or by process group"
if out=$(signals_by_name); then echo "ok   $name"; add signals 1 0 0
else
  echo "FAIL $name (keep the pid of every process you start and signal only those):"
  sed 's/^/     /' <<<"$out"; add signals 0 1 0
fi

# --- only WeirSystem imports Glibc or CWeirLinux -------------------------------------------------------------------
# scripts/check-imports.sh: two checks, the rule on Sources/ and the checker's own test on made-up trees (every form
# of the import is caught; WeirSystem, Tests/ and comments are exempt).
imports_ok=0; imports_failed=0
# import_check NAME HINT [ARG]: one check of scripts/check-imports.sh.
import_check() {
  local out
  if out=$(bash scripts/check-imports.sh "${@:3}" 2>&1); then echo "ok   $1"; imports_ok=$((imports_ok + 1))
  else echo "FAIL $1 ($2):"; sed 's/^/     /' <<<"$out"; imports_failed=$((imports_failed + 1)); fi
}
import_check "no file under Sources/ outside WeirSystem imports Glibc or CWeirLinux" \
  "call the C library through WeirSystem"
import_check "the import check catches every import form and exempts WeirSystem, Tests/ and comments" \
  "scripts/check-imports.sh --self-test" --self-test
add imports "$imports_ok" "$imports_failed" 0

# --- packaging, systemd, pod mode under podman ---------------------------------------------------------------------
# WEIR_BIN (make test passes the production binary, .build/dist/weir) is what the .deb, the image, the systemd test
# and the podman test ship. Each prints its own "NAME: N passed, N failed, N skipped" line.
for part in packaging systemd pods; do
  script=scripts/check-packaging.sh; [ $part = systemd ] && script=scripts/test-systemd.sh
  [ $part = pods ] && script=scripts/test-pods-podman.sh
  bash "$script" 2>&1 | tee "$log/$part"; rc=${PIPESTATUS[0]}
  c=$(counts "$part" "$log/$part")
  if [ -z "$c" ]; then add "$part" 0 1 0; echo "FAIL $script ended without its summary line (exit $rc)"
  else
    read -r p f s <<<"$c"
    # A script that failed without counting a failure still failed.
    [ "$rc" = 0 ] || [ "$f" != 0 ] || { f=1; echo "FAIL $script exited $rc"; }
    add "$part" "$p" "$f" "$s"
  fi
done

# --- fuzz ---------------------------------------------------------------------------------------------------------
# Every regression input the fuzzers found, then 3 s of each fuzz target (make fuzz runs them longer). Fixed seed.
# One result per target, from fuzz.sh's final table.
FUZZ_SECONDS=3 FUZZ_SEED=1 bash scripts/fuzz.sh 2>&1 | tee "$log/fuzz"; rc=${PIPESTATUS[0]}
read -r p f < <(awk '/^target +runs +exec\/s/ {t=1; next} t && NF >= 6 && $1 ~ /^[a-z0-9-]+$/ {if ($NF == "ok") p++; else f++}
  END {print p+0, f+0}' "$log/fuzz")
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; echo "FAIL scripts/fuzz.sh exited $rc"; fi
[ "$rc" = 0 ] && [ "$p" = 0 ] && { f=1; echo "FAIL scripts/fuzz.sh ran no target"; }
add fuzz "$p" "$f" 0

# --- Swift tests --------------------------------------------------------------------------------------------------
# One Swift build at a time on the machine (a second worktree, CI): build under the shared lock, then test.
lock=(); command -v flock >/dev/null && lock=(flock /tmp/weir-swift-build.lock)
swift_tests() {
  "${lock[@]}" swift build --build-tests || { echo "FAIL swift build --build-tests"; return 1; }
  # Every test there is; whatever of it does not pass or fail below was skipped (a filtered module, a suite whose
  # .enabled(if:) trait is false, a test that never ran).
  swift test list --skip-build > "$log/list" 2>"$log/list.err" || { cat "$log/list.err"; echo "FAIL swift test list"; return 1; }
  local args=(--skip-build --no-parallel)
  if [ "$(id -u)" != 0 ]; then
    echo "kernel tests need root (they create network namespaces); running pure tests only" >&2
    args=(--skip-build --skip WeirKernelTests)
  else
    # Namespaces of test processes that were killed (named wt*-PID-*) are removed before the run; only processes
    # inside such a namespace whose test process is gone are signalled.
    local ns pid p
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wt[a-z]*-[0-9]+-' || true); do
      pid=$(echo "$ns" | cut -d- -f2)
      if ! kill -0 "$pid" 2>/dev/null; then
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
      fi
    done
  fi
  swift test "${args[@]}" 2>&1 | tee "$log/swift"
  return "${PIPESTATUS[0]}"
}
swift_tests; rc=$?
if [ ! -s "$log/list" ]; then
  add swift 0 1 0
else
  listed=$(grep -c . "$log/list")
  # Swift Testing prints one line per test function as it ends (colour codes removed; the symbol in front differs
  # between platforms): "Test NAME passed after ...", "Test NAME failed after ...", "Test NAME skipped: ..." (also
  # for each test of a skipped suite), then "Test run with N tests in M suites passed|failed ...", where N counts
  # those three kinds. A test a filter left out (--skip) prints nothing. XCTest, should a test use it, ends with
  # "Executed N tests, with F failures" for the whole run.
  sed 's/\x1b\[[0-9;]*m//g' "$log/swift" > "$log/swift.plain"
  tests() { grep -E "^[^ ]* ?Test .* $1" "$log/swift.plain" | grep -cvE '^[^ ]* ?Test (run with|case passing)'; }
  sp=$(tests 'passed after [0-9.]+ seconds'); sf=$(tests 'failed after [0-9.]+ seconds'); ss=$(tests 'skipped(: |$)')
  x=$(sed -nE 's/.*Executed ([0-9]+) tests?, with ([0-9]+) failures?.*/\1 \2/p' "$log/swift.plain" | tail -n 1)
  read -r xn xf <<<"${x:-0 0}"
  p=$((sp + xn - xf)); f=$((sf + xf))
  # Skipped: every listed test that neither passed nor failed (a skipped suite or test, a filtered module).
  s=$((listed - sp - sf - xn)); [ "$s" -ge 0 ] || s=0
  # Swift Testing's own total must agree with the lines; without it the run did not finish.
  total=$(sed -nE 's/^[^ ]* ?Test run with ([0-9]+) tests?( in [0-9]+ suites?)? (passed|failed).*/\1/p' \
    "$log/swift.plain" | tail -n 1)
  if [ -z "$total" ]; then
    echo "FAIL swift test: no \"Test run with N tests\" line: the run did not finish (exit $rc)"; f=$((f + 1))
  elif [ "$total" != $((sp + sf + ss)) ]; then
    echo "FAIL swift test: its total ($total tests) is not the $sp passed + $sf failed + $ss skipped counted here"
    f=$((f + 1))
  fi
  [ "$rc" = 0 ] || [ "$f" != 0 ] || { echo "FAIL swift test exited $rc"; f=1; }
  if [ "$require" = 1 ] && [ "$s" != 0 ]; then
    echo "FAIL swift test: $s of $listed tests did not run, and WEIR_REQUIRE_KERNEL=1"
    f=$((f + s)); s=0
  fi
  add swift "$p" "$f" "$s"
fi

# --- alerts -------------------------------------------------------------------------------------------------------
# The alert rules (promtool), the PrometheusRule copy, and every metric a rule or the dashboard names against the
# /metrics of a real agent (WEIR_BIN) in a namespace.
bash scripts/check-alerts.sh 2>&1 | tee "$log/alerts"; rc=${PIPESTATUS[0]}
c=$(counts alerts "$log/alerts")
if [ -z "$c" ]; then add alerts 0 1 0; echo "FAIL scripts/check-alerts.sh ended without its summary line (exit $rc)"
else
  read -r p f s <<<"$c"
  [ "$rc" = 0 ] || [ "$f" != 0 ] || { f=1; echo "FAIL scripts/check-alerts.sh exited $rc"; }
  add alerts "$p" "$f" "$s"
fi

# --- summary ------------------------------------------------------------------------------------------------------
echo
printf '%s\n' "${parts[@]}"
status=0
[ "$failed" = 0 ] || status=1
if [ "$require" = 1 ] && [ "$skipped" != 0 ]; then
  echo "test: WEIR_REQUIRE_KERNEL=1 and $skipped checks or tests were skipped: that fails the run"; status=1
fi
echo "weir: $passed passed, $failed failed, $skipped skipped"
exit "$status"
