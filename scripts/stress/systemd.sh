# The systemd part (sourced by scripts/stress.sh): scripts/test-systemd.sh, the real systemd in a container with the
# weir .deb installed, with 1,000 streaming connections instead of 50 through `systemctl restart weir`, a package
# upgrade (`dpkg -i` of the .deb again, whose postinst restarts the agent) and `kill -9` of the agent. Its three
# checks under load become this part's; the rest of that test runs in `make test`.
stress_systemd() {
  local sec="systemd: 1,000 streaming connections" log=$LOGS/systemd.log check line
  say "$sec: scripts/test-systemd.sh with WEIR_SYSTEMD_LOAD_CONNS=1000"
  WEIR_SYSTEMD_LOAD_CONNS=1000 bash scripts/test-systemd.sh >"$log" 2>&1 || true
  for check in "systemctl restart under load" "package upgrade (dpkg -i) under load" "kill -9 under load"; do
    line=$(grep -F -- "$check" "$log" | head -n 1 || true)
    pass_line "$sec" "$check" "${line:-no such line: the test did not get there (see $log)}" \
      "ok: nothing reset, refused or corrupt (kill -9: nothing refused)" "$([[ $line == ok* ]] && echo 1 || echo 0)"
  done
}
