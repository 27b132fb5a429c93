#!/usr/bin/env bash
# Validates the node-service packaging without booting anything: both systemd units (systemd-analyze verify), the
# Kubernetes manifest (kubernetes-validate --strict, from PyPI into .build/packaging-venv) and its image name, the
# safe node defaults of the shipped configuration, make install/uninstall, weir --version, the .deb (contents,
# Depends, conffiles, lintian) and the OCI image (built with buildah, run with podman: runc, vfs storage, no network).
# The .deb and image checks need the production binary: WEIR_BIN (make test passes .build/dist/weir). Prints one line
# per check and "packaging: N passed, N failed, N skipped". With WEIR_REQUIRE_KERNEL=1 (CI) a check that cannot run
# here (not root, no WEIR_BIN) is a failure, not a skip.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0; skipped=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "ok   $name"; passed=$((passed+1)); else echo "FAIL $name"; echo "$out" | sed 's/^/     /'; failed=$((failed+1)); fi; }
skip() {
  if [ "${WEIR_REQUIRE_KERNEL:-}" = 1 ]; then echo "FAIL $1: skipped, and WEIR_REQUIRE_KERNEL=1"; failed=$((failed+1))
  else echo "skip $1"; skipped=$((skipped+1)); fi
}

version=$(cat VERSION)
bin=${WEIR_BIN:-}
[ -n "$bin" ] || { [ -x .build/dist/weir ] && bin=$PWD/.build/dist/weir; }
[ -n "$bin" ] || bin=$PWD/.build/debug/weir
# The agent's config-file interface (weir run --config, --version) arrives with Package.swift reading WEIR_VERSION.
has_version=; grep -q WEIR_VERSION Package.swift && has_version=1

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# --- units --------------------------------------------------------------------------------------------------------
for u in weir weir-clean; do
  sed "s|/usr/local/bin/weir|$bin|" "systemd/$u.service" > "$tmp/$u.service"
done
verify_units() { local out; out=$(systemd-analyze verify "$tmp/weir.service" "$tmp/weir-clean.service" 2>&1); \
  [ -z "$out" ] || { echo "$out"; return 1; }; }
check "systemd-analyze verify systemd/weir.service systemd/weir-clean.service" verify_units
unit_policy() {
  local u=systemd/weir.service k
  for k in 'Type=notify' 'NotifyAccess=main' 'ExecStart=/usr/local/bin/weir run --config /etc/weir/weir.conf' \
           'ExecReload=/bin/kill -HUP $MAINPID' 'WatchdogSec=' 'Restart=always' 'RestartSec=' \
           'StartLimitIntervalSec=' 'StartLimitBurst=' 'OnFailure=weir-clean.service' 'RestartPreventExitStatus=2'; do
    grep -qF -- "$k" "$u" || { echo "$u: no $k"; return 1; }
  done
  grep -qx 'ExecStart=/usr/local/bin/weir clean' systemd/weir-clean.service || { echo "weir-clean: no weir clean"; return 1; }
  # TimeoutStopSec must outlast the drain.
  local stop drain
  stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$u")
  drain=$(sed -n 's/^WEIR_DRAIN_TIMEOUT=\([0-9]*\)s$/\1/p' packaging/weir.conf)
  [ -n "$stop" ] && [ -n "$drain" ] && [ "$stop" -gt "$drain" ] || { echo "TimeoutStopSec=$stop <= drain $drain"; return 1; }
}
check "weir.service: notify, watchdog, reload, restart, start limit, OnFailure=weir-clean, stop > drain" unit_policy
# issue 21: least privilege. No CAP_NET_RAW (no raw socket anywhere); /proc/sys and /sys read-only except exactly
# what the profiles write; the reload checks the file before it signals.
unit_privilege() {
  local u=systemd/weir.service
  ! grep -E '^(CapabilityBoundingSet|AmbientCapabilities)=' "$u" | grep -q CAP_NET_RAW || { echo "$u grants CAP_NET_RAW"; return 1; }
  grep -qx 'ProtectKernelTunables=yes' "$u" || { echo "$u: no ProtectKernelTunables=yes"; return 1; }
  grep -qx 'ReadWritePaths=/proc/sys/net -/sys/module/nf_conntrack/parameters' "$u" || { echo "$u: ReadWritePaths= is not exactly /proc/sys/net and nf_conntrack's parameters"; return 1; }
  grep -qx 'ExecReload=/usr/local/bin/weir run --check-config --config /etc/weir/weir.conf' "$u" || { echo "$u: ExecReload does not check first"; return 1; }
  # Netlink sockets are SOCK_RAW too, and need no CAP_NET_RAW.
  local raw; raw=$(grep -rnE 'SOCK_RAW|SOCK_PACKET|AF_PACKET|IPPROTO_RAW' Sources | grep -v AF_NETLINK)
  [ -z "$raw" ] || { echo "a raw socket, CAP_NET_RAW is needed after all: $raw"; return 1; }
}
check "weir.service: no CAP_NET_RAW, ProtectKernelTunables=yes with ReadWritePaths= for /proc/sys/net, reload checks first" unit_privilege

