#!/usr/bin/env bash
# make fuzz: libFuzzer over weir's parsers, one harness per target (Tests/Fuzz/TARGET.swift).
#
#   scripts/fuzz.sh [TARGET...]     all targets when none is named; FUZZ_SECONDS per target (default 60),
#                                   FUZZ_SEED for a fixed libFuzzer seed (make test uses one)
#
# How it builds: SwiftPM compiles the library targets under test with libFuzzer's coverage and AddressSanitizer (and
# -enable-testing, so a harness can reach internal parsers with @testable import) into .build/fuzz; swiftc then links
# each harness against those objects. A harness cannot be a SwiftPM executableTarget: SwiftPM renames an
# executable's entry point and the libFuzzer link fails. Package.swift and the production binary are untouched.
# Not `swift build --sanitize fuzzer --sanitize address`: SwiftPM passes two -sanitize= flags in no fixed order and
# swiftc keeps only the last, so the objects came out with coverage or with ASan but not both. One combined flag.
#
# Each run first replays every input under Tests/Fuzz/regressions/TARGET (crashes found earlier, fixed since), then
# fuzzes for FUZZ_SECONDS over the corpus Tests/Fuzz/corpus/TARGET. New corpus entries go to .build/fuzz/corpus
# (scratch, kept between runs), never into the repository; a crash, timeout or out-of-memory input is written to
# Tests/Fuzz/regressions/TARGET, where it stays: fix the bug, add a unit test, commit the input.
set -euo pipefail
cd "$(dirname "$0")/.."
# libFuzzer and ASan report a crash themselves; Swift's backtracer, on top, reads memory ASan flags and was left
# running after the crashed process had gone.
export SWIFT_BACKTRACE=enable=no
seconds=${FUZZ_SECONDS:-60}
all=(capture-flags profile config-file cidr-port-interface netlink-reply admin-request cni-config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [ -f "Tests/Fuzz/$t.swift" ] || { echo "fuzz: unknown target '$t': expected one of ${all[*]}" >&2; exit 2; }
done
# One Swift build at a time on the machine: every swift/swiftc call runs under the shared lock (the fuzzing does not).
lock=(); command -v flock >/dev/null && lock=(flock /tmp/weir-swift-build.lock)
scratch=.build/fuzz
spm=(swift build -c release --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing
  -Xcc -fsanitize=fuzzer-no-link,address)
modules=(WeirCore WeirSystem WeirNetfilter)

# WeirNetfilter brings WeirCore, WeirSystem and CWeirLinux with it.
"${lock[@]}" "${spm[@]}" --target WeirNetfilter
lib=$("${lock[@]}" "${spm[@]}" --show-bin-path)
mkdir -p "$scratch/bin" "$scratch/logs"

module_objects() {  # a module's objects, from its current source list (a deleted file's object may still be there)
  while read -r src; do echo "$lib/$1.build/$(basename "$src").o"; done < "$lib/$1.build/sources"
}
c_objects() {  # a C target's objects, from its current sources (likewise)
  for src in Sources/"$1"/*.c; do echo "$lib/$1.build/$(basename "$src").o"; done
}
# Every object must carry both instrumentations, or libFuzzer runs blind (or ASan checks nothing).
for m in "${modules[@]}"; do
  for o in $(module_objects "$m"); do
    undefined=$(nm -u "$o")
    if [[ $(nm "$o") == *" T "* ]] && ! [[ $undefined == *__sanitizer_cov_8bit_counters_init* \
        && $undefined == *__asan_init* ]]; then
      echo "fuzz: $o lacks libFuzzer coverage or ASan instrumentation; remove $scratch and retry" >&2
      exit 1
    fi
  done
done

objects() {  # the objects and libraries a target links
  case $1 in
    netlink-reply)
      echo $(module_objects WeirNetfilter) $(module_objects WeirCore) $(module_objects WeirSystem) \
        $(c_objects CWeirLinux) $(pkg-config --libs libnftnl libmnl libnetfilter_conntrack) ;;
    *) echo $(module_objects WeirCore) ;;
  esac
}

build() {
  local t=$1 bin=$scratch/bin/$1
  # shellcheck disable=SC2046
  if [ -x "$bin" ] && [ -z "$(find "Tests/Fuzz/$t.swift" Tests/Fuzz/Support.swift $(objects "$t" | tr ' ' '\n' \
      | grep '\.o$') -newer "$bin" 2>/dev/null)" ]; then
    return
  fi
  echo "fuzz: building $t"
  # shellcheck disable=SC2046
  "${lock[@]}" swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name Fuzz -use-ld=lld \
    -I "$lib/Modules" -Xcc -fmodule-map-file="$lib/CWeirLinux.build/module.modulemap" \
    -Xcc -fmodule-map-file=Sources/CNetfilter/module.modulemap -Xcc -fmodule-map-file=Sources/CConntrack/module.modulemap \
    "Tests/Fuzz/$t.swift" Tests/Fuzz/Support.swift $(objects "$t") -o "$bin.tmp"
  mv "$bin.tmp" "$bin"
}

max_len() {
  case $1 in
    netlink-reply) echo 16384 ;;
    admin-request) echo 12288 ;;
    *) echo 4096 ;;
  esac
}

for t in "${targets[@]}"; do build "$t"; done

failed=()
summary=()
for t in "${targets[@]}"; do
  bin=$scratch/bin/$t
  regressions=Tests/Fuzz/regressions/$t
  mkdir -p "$regressions" "$scratch/corpus/$t"
  mapfile -t kept < <(find "$regressions" -type f ! -name '.*' | sort)
  if [ ${#kept[@]} -gt 0 ]; then
    echo "fuzz: $t: replaying ${#kept[@]} regression input(s)"
    if ! "$bin" -runs=1 "${kept[@]}" > "$scratch/logs/$t.replay.log" 2>&1; then
      tail -n 30 "$scratch/logs/$t.replay.log" >&2
      echo "fuzz: $t: a regression input crashes again (log: $scratch/logs/$t.replay.log)" >&2
      failed+=("$t")
      summary+=("$(printf '%-20s %10s %10s %8s %8s  %s' "$t" - - - - "regression fails")")
      continue
    fi
  fi
  dict=(); [ -f "Tests/Fuzz/dict/$t.dict" ] && dict=(-dict="Tests/Fuzz/dict/$t.dict")
  seed=(); [ -n "${FUZZ_SEED:-}" ] && seed=(-seed="$FUZZ_SEED")
  echo "fuzz: $t: ${seconds}s"
  log=$scratch/logs/$t.log
  status=ok
  # The scratch corpus comes first: libFuzzer writes new entries to the first directory.
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
      -print_final_stats=1 -artifact_prefix="$regressions/" "${dict[@]}" "${seed[@]}" \
      "$scratch/corpus/$t" "Tests/Fuzz/corpus/$t" > "$log" 2>&1; then
    status="CRASH: $( (grep -o "Test unit written to .*" "$log" || true) | sed 's/Test unit written to //' \
      | head -n 1)"
    grep -E "ERROR|fatal|SUMMARY|#[0-9]+ " "$log" | tail -n 20 >&2 || true
    failed+=("$t")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -n 1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -n 1 | cut -d' ' -f2)
  summary+=("$(printf '%-20s %10s %10s %8s %8s  %s' "$t" "${runs:--}" "${speed:--}" "${cov:--}" "${ft:--}" "$status")")
done

printf '\n%-20s %10s %10s %8s %8s  %s\n' target runs exec/s cov ft result
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}; crashing inputs are in Tests/Fuzz/regressions/TARGET, logs in $scratch/logs" >&2
  exit 1
fi