# --- Kubernetes ---------------------------------------------------------------------------------------------------
# In a venv of its own (Debian's python3 refuses a system-wide pip install): a failed install is a failed check.
kvenv=.build/packaging-venv
kubernetes_validate() {
  bash scripts/py-venv.sh "$kvenv" kubernetes_validate 'kubernetes-validate>=1.28,<2' || return 1
  "$kvenv/bin/python" -m kubernetes_validate --strict "$@"
}
check "kubernetes-validate --strict deploy/kubernetes/daemonset.yaml ($kvenv)" kubernetes_validate \
  deploy/kubernetes/daemonset.yaml
check "kubernetes-validate --strict deploy/kubernetes/cleanup.yaml ($kvenv)" kubernetes_validate \
  deploy/kubernetes/cleanup.yaml
image_name() {
  local imgs; imgs=$(sed -n 's/^ *image: *//p' deploy/kubernetes/daemonset.yaml deploy/kubernetes/cleanup.yaml | sort -u)
  [ "$imgs" = "localhost/weir:$version" ] || { echo "DaemonSet image '$imgs', make image builds localhost/weir:$version"; return 1; }
  grep -q '^IMAGE ?= localhost/weir:$(VERSION)$' Makefile || { echo "Makefile IMAGE is not localhost/weir:\$(VERSION)"; return 1; }
}
check "DaemonSet runs the image make image builds (localhost/weir:$version)" image_name

# --- safe node defaults -------------------------------------------------------------------------------------------
# The capture a config file asks for, as weir computes it (weir rules --dry-run with the file's capture keys).
dry_run_of() {
  local f=$1 envs=() line
  while IFS= read -r line; do
    case "$line" in ISTIO_*=*|ENVOY_PORT=*|INBOUND_*=*|PROXY_UID=*|PROXY_GID=*|KUBE_VIRT_INTERFACES=*|INVALID_DROP=*)
      envs+=("$line");; esac
  done < <(sed -e 's/^[[:space:]]*//' -e '/^#/d' -e 's/^export //' -e 's/"//g' -e "s/'//g" "$f")
  env -i "${envs[@]}" "$bin" rules --dry-run
}
set_has() { # set_has TEXT SET PORT...
  local text=$1 set=$2 elems p; shift 2
  elems=$(awk -v s="set $set {" '$0 ~ s {f=1} f && /elements/ {sub(/.*= \{/, ""); e=$0; while (e !~ /\}/) { getline l; e=e l } print e; exit}' <<<"$text" | tr -d '{} \t')
  for p in "$@"; do grep -qE "(^|,)$p(,|$)" <<<"$elems" || { echo "set $set lacks $p (has: $elems)"; return 1; }; done
}
safe_defaults() {
  local f=$1 text
  text=$(dry_run_of "$f") || { echo "$text"; return 1; }
  set_has "$text" inbound-ports-exclude 22 10250 15020 || return 1
  set_has "$text" outbound-ports-exclude 22 10250 || return 1
  grep -q 'jump redirect-inbound' <<<"$text" || { echo "no inbound capture at all"; return 1; }
}
awk '/^  weir.conf: \|/ {f=1; next} f && /^    / {sub(/^    /, ""); print; next} f {exit}' \
  deploy/kubernetes/daemonset.yaml > "$tmp/daemonset-weir.conf"
check "packaging/weir.conf never captures 22, 10250, 15020 inbound, nor 22, 10250 outbound" safe_defaults packaging/weir.conf
check "DaemonSet weir.conf never captures 22, 10250, 15020 inbound, nor 22, 10250 outbound" safe_defaults \
  "$tmp/daemonset-weir.conf"

# --- make install / uninstall -------------------------------------------------------------------------------------
install_tree() {
  local d=$tmp/destdir p=/opt/weirtest e=/srv/etc f
  make --no-print-directory -s install DESTDIR="$d" PREFIX=$p SYSCONFDIR=$e WEIR_BIN="$bin" >/dev/null || return 1
  for f in $p/bin/weir $p/lib/systemd/system/weir.service $p/lib/systemd/system/weir-clean.service \
           $e/weir/weir.conf $e/weir/profiles/default.profile $e/weir/profiles/README.md \
           $p/share/doc/weir/README.md $p/share/doc/weir/LICENSE $p/share/doc/weir/docs/install.md; do
    [ -f "$d$f" ] || { echo "missing $f"; return 1; }
  done
  [ -x "$d$p/bin/weir" ] || { echo "$p/bin/weir not executable"; return 1; }
  [ "$(ls "$d$e/weir/profiles/"*.profile | wc -l)" = "$(ls profiles/*.profile | wc -l)" ] || { echo "profiles missing"; return 1; }
  grep -qx "ExecStart=$p/bin/weir run --config $e/weir/weir.conf" "$d$p/lib/systemd/system/weir.service" \
    || { echo "ExecStart does not follow PREFIX/SYSCONFDIR"; grep ExecStart "$d$p/lib/systemd/system/weir.service"; return 1; }
  grep -qx "ExecStart=$p/bin/weir clean" "$d$p/lib/systemd/system/weir-clean.service" || { echo "weir-clean ExecStart"; return 1; }
  grep -qx "WEIR_PROFILES_DIR=$e/weir/profiles" "$d$e/weir/weir.conf" || { echo "WEIR_PROFILES_DIR not rewritten"; return 1; }
  ! grep -rq '/usr/local' "$d$p/lib/systemd/system" || { echo "units still name /usr/local"; return 1; }
  # An edited weir.conf survives a second install.
  echo "# edited" >> "$d$e/weir/weir.conf"
  make --no-print-directory -s install DESTDIR="$d" PREFIX=$p SYSCONFDIR=$e WEIR_BIN="$bin" >/dev/null || return 1
  grep -q '^# edited$' "$d$e/weir/weir.conf" || { echo "second install overwrote an edited weir.conf"; return 1; }
  make --no-print-directory -s uninstall DESTDIR="$d" PREFIX=$p SYSCONFDIR=$e >/dev/null || return 1
  local left; left=$(find "$d" -type f)
  [ -z "$left" ] || { echo "left after uninstall: $left"; return 1; }
}
check "make install DESTDIR PREFIX SYSCONFDIR WEIR_BIN: every file, paths follow; make uninstall removes them" install_tree
# The man page and completions (issue 21): generated from the installed binary, where each shell looks for them.
docs_paths="share/man/man1/weir.1.gz share/bash-completion/completions/weir share/zsh/vendor-completions/_weir
  share/fish/vendor_completions.d/weir.fish"
# docs_in ROOT: the four files under ROOT, a man page that man renders without a warning and names every subcommand,
# completion scripts that know the subcommands.
docs_in() {
  local r=$1 f warn
  for f in $docs_paths; do [ -s "$r/$f" ] || { echo "missing $f"; return 1; }; done
  warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$r/share/man/man1/weir.1.gz" 2>&1 >/dev/null)
  [ -z "$warn" ] || { echo "man warns: $warn"; return 1; }
  local page; page=$(zcat "$r/share/man/man1/weir.1.gz")
  for f in rules clean proxy tune status run; do
    grep -qi "^\.SH \"COMMAND: weir $f\"" <<<"$page" || { echo "man page has no section for weir $f"; return 1; }
  done
  grep -q -- '--check-config' <<<"$page" || { echo "man page lacks weir run --check-config"; return 1; }
  bash -n "$r/share/bash-completion/completions/weir" || return 1
  for f in share/bash-completion/completions/weir share/zsh/vendor-completions/_weir share/fish/vendor_completions.d/weir.fish; do
    grep -q 'status' "$r/$f" && grep -q 'check-config' "$r/$f" || { echo "$f does not complete weir's commands"; return 1; }
  done
}
install_docs() {
  local d=$tmp/docsdir p=/usr
  make --no-print-directory -s install DESTDIR="$d" PREFIX=$p SYSCONFDIR=/etc WEIR_BIN="$bin" >/dev/null || return 1
  docs_in "$d$p" || return 1
  make --no-print-directory -s uninstall DESTDIR="$d" PREFIX=$p SYSCONFDIR=/etc >/dev/null || return 1
  local f; for f in $docs_paths; do [ ! -e "$d$p/$f" ] || { echo "make uninstall left $p/$f"; return 1; }; done
}
check "make install: man page (help2man, renders cleanly) and bash/zsh/fish completions; make uninstall removes them" install_docs

# --- weir --version -----------------------------------------------------------------------------------------------
version_line() { local v; v=$("$1" --version 2>&1); grep -qxE "weir $version \(commit ([0-9a-f]{12}|unknown)\)" <<<"$v" \
  || { echo "weir --version said: $v"; return 1; }; }
if [ -n "$has_version" ]; then check "weir --version: weir $version (commit ...)" version_line "$bin"
else skip "weir --version (this weir has none yet)"; fi

# --- .deb ---------------------------------------------------------------------------------------------------------
if [ -n "${WEIR_BIN:-}" ]; then
  deb=.build/dist/weir_${version}-1_$(dpkg --print-architecture).deb
  build_deb() { rm -f "$deb"; local out; out=$(make --no-print-directory -s deb WEIR_BIN="$bin" 2>&1); \
    [ -f "$deb" ] && [ "$(tail -1 <<<"$out")" = "$deb" ] || { echo "$out"; return 1; }; }
  check "make deb" build_deb
  deb_contents() {
    local f; f=$(dpkg-deb -f "$deb" Package Version Architecture Depends)
    grep -qx "Package: weir" <<<"$f" && grep -qx "Architecture: $(dpkg --print-architecture)" <<<"$f" \
      && grep -q "^Depends: .*libnftnl11" <<<"$f" && grep -q "libnetfilter-conntrack3" <<<"$f" \
      && grep -q "libc6 (>=" <<<"$f" || { echo "$f"; return 1; }
    # Unpacked whole first: with pipefail, a reader that stops early would fail dpkg-deb (SIGPIPE).
    rm -rf "$tmp/deb" && mkdir -p "$tmp/deb" && dpkg-deb -x "$deb" "$tmp/deb/root" && dpkg-deb -e "$deb" "$tmp/deb/DEBIAN" || return 1
    local c; c=$(cat "$tmp/deb/DEBIAN/conffiles")
    for f in /etc/weir/weir.conf /etc/weir/profiles/default.profile /etc/weir/profiles/README.md; do
      grep -qx "$f" <<<"$c" || { echo "conffiles lack $f: $c"; return 1; }
    done
    local list; list=$(dpkg-deb -c "$deb")
    for f in ./usr/bin/weir ./lib/systemd/system/weir.service ./lib/systemd/system/weir-clean.service \
             ./usr/share/doc/weir/copyright ./usr/share/doc/weir/changelog.Debian.gz; do
      grep -q " $f\$" <<<"$list" || { echo "no $f in the package"; return 1; }
    done
    grep -q 'root/root' <<<"$list" && ! grep -qv 'root/root' <<<"$list" || { echo "files not owned by root"; return 1; }
    grep -qx 'ExecStart=/usr/bin/weir run --config /etc/weir/weir.conf' "$tmp/deb/root/lib/systemd/system/weir.service" \
      || { echo "unit ExecStart"; return 1; }
  }
  check "deb: Depends from dpkg-shlibdeps, /etc/weir conffiles, units, copyright, changelog, root-owned" deb_contents
  check "deb: /usr/share/man/man1/weir.1.gz and the bash, zsh and fish completions" docs_in "$tmp/deb/root/usr"
  maint_scripts() {
    local s
    for s in postinst prerm postrm; do
      s=$(sed "/^[[:space:]]*#/d" "$tmp/deb/DEBIAN/$s") || return 1
      if grep -qE 'systemctl +(start|enable|restart)|deb-systemd-(helper +enable|invoke +start)|weir +(run|rules)' <<<"$s"; then
        echo "a maintainer script starts, enables or captures:"; echo "$s"; return 1; fi
    done
    # The one restart: on an upgrade, of an agent that runs (handed over without loss), never on a first install.
    s=$(sed "/^[[:space:]]*#/d" "$tmp/deb/DEBIAN/postinst")
    if grep -q 'try-restart' <<<"$s" && ! grep -qE 'if \[ -n "\$2" \] && systemctl is-active --quiet weir.service; then' <<<"$s"; then
      echo "postinst restarts the agent without checking it is an upgrade of a running agent:"; echo "$s"; return 1; fi
    grep -q '\[ -d /run/systemd/system \]' "$tmp/deb/DEBIAN/postinst" || return 1
  }
  check "deb: maintainer scripts only daemon-reload (and restart a running agent on upgrade), never enable, start or capture" maint_scripts
  if command -v lintian >/dev/null; then
    # Tags that stay, each for a reason given in docs/install.md.
    allowed='initial-upload-closes-no-bugs|maintainer-script-calls-systemctl'
    run_lintian() {
      local out rc; out=$(lintian "$deb" 2>&1); rc=$?
      out=$(grep -v 'running with root privileges' <<<"$out")
      echo "$out" | sed 's/^/lintian: /' >&2
      [ $rc = 0 ] || { echo "lintian exited $rc"; return 1; }
      ! grep -E '^[EW]: ' <<<"$out" | grep -vE ": ($allowed)( |\$)"
    }
    lint=$(run_lintian 2>&1); rc=$?
    if [ $rc = 0 ]; then echo "ok   lintian: no error, only the documented warnings"; passed=$((passed+1))
    else echo "FAIL lintian: errors or undocumented warnings"; failed=$((failed+1)); fi
    echo "$lint" | grep -v '^lintian: $' | sed 's/^/     /'
  else
    echo "FAIL lintian missing (package lintian)"; failed=$((failed+1))
  fi
else
  skip "deb (WEIR_BIN not given: make test passes the release binary)"
fi

# --- image --------------------------------------------------------------------------------------------------------
if [ -n "${WEIR_BIN:-}" ] && [ "$(id -u)" = 0 ]; then
  image=localhost/weir:$version
  build_image() { make --no-print-directory -s image WEIR_BIN="$bin" >"$tmp/image.out" 2>&1 || { cat "$tmp/image.out"; return 1; }; }
  check "make image: $image from scratch (buildah)" build_image
  sed 's/^/     /' "$tmp/image.out" | tail -1
  pinned() { # make image's manifests: valid, and every image pinned to the digest of the archive it wrote
    local d; d=$(tar -xOf ".build/dist/weir-image-$version.tar" index.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])') || return 1
    kubernetes_validate .build/dist/kubernetes/daemonset.yaml .build/dist/kubernetes/cleanup.yaml || return 1
    ! grep -hE '^ *image: ' .build/dist/kubernetes/*.yaml | grep -v "image: $image@$d\$" || { echo "not pinned to $d"; return 1; }
  }
  check "make image: .build/dist/kubernetes/*.yaml valid and pinned to the archive's digest" pinned
  # In the image, with podman only (runc: crun refuses this machine's hybrid cgroups; vfs storage; no network; the
  # two ulimits runc cannot raise past this machine's hard limits). A podman that cannot run it fails the check.
  in_image() {
    timeout 60 podman --storage-driver vfs --runtime runc run --rm --network none --ulimit nofile=1024:1024 \
      --ulimit nproc=1024:1024 "$image" "$@" 2>"$tmp/podman.err"
  }
  image_runs() {
    local out; out=$(in_image rules --dry-run -b '*' -d 22) || { [ -z "$out" ] || echo "$out"; echo "podman failed:"; cat "$tmp/podman.err"; return 1; }
    grep -q '^table inet weir {' <<<"$out" || { echo "$out"; return 1; }
    [ -z "$has_version" ] || { out=$(in_image --version) && grep -qxE "weir $version \(commit ([0-9a-f]{12}|unknown)\)" <<<"$out"; } \
      || { echo "weir --version in the image said: $out"; return 1; }
  }
  if [ -n "$has_version" ]; then name="the image runs weir --version and weir rules --dry-run"
  else name="the image runs weir rules --dry-run (--version: not in this weir yet)"; fi
  check "$name, with podman (runc, vfs storage, --network none)" image_runs
else
  skip "image (needs root and WEIR_BIN)"
fi

echo "packaging: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
