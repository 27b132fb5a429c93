#!/usr/bin/env python3
"""Writes BENCHMARKS.md and the plots in docs/bench/ from the raw samples of one `make bench` run.

    report.py --data DIR [--out DIR] [--no-plots]

DIR holds what scripts/bench.sh, scripts/bench-capture.sh and scripts/bench/pods.sh record: meta.tsv (key, value),
proxy.tsv (round, target, metric, value), capture.tsv (family, measure, variant, size, round, value) and pods.tsv
(pods, target, metric, value; repeated rows are samples). The samples are copied to
OUT/docs/bench/data/, so the committed report can be made again from the committed samples (`make bench-report`),
for instance once `make stress` has written docs/stress-results.md, which is included as the Stress section.
The prose around the tables is scripts/bench/BENCHMARKS.md.in. Medians over rounds everywhere; ratios are ratios of
medians of targets measured in the same run.
"""
import argparse
import math
import os
import re
import shutil
import statistics
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PLOTS = ("throughput.png", "cpu_per_gb.png", "latency.png", "rss.png", "rule_apply.png", "rule_cost.png",
         "pod_add.png", "pod_memory.png")
TARGETS = ("direct", "weir", "haproxy")
LABEL = {"direct": "direct", "weir": "weir", "haproxy": "HAProxy"}
COLOR = {"direct": "#7f7f7f", "weir": "#1f77b4", "haproxy": "#d62728"}
RSS_GOAL_KIB = 9 * 1024          # "under 9 MB", read as MiB, as the kernel gives RSS in KiB
PER_CONN_GOAL_KIB = 1.0
SYSCALLS_GOAL = 17             # issue 18: syscalls per proxied connection (wrk, `Connection: close`)
# A run counts as quiet when the machine was at least this idle over the 5 s just before it, and other processes
# (all but the run's own, kernel threads included) used at most this share of all the machine's CPU time during it,
# user and system time together (/proc/stat: user, nice, system, irq, softirq).
QUIET_IDLE_BEFORE = 0.90
QUIET_OTHER = 0.05
# p99 is judged round by round (one-sided sign test): "met" needs weir at or below HAProxy in so many rounds that a
# coin toss would do as well with a probability of at most this; "NOT MET" needs HAProxy below weir as often.
P99_ALPHA = 0.05
NOT_MEASURED = "not measured in this run"


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


class Run:
    def __init__(self, data):
        self.meta = {k: v for k, v in (r[:2] for r in read_tsv(os.path.join(data, "meta.tsv")) if len(r) >= 2)}
        self.proxy = defaultdict(dict)      # (target, metric) -> {round: value}
        for r, t, m, v in (row for row in read_tsv(os.path.join(data, "proxy.tsv")) if len(row) == 4):
            try:
                self.proxy[(t, m)][int(r)] = float(v)
            except ValueError:
                pass
        self.capture = defaultdict(list)    # (family, measure, variant, size) -> [values]
        self.capture_notes = []             # (measure, variant, size, value)
        for row in read_tsv(os.path.join(data, "capture.tsv")):
            if len(row) != 6:
                continue
            fam, measure, variant, size, _, value = row
            if measure in ("apply_ms", "rate", "rule_us"):
                try:
                    self.capture[(fam, measure, variant, int(size))].append(float(value))
                except ValueError:
                    pass
            else:
                self.capture_notes.append((measure, variant, int(size), value))
        # CPU per GB forwarded, per round: the proxy's CPU seconds over the GB (1e9 bytes) iperf3 received.
        for n in self.streams:
            for t in ("weir", "haproxy"):
                cpu, moved = self.proxy.get((t, "cpu_s_%d" % n), {}), self.proxy.get((t, "bytes_%d" % n), {})
                self.proxy[(t, "cpugb_%d" % n)] = {r: cpu[r] / (moved[r] / 1e9) for r in cpu if moved.get(r)}
        for t in ("weir", "haproxy"):
            rss = self.proxy.get((t, "rss_at_%d" % self.hold), {}).get(0)
            base = self.proxy.get((t, "rss_at_0"), {}).get(0)
            if rss is not None and base is not None and self.hold:
                self.proxy[(t, "perconn")] = {0: (rss - base) / self.hold}

    @property
    def streams(self):
        return [int(s) for s in self.meta.get("streams", "1 8").split()]

    @property
    def hold_steps(self):
        return [int(s) for s in self.meta.get("hold_steps", "").split()]

    @property
    def hold(self):
        return self.hold_steps[-1] if self.hold_steps else 0

    def values(self, target, metric):
        d = self.proxy.get((target, metric), {})
        return [d[r] for r in sorted(d)]

    def med(self, target, metric):
        v = self.values(target, metric)
        return statistics.median(v) if v else None

    def cap(self, fam, measure, variant, size):
        v = self.capture.get((fam, measure, variant, size), [])
        return statistics.median(v) if v else None

    def cap_sizes(self, fam, measure, variant):
        return sorted(s for (f, m, v, s) in self.capture if (f, m, v) == (fam, measure, variant))

    def num(self, key):
        try:
            return float(self.meta[key])
        except (KeyError, ValueError):
            return None

    @property
    def other_share(self):
        """Other processes' user + system time as a share of the machine's; None if the run did not record both."""
        user, system = self.num("other_user_share"), self.num("other_system_share")
        return None if user is None or system is None else max(0.0, user + system)

    @property
    def quiet(self):
        """True, False, or None when the run did not record what the rule needs (and nothing it did record breaks
        the rule)."""
        idle, other, user = self.num("idle_share_before"), self.other_share, self.num("other_user_share")
        if (idle is not None and idle < QUIET_IDLE_BEFORE) or (other is not None and other > QUIET_OTHER) or \
                (user is not None and user > QUIET_OTHER):
            return False
        if idle is None or other is None:
            return None
        return True


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def fmt_ratio(r):
    return "n/a" if r is None else "%.2f×" % r


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def minutes(seconds):
    return "%d min %02d s" % divmod(int(round(seconds)), 60)


# --- sections ------------------------------------------------------------------------------------------------------

def tick_rate(m):
    """How the kernel's tick rate (CONFIG_HZ) was found in this run, or None."""
    parts = []
    if m.get("config_hz"):
        parts.append("CONFIG_HZ=%s in the kernel's config (`%s`)" % (m["config_hz"], m.get("config_hz_source", "?")))
    if m.get("jiffies_hz"):
        parts.append("jiffies advanced %s times a second over %s s (`/proc/timer_list`)" % (
            m["jiffies_hz"], m.get("jiffies_seconds", "?")))
    return "; ".join(parts) or None


def tick_short(m):
    """The tick rate for the prose of the template."""
    if m.get("config_hz"):
        return "CONFIG_HZ %s in this run, see the table above" % m["config_hz"]
    if m.get("jiffies_hz"):
        return "about %.0f Hz in this run, counted from jiffies, see the table above" % float(m["jiffies_hz"])
    return "CONFIG_HZ; the tick rate was %s" % NOT_MEASURED


def pct(v):
    return "%.1f%%" % (100 * v)


def section_run(run):
    m = run.meta
    lines = []
    try:
        start = int(m["started_epoch"])
        proxy = int(m["proxy_finished_epoch"]) - start
        total = int(m["finished_epoch"]) - start
        durations = "%s in all: %s for the proxy measures, %s for the capture measures" % (
            minutes(total), minutes(proxy), minutes(total - proxy))
    except (KeyError, ValueError):
        durations = "durations not recorded"
    if m.get("describe"):
        tree = "`git describe --always --dirty`: `%s`" % m["describe"]
    else:
        tree = "`git describe`: %s" % NOT_MEASURED
    lines.append("Run of **%s**, commit `%s` (%s), binary `%s`, %s." % (
        m.get("started", "?"), m.get("commit", "?"), tree, m.get("weir_version", "?"), durations))
    if m.get("describe", "").endswith("-dirty") or m.get("describe") == "unknown" or m.get("dirty") == "yes":
        lines.append("")
        lines.append("> **Measured from a tree with uncommitted changes**%s: these figures belong to no commit." % (
            " (written with BENCH_ALLOW_DIRTY=1)" if m.get("allow_dirty") == "1" else ""))
    built = re.search(r"\(commit ([0-9a-f]+)\)", m.get("weir_version", ""))
    if built and m.get("commit") and not (built.group(1).startswith(m["commit"]) or
                                          m["commit"].startswith(built.group(1))):
        lines.append("")
        lines.append("> The binary measured says it was built from commit `%s`, not `%s`." % (
            built.group(1), m["commit"]))
    lines.append("")
    lines.append("| | |")
    lines.append("|---|---|")
    lines.append("| kernel | %s |" % m.get("kernel", "?"))
    lines.append("| kernel tick rate | %s |" % (tick_rate(m) or NOT_MEASURED))
    lines.append("| softirq time charged to | %s |" % {
        "n": "the process it interrupted (CONFIG_IRQ_TIME_ACCOUNTING not set, `%s`)" % m.get("config_hz_source"),
        "y": "no process (CONFIG_IRQ_TIME_ACCOUNTING=y, `%s`): the bench's own softirq work counts as other "
             "processes' below" % m.get("config_hz_source")}.get(m.get("irq_time_accounting"), NOT_MEASURED))
    lines.append("| CPUs | %s (%s) |" % (m.get("cpus", "?"), m.get("cpu_model", "?")))
    lines.append("| weir | `%s`, %s workers |" % (m.get("weir_binary", "?"), m.get("threads", "?")))
    lines.append("| HAProxy | %s, `nbthread %s` |" % (m.get("haproxy_version", "?"), m.get("threads", "?")))
    lines.append("| each measure | %s s, %s interleaved rounds (direct, weir, HAProxy, direct, ...) |" % (
        m.get("seconds", "?"), m.get("rounds", "?")))
    lines.append("| streams | %s |" % ", ".join(str(s) for s in run.streams))
    lines.append("| idle connections held | %s |" % ", ".join("{:,}".format(s) for s in run.hold_steps))
    lines.append("| fresh starts for memory | %s of each; load phase: %s |" % (
        m.get("idle_starts", "?"), "%s s per part" % m["load_seconds"] if m.get("load_seconds") else NOT_MEASURED))
    idle = run.num("idle_share_before")
    if idle is not None:
        lines.append("| machine before the run | %.0f%% idle over 5 s, load average %s |" % (
            100 * idle, m.get("load_before", "?")))
    user, system, kth, own = (run.num(k) for k in ("other_user_share", "other_system_share", "kthread_share",
                                                      "own_share"))
    if user is not None:
        if system is not None:
            other = "%s of the machine's CPU time: user %s, system + irq + softirq %s (of which kernel threads %s)" % (
                pct(run.other_share), pct(user), pct(system), pct(kth) if kth is not None else "?")
        else:
            other = "user time %s; system and softirq time %s" % (pct(max(0.0, user)), NOT_MEASURED)
        lines.append("| other processes during the run | %s; load average at the end %s |" % (
            other, m.get("load_after", "?")))
    if own is not None:
        lines.append("| this run's own processes | %s of the machine's CPU time |" % pct(own))
    lines.append("")
    rule = ("at least %.0f%% idle over the 5 s before the run, and other processes (everything but this run's own "
            "processes and their children, kernel threads included) at most %.0f%% of the machine's CPU time during "
            "it, user and system time together (`/proc/stat`: user, nice, system, irq, softirq)" % (
                100 * QUIET_IDLE_BEFORE, 100 * QUIET_OTHER))
    if run.quiet:
        lines.append("Conditions: **quiet machine**: %s." % rule)
    elif run.quiet is None:
        lines.append("Conditions: whether the machine was quiet was %s: the run did not record other processes' "
                     "system and softirq time, which the rule needs. A quiet machine is %s." % (NOT_MEASURED, rule))
    else:
        lines.append("> **Measured under load.** Other work ran on this machine before or during the run (see the "
                     "rows above), so absolute figures are lower and noisier than on a quiet machine. The ratios "
                     "still compare targets measured side by side in the same rounds, but read them with that in "
                     "mind. A quiet machine is %s." % rule)
    return "\n".join(lines)


def goal_row(name, target, weir, hap, unit, digits, r, met, note="", of_goal=False, status=None):
    if status is None:
        status = "met" if met else "**NOT MET**"
        if r is None or met is None:
            status = NOT_MEASURED
    shown = fmt_ratio(r) + (" the goal" if of_goal and r is not None else "")
    return [name, target, fmt(weir, digits) + (" " + unit if weir is not None else ""),
            fmt(hap, digits) + (" " + unit if hap is not None else ""), shown, status + (" " + note if note else "")]


def sign_test_rounds(n, alpha=P99_ALPHA):
    """The fewest of n paired rounds one side must win for a coin toss to do as well with probability <= alpha
    (one-sided sign test), or None if no count is enough (too few rounds)."""
    for k in range(n + 1):
        if sum(math.comb(n, j) for j in range(k, n + 1)) / 2 ** n <= alpha:
            return k
    return None


def p99_verdict(run):
    """(status, note) of the p99 goal, judged round by round; see P99_ALPHA and the template."""
    w, h = run.proxy.get(("weir", "p99"), {}), run.proxy.get(("haproxy", "p99"), {})
    rounds = sorted(set(w) & set(h))
    r = ratio(run.med("weir", "p99"), run.med("haproxy", "p99"))
    if not rounds or r is None:
        return NOT_MEASURED, ""
    n = len(rounds)
    wins = sum(1 for i in rounds if w[i] <= h[i])
    need = sign_test_rounds(n)
    note = "(weir at or below HAProxy in %d of %d rounds; " % (wins, n)
    if need is None:
        return "undecided", note + "%d round%s too few for the rule)" % (n, "s are" if n > 1 else " is")
    note += "met needs %d of %d and a median ratio ≤ 1.00)" % (need, n)
    if wins >= need and r <= 1.0:
        return "met", note
    if n - wins >= need and r > 1.0:
        return "**NOT MET**", note
    return "parity", note


def goals(run):
    rows = []
    c_w, c_h = run.med("weir", "cpuconn"), run.med("haproxy", "cpuconn")
    r = ratio(c_w, c_h)
    rows.append(goal_row("proxy CPU per new connection", "≤ 0.80× HAProxy", c_w, c_h, "µs", 1, r,
                         r is not None and r <= 0.80))
    g_w, g_h = run.med("weir", "cpugb_8"), run.med("haproxy", "cpugb_8")
    r = ratio(g_w, g_h)
    rows.append(goal_row("proxy CPU per GB forwarded, 8 streams", "≤ 0.80× HAProxy", g_w, g_h, "CPU s/GB", 3, r,
                         r is not None and r <= 0.80))
    for n in (1, 8):
        t_w, t_h = run.med("weir", "gbps_%d" % n), run.med("haproxy", "gbps_%d" % n)
        r = ratio(t_w, t_h)
        rows.append(goal_row("throughput, %d stream%s" % (n, "s" if n > 1 else ""), "≥ 1.30× HAProxy", t_w, t_h,
                             "Gb/s", 2, r, r is not None and r >= 1.30))
    status, note = p99_verdict(run)
    rows.append(goal_row("p99 of the 1 KiB ping-pong", "≤ 1.00× HAProxy, round by round",
                         run.med("weir", "p99"), run.med("haproxy", "p99"), "µs", 1,
                         ratio(run.med("weir", "p99"), run.med("haproxy", "p99")), None, note, status=status))
    hap_load = run.med("haproxy", "load_smaps_rss")
    for t, name in (("weir-proxy", "RSS after load, `weir proxy`"),
                    ("weir-run", "RSS after load, `weir run` (capture installed)")):
        v = run.med(t, "load_smaps_rss")
        rows.append(goal_row(name, "< 9 MiB (9,216 KiB)", v, hap_load, "KiB", 0, ratio(v, RSS_GOAL_KIB),
                             v is not None and v < RSS_GOAL_KIB, of_goal=True))
    s_w, s_h = run.med("weir", "syscalls"), run.med("haproxy", "syscalls")
    rows.append(goal_row("syscalls per proxied connection", "weir ≤ %d" % SYSCALLS_GOAL, s_w, s_h, "", 2,
                         ratio(s_w, SYSCALLS_GOAL), s_w is not None and s_w <= SYSCALLS_GOAL, of_goal=True))
    pc_w, pc_h = run.med("weir", "perconn"), run.med("haproxy", "perconn")
    rows.append(goal_row("RSS per idle connection, at {:,}".format(run.hold), "< 1 KiB", pc_w, pc_h, "KiB", 2,
                         ratio(pc_w, PER_CONN_GOAL_KIB), pc_w is not None and pc_w < PER_CONN_GOAL_KIB,
                         of_goal=True))
    return table(["goal", "target", "weir", "HAProxy", "ratio", "status"], rows)


def results(run):
    rows = []

    def row(label, metric, digits, direct=True):
        w, h = run.med("weir", metric), run.med("haproxy", metric)
        d = run.med("direct", metric) if direct else None
        rows.append([label, fmt(d, digits) if direct else "-", fmt(w, digits), fmt(h, digits),
                     fmt_ratio(ratio(w, h)), fmt_ratio(ratio(w, d)) if direct else "-"])

    for n in run.streams:
        row("throughput, %d stream%s (Gb/s)" % (n, "s" if n > 1 else ""), "gbps_%d" % n, 2)
    for n in run.streams:
        row("proxy CPU per GB forwarded, %d stream%s (CPU s/GB)" % (n, "s" if n > 1 else ""), "cpugb_%d" % n, 3,
            direct=False)
    row("new connections/s (wrk, `Connection: close`; information)", "cps", 0)
    row("proxy CPU per new connection (µs, user+sys)", "cpuconn", 1, direct=False)
    row("client + server CPU per new connection (µs, wrk + nginx)", "cscpu", 1)
    row("segments on loopback per new connection", "segs", 2)
    for k, name in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")):
        row("1 KiB ping-pong %s (µs)" % name, k, 1)
    return table(["measure", "direct", "weir", "HAProxy", "weir/HAProxy", "weir/direct"], rows)


def syscalls(run):
    """Syscalls per proxied connection, weir and HAProxy side by side, call by call (scripts/bench/syscalls.sh)."""
    s_w, s_h = run.med("weir", "syscalls"), run.med("haproxy", "syscalls")
    if s_w is None and s_h is None:
        return "_Syscalls per connection: %s._" % NOT_MEASURED
    names = sorted({m[len("syscalls_"):] for (t, m) in run.proxy if t in ("weir", "haproxy")
                    and m.startswith("syscalls_")},
                   key=lambda n: (-max(run.med("weir", "syscalls_" + n) or 0, run.med("haproxy", "syscalls_" + n) or 0),
                                  n))   # ties by name: the same rows in the same order every time

    def cell(t, name):
        calls, errors = run.med(t, "syscalls_" + name), run.med(t, "syscall_errors_" + name)
        if calls is None:
            return "-"
        return fmt(calls, 2) + (" (%s failed)" % fmt(errors, 2) if errors else "")

    rows = [["**all calls** (goal: weir ≤ %d)" % SYSCALLS_GOAL, fmt(s_w, 2), fmt(s_h, 2),
             fmt_ratio(ratio(s_w, s_h))]]
    rows += [["`%s`" % n, cell("weir", n), cell("haproxy", n), fmt_ratio(ratio(run.med("weir", "syscalls_" + n),
                                                                               run.med("haproxy", "syscalls_" + n)))]
             for n in names]
    conns = " / ".join(fmt(run.med(t, "syscall_conns"), 0) for t in ("weir", "haproxy"))
    return table(["per proxied connection", "weir", "HAProxy", "weir/HAProxy"], rows) + \
        "\n\nConnections counted (weir / HAProxy): %s." % conns


def memory(run):
    """Memory of the fresh starts (idle, then after the load phase) and of the long-running processes, in KiB."""
    rows = []
    missing = []

    def row(label, metric, targets=("weir-proxy", "weir-run", "haproxy"), digits=0):
        v = [run.med(t, metric) for t in targets]
        missing.extend(1 for x in v if x is None)
        rows.append([label] + [fmt(x, digits) for x in v] + [fmt_ratio(ratio(v[0], v[-1])),
                                                             fmt_ratio(ratio(v[1], v[-1]))])

    sub = "&nbsp;&nbsp;&nbsp;&nbsp;"
    for prefix, when in (("load", "after the load phase"), ("idle", "idle, 1 s after the start")):
        row("**%s**: Rss (`smaps_rollup`)%s" % (when, ", judged" if prefix == "load" else ""), prefix + "_smaps_rss")
        row(sub + "VmRSS (`/proc/PID/status`)", prefix + "_rss")
        row(sub + "of which anonymous, RssAnon (heap, stacks)", prefix + "_rss_anon")
        row(sub + "of which file-backed, RssFile (code, libraries)", prefix + "_rss_file")
        row(sub + "Pss (`smaps_rollup`: shared pages divided among their users)", prefix + "_pss")
    out = [table(["memory of fresh starts (KiB, median of the starts)", "`weir proxy`", "`weir run`", "HAProxy",
                  "`weir proxy` / HAProxy", "`weir run` / HAProxy"], rows)]
    rows = []
    for label, metric in (("VmRSS", "rss_at_0"), ("Rss (`smaps_rollup`)", "smaps_rss_at_0"),
                          ("RssAnon: anonymous (heap, stacks)", "anon_at_0"), ("Pss (`smaps_rollup`)", "pss_at_0")):
        w, h = run.med("weir", metric), run.med("haproxy", metric)
        missing.extend(1 for x in (w, h) if x is None)
        rows.append(["after the rounds, no connection: %s (KiB)" % label, fmt(w, 0), fmt(h, 0),
                     fmt_ratio(ratio(w, h))])
    w, h = run.med("weir", "perconn"), run.med("haproxy", "perconn")
    rows.append(["extra VmRSS per idle connection at {:,} (KiB)".format(run.hold), fmt(w, 2), fmt(h, 2),
                 fmt_ratio(ratio(w, h))])
    out += ["", "The long-running processes of the rounds (`weir proxy`, HAProxy):", "",
            table(["memory after the rounds", "weir", "HAProxy", "weir/HAProxy"], rows)]
    if missing:
        out += ["", "n/a: %s." % NOT_MEASURED]
    return "\n".join(out)


def raw(run):
    rows = []
    metrics = [("gbps_%d" % n, "throughput, %d stream%s (Gb/s)" % (n, "s" if n > 1 else ""), 2) for n in run.streams]
    metrics += [("cpugb_8", "proxy CPU per GB, 8 streams (s/GB)", 3), ("cps", "new connections/s", 0),
                ("cpuconn", "proxy CPU per connection (µs)", 1), ("p50", "p50 (µs)", 1), ("p99", "p99 (µs)", 1),
                ("p999", "p99.9 (µs)", 1)]
    for metric, label, digits in metrics:
        cells = [" ".join(fmt(v, digits) for v in run.values(t, metric)) or "-" for t in TARGETS]
        if any(c != "-" for c in cells):
            rows.append([label] + cells)
    for metric, label in (("idle_rss", "idle VmRSS of fresh starts (KiB)"),
                          ("load_smaps_rss", "Rss after load of fresh starts (KiB)")):
        cells = ["proxy: %s; run: %s" % (" ".join(fmt(v, 0) for v in run.values("weir-proxy", metric)) or "-",
                                         " ".join(fmt(v, 0) for v in run.values("weir-run", metric)) or "-"),
                 " ".join(fmt(v, 0) for v in run.values("haproxy", metric)) or "-"]
        rows.append([label, "-"] + (cells if run.values("haproxy", metric) else [NOT_MEASURED, NOT_MEASURED]))
    steps = [0] + run.hold_steps
    rows.append(["RSS at %s idle connections (KiB)" % ", ".join("{:,}".format(s) for s in steps), "-"] +
                [" ".join(fmt(run.med(t, "rss_at_%d" % s), 0) for s in steps) for t in ("weir", "haproxy")])
    return table(["", "direct", "weir", "HAProxy"], rows)


def ipt_caption(run):
    skipped = [(v, s) for m, v, s, _ in run.capture_notes if m == "ipt_skipped"]
    measured = run.cap_sizes("v6", "rule_us", "iptables")
    if not skipped:
        largest = max(measured) if measured else None
        load = run.cap("v6", "apply_ms", "iptables", largest) if largest else None
        return ("The iptables side was measured at every size%s." % (
            " (its load took %s ms at {:,} rules)".format(largest) % fmt(load, 0) if load is not None else ""))
    why = {v for v, _ in skipped}
    sizes = ", ".join("{:,}".format(s) for _, s in skipped)
    if "slow" in why:
        limit = next(val for m, v, s, val in run.capture_notes if m == "ipt_skipped")
        return ("The iptables side stops at {:,} rules: loading them took longer than {:,} ms, so {} were not "
                "loaded.".format(max(measured) if measured else 0, int(float(limit)), sizes))
    return "The iptables side was capped at {:,} rules (BENCH_IPT_MAX): {} not measured.".format(
        max(measured) if measured else 0, sizes)


def capture(run):
    if not run.capture:
        return "_The capture benchmark did not run (BENCH_CAPTURE=0)._"
    out = []
    base = run.cap("v4", "apply_ms", "weir", 10000)
    rows = []
    for variant, label in (("weir", "`weir rules -x @10k-cidrs` (netlink, one batch, one interval set)"),
                           ("weir-unchanged", "the same again, unchanged (read back and compare, nothing sent)"),
                           ("nft", "`nft -f` of weir's own dry-run text"),
                           ("iptables", "`iptables-restore`, one rule per CIDR (istio's layout)")):
        v = run.cap("v4", "apply_ms", variant, 10000)
        rows.append([label, "%s ms" % fmt(v, 0), fmt_ratio(ratio(v, base)), ""])
    none = run.cap("v4", "rate", "none", 0)
    for variant, size, label in (("none", 0, "new connections/s, no rules"),
                                 ("weir", 10000, "new connections/s, weir with 10,000 CIDRs"),
                                 ("iptables", 10000, "new connections/s, iptables with 10,000 rules")):
        v = run.cap("v4", "rate", variant, size)
        rows.append([label, fmt(v, 0), fmt_ratio(ratio(v, none)),
                     "%s µs" % fmt(run.cap("v4", "rule_us", variant, size), 2)])
    out.append("**IPv4, 10,000 excluded /32s** (apply: median of 5; connections: median of the rounds):")
    out.append("")
    out.append(table(["measure", "value", "ratio", "rules, CPU per connection"], rows))
    out.append("")
    sizes = sorted(set(run.cap_sizes("v6", "apply_ms", "weir")) | set(run.cap_sizes("v6", "rule_us", "weir")))
    rows = []
    for s in [0] + [s for s in sizes if s]:
        ipt = run.cap("v6", "rule_us", "iptables", s)
        wr = run.cap("v6", "rule_us", "weir", s)
        rows.append(["{:,}".format(s),
                     "%s ms" % fmt(run.cap("v6", "apply_ms", "weir", s), 0) if s else "-",
                     "%s ms" % fmt(run.cap("v6", "apply_ms", "nft", s), 0) if s else "-",
                     "%s ms" % fmt(run.cap("v6", "apply_ms", "iptables", s), 0) if s and
                     run.cap("v6", "apply_ms", "iptables", s) is not None else "-",
                     "%s µs" % fmt(wr, 2), "%s µs" % fmt(ipt, 2) if ipt is not None else "-",
                     fmt_ratio(ratio(ipt, wr)) if ipt is not None else "-",
                     fmt(run.cap("v6", "rate", "weir", s), 0),
                     fmt(run.cap("v6", "rate", "iptables", s), 0) if ipt is not None else "-"])
    out.append("**IPv6, the scale** (excluded /64s; apply: median of 3; connections: median of the rounds; no rules "
               "at all: %s connections/s):" % fmt(run.cap("v6", "rate", "none", 0), 0))
    out.append("")
    out.append(table(["excluded CIDRs", "weir apply", "`nft -f` apply", "`ip6tables-restore` apply",
                      "weir rules, CPU/conn", "iptables rules, CPU/conn", "iptables/weir", "weir conn/s",
                      "iptables conn/s"], rows))
    out.append("")
    out.append(ipt_caption(run))
    return "\n".join(out)


def stress():
    path = os.path.join(REPO, "docs", "stress-results.md")
    if not os.path.exists(path):
        return ("_Not run yet._ `make stress` writes its summary to `docs/stress-results.md`; the next `make bench`, "
                "or `make bench-report` (no measuring), includes it here verbatim.")
    with open(path) as f:
        text = f.read().strip()
    return ("_From `docs/stress-results.md`, written by `make stress` and included verbatim; `make bench` does not "
            "measure or change it._\n\n" + text)


# --- pod mode (scripts/bench/pods.sh, issue 19) --------------------------------------------------------------------

POD_ADD_P99_GOAL_MS = 50          # ADD to served, p99 at 100 pods
POD_ANON_GOAL_KIB = 32            # agent RssAnon per attached pod
POD_AGENT_GOAL_KIB = 24 * 1024    # whole agent at 250 pods, "24 MB" read as MiB like the 9 MB goal above
POD_SIDECAR_GOAL = 20.0           # sidecar model / pod mode, total memory at 100 pods
POD_RESTART_GOAL_MS = 1000
POD_FAIR_GOAL = 2.0               # pod B's p99 during A's storm, against idle
POD_GOAL_AT = 100                 # the goals are at 100 pods, the whole-agent one at 250
POD_BIG_AT = 250
# ztunnel's own published figure, beside ours; see pods_ztunnel().
ZTUNNEL_PERF_URL = "https://istio.io/latest/docs/ops/deployment/performance-and-scalability/"
ZTUNNEL_BENCH_URL = "https://github.com/istio/ztunnel/blob/master/benches/README.md"


class Pods:
    """pods.tsv: rows of (pods, target, metric, value); repeated rows are samples in the order measured."""

    def __init__(self, data):
        self.samples = defaultdict(list)
        self.meta = {}
        for row in read_tsv(os.path.join(data, "pods.tsv")):
            if len(row) != 4:
                continue
            n, target, metric, value = row
            if target == "meta":
                self.meta[metric] = value
                continue
            try:
                self.samples[(int(n), target, metric)].append(float(value))
            except ValueError:
                pass

    def __bool__(self):
        return bool(self.samples)

    @property
    def steps(self):
        return sorted({n for n, t, m in self.samples if t == "pod" and m == "add_ms"})

    def values(self, n, target, metric):
        return self.samples.get((n, target, metric), [])

    def med(self, n, target, metric):
        v = self.values(n, target, metric)
        return statistics.median(v) if v else None

    def pct(self, n, target, metric, p):
        """Nearest-rank percentile of the samples."""
        v = sorted(self.values(n, target, metric))
        return v[max(0, math.ceil(p / 100 * len(v)) - 1)] if v else None

    def per_pod(self, n, kind):
        """(agent after the ADDs - agent before any pod) / n, KiB, for kind rss or rss_anon."""
        a, b = self.med(n, "pod", "attached_" + kind), self.med(n, "pod", "base_" + kind)
        return (a - b) / n if a is not None and b is not None and n else None

    def sidecar_ratio(self, n, sidecar, kind):
        """Total memory of the n sidecars after the load phase, over the agent's after the same load phase."""
        return ratio(self.med(n, sidecar, "load_" + kind), self.med(n, "pod", "load_" + kind))

    def nearest(self, n):
        """The step measured closest to n (the goals name 100 and 250; a shorter run still gets a row)."""
        return min(self.steps, key=lambda s: (abs(s - n), -s)) if self.steps else None

    def minutes(self):
        try:
            return minutes(int(self.meta["finished_epoch"]) - int(self.meta["started_epoch"]))
        except (KeyError, ValueError):
            return None


def kib(v, digits=0):
    return "n/a" if v is None else "%s KiB" % fmt(v, digits)


def mib(v):
    return "n/a" if v is None else "%s MiB" % fmt(v / 1024, 1)


def pod_status(met, measured=True):
    if not measured or met is None:
        return NOT_MEASURED
    return "met" if met else "**NOT MET**"


def pods_goals(p):
    rows = []
    at, big = p.nearest(POD_GOAL_AT), p.nearest(POD_BIG_AT)

    def row(goal, target, measured, r, met, of_goal=True, note=""):
        shown = fmt_ratio(r) + (" the goal" if of_goal and r is not None else "")
        rows.append([goal, target, measured, shown, pod_status(met, r is not None) + (" " + note if note else "")])

    p99 = p.pct(at, "pod", "add_ms", 99)
    row("ADD to served, p99 (plugin exec), at %s pods" % at, "≤ %d ms" % POD_ADD_P99_GOAL_MS,
        "%s ms (p50 %s ms; the agent's own: p99 %s ms)" % (fmt(p99, 1), fmt(p.pct(at, "pod", "add_ms", 50), 1),
                                                         fmt(p.pct(at, "pod", "add_agent_ms", 99), 1)),
        ratio(p99, POD_ADD_P99_GOAL_MS), p99 is not None and p99 <= POD_ADD_P99_GOAL_MS)
    anon = p.per_pod(big, "rss_anon")
    row("agent RssAnon per attached pod, at %s pods" % big, "≤ %d KiB" % POD_ANON_GOAL_KIB,
        "%s (VmRSS: %s)" % (kib(anon, 1), kib(p.per_pod(big, "rss"), 1)), ratio(anon, POD_ANON_GOAL_KIB),
        anon is not None and anon <= POD_ANON_GOAL_KIB)
    whole = p.med(big, "pod", "load_rss")
    row("whole agent after the load phase (VmRSS), at %s pods" % big, "≤ 24 MiB (24,576 KiB)",
        "%s (Pss %s)" % (kib(whole), kib(p.med(big, "pod", "load_pss"))), ratio(whole, POD_AGENT_GOAL_KIB),
        whole is not None and whole <= POD_AGENT_GOAL_KIB)
    for sidecar, name in (("sidecar-weir", "`weir proxy`"), ("sidecar-haproxy", "HAProxy")):
        r = p.sidecar_ratio(at, sidecar, "pss")
        row("sidecar model (one %s per pod) against pod mode, total Pss after load, at %s pods" % (name, at),
            "≥ %.0f× smaller" % POD_SIDECAR_GOAL,
            "%s against %s (Σ VmRSS against VmRSS: %s; Σ Pss against the agent's whole VmRSS: %s)" % (
                kib(p.med(at, sidecar, "load_pss")), kib(p.med(at, "pod", "load_pss")),
                fmt_ratio(p.sidecar_ratio(at, sidecar, "rss")),
                fmt_ratio(ratio(p.med(at, sidecar, "load_pss"), p.med(at, "pod", "load_rss")))),
            r, r is not None and r >= POD_SIDECAR_GOAL, of_goal=False)
    for n in sorted({n for n, t, m in p.samples if t == "restart" and m == "up_ms"}):
        up, un = p.med(n, "restart", "up_ms"), p.med(n, "restart", "app_uncaptured")
        row("re-attach after `kill -9`, at %s pods" % n, "every pod up ≤ 1 s; 0 uncaptured",
            "%s ms; %s connections uncaptured (of %s the application saw)" % (
                fmt(up, 0), fmt(un, 0), fmt((p.med(n, "restart", "app_captured") or 0) + (un or 0), 0)),
            ratio(up, POD_RESTART_GOAL_MS), up is not None and un is not None and up <= POD_RESTART_GOAL_MS and un == 0)
    fair = [n for n in p.steps if p.values(n, "fair-idle", "first_p99_us")]
    if fair:
        n = fair[0]
        idle, storm = p.med(n, "fair-idle", "first_p99_us"), p.med(n, "fair-storm", "first_p99_us")
        control = p.med(n, "fair-control", "first_p99_us")
        rate = p.meta.get("rate", "0")
        rated, rated_idle = p.med(n, "fair-rate-storm", "first_p99_us"), p.med(n, "fair-rate-idle", "first_p99_us")
        if rated is not None:
            # Judged against the lower of pod B's two idle figures (the same agent's, in the same rounds, and the
            # first agent's): the stricter.
            base = min(v for v in (idle, rated_idle) if v is not None) if (idle or rated_idle) else None
            r = ratio(rated, base)
            row("fairness: pod B's connect-to-first-byte p99 while pod A storms, with `--max-connection-rate-per-pod "
                "%s` (and the open-connection ceiling), at %s pods" % (rate, n),
                "≤ %.0f× idle" % POD_FAIR_GOAL, "%s µs against %s µs idle (the lower of %s µs with the same agent "
                "and %s µs with the first)" % (fmt(rated, 0), fmt(base, 0), fmt(rated_idle, 0), fmt(idle, 0)),
                r, r is not None and r <= POD_FAIR_GOAL, of_goal=False)
        r = ratio(storm, idle)
        row("fairness, the open-connection ceiling alone: pod B's connect-to-first-byte p99 while pod A storms at "
            "its ceiling, at %s pods" % n,
            "≤ %.0f× idle" % POD_FAIR_GOAL, "%s µs against %s µs idle (%s µs during the uncaptured control storm: "
            "%s of the storm's)" % (fmt(storm, 0), fmt(idle, 0), fmt(control, 0), fmt_ratio(ratio(storm, control))),
            r, r is not None and r <= POD_FAIR_GOAL, of_goal=False,
            note="without a rate ceiling (the row above has one)" if rated is not None else "")
    cost = [n for n in p.steps if p.values(n, "pod", "cpuconn_us")]
    if cost:
        n = cost[0]
        for metric, name, unit, digits in (("cpuconn_us", "agent CPU per new connection", "µs", 1),
                                           ("cpugb_s", "agent CPU per GB", "CPU s/GB", 3)):
            pv, hv = p.values(n, "pod", metric), p.values(n, "host", metric)
            if not pv or not hv:
                continue
            # Same within noise: the rounds' ranges overlap (or pod mode costs less).
            same = min(pv) <= max(hv)
            row("%s, pod mode against host mode" % name, "the same within noise",
                "%s against %s %s (rounds: %s; %s)" % (fmt(statistics.median(pv), digits), fmt(statistics.median(hv), digits),
                                                       unit, " ".join(fmt(v, digits) for v in pv),
                                                       " ".join(fmt(v, digits) for v in hv)),
                ratio(statistics.median(pv), statistics.median(hv)), same, of_goal=False)
    return table(["goal", "target", "measured", "ratio", "status"], rows)


def pods_scale(p):
    rows = []
    for n in p.steps:
        rows.append(["{:,}".format(n),
                     "%s / %s ms" % (fmt(p.pct(n, "pod", "add_ms", 50), 1), fmt(p.pct(n, "pod", "add_ms", 99), 1)),
                     "%s / %s ms" % (fmt(p.pct(n, "pod", "add_agent_ms", 50), 1),
                                     fmt(p.pct(n, "pod", "add_agent_ms", 99), 1)),
                     kib(p.med(n, "pod", "base_rss")), kib(p.med(n, "pod", "attached_rss")),
                     kib(p.per_pod(n, "rss_anon"), 1), kib(p.per_pod(n, "rss"), 1),
                     kib(p.med(n, "pod", "load_rss")), kib(p.med(n, "pod", "load_rss_anon")),
                     kib(p.med(n, "pod", "load_pss"))])
    return table(["pods", "ADD p50 / p99 (plugin exec)", "ADD p50 / p99 (agent's `took_us`)", "agent VmRSS, no pod",
                  "after the ADDs", "RssAnon per pod", "VmRSS per pod", "VmRSS after load", "RssAnon after load",
                  "Pss after load"], rows)


def pods_sidecars(p):
    rows = []
    for n in p.steps:
        cells = ["{:,}".format(n), "%s / %s" % (mib(p.med(n, "pod", "load_rss")), mib(p.med(n, "pod", "load_pss")))]
        for sidecar in ("sidecar-weir", "sidecar-haproxy"):
            cells += ["%s / %s" % (mib(p.med(n, sidecar, "load_rss")), mib(p.med(n, sidecar, "load_pss"))),
                      "%s / %s" % (fmt_ratio(p.sidecar_ratio(n, sidecar, "rss")),
                                   fmt_ratio(p.sidecar_ratio(n, sidecar, "pss")))]
        rows.append(cells)
    return table(["pods", "pod mode: agent VmRSS / Pss", "`weir proxy` sidecars: Σ VmRSS / Σ Pss", "sidecars / pod mode",
                  "HAProxy sidecars: Σ VmRSS / Σ Pss", "sidecars / pod mode"], rows)


def pods_restart(p):
    rows = []
    for n in sorted({n for n, t, m in p.samples if t == "restart" and m == "up_ms"}):
        def g(metric):
            return fmt(p.med(n, "restart", metric), 0)
        rows.append(["{:,}".format(n), "%s ms" % fmt(p.med(n, "restart", "up_ms"), 1),
                     "%s / %s" % (g("restored"), g("dropped")), g("probe_attempts"), g("probe_ok"),
                     "%s / %s / %s / %s" % (g("probe_refused"), g("probe_reset"), g("probe_timeout"), g("probe_other")),
                     g("app_captured"), g("app_uncaptured"), kib(p.med(n, "restart", "restored_rss")),
                     "%s ms (%s deleted)" % (g("swept_ms"), g("swept_deleted"))])
    if not rows:
        return "_Re-attach after `kill -9`: %s._" % NOT_MEASURED
    return table(["pods", "new process to every pod up", "restored / dropped", "client connections",
                  "answered", "refused / reset / timed out / other", "app saw from 127.0.0.6",
                  "app saw from elsewhere (uncaptured)", "agent VmRSS after the re-attach",
                  "stale-entry sweep after serving"], rows)


def pods_fairness(p):
    fair = [n for n in p.steps if p.values(n, "fair-idle", "first_p99_us")]
    if not fair:
        return "_Fairness: %s._" % NOT_MEASURED
    n, rows = fair[0], []
    rate = p.meta.get("rate", "0")
    for v, label in (("idle", "idle (no storm)"), ("storm", "pod A storms through the agent, at its ceiling"),
                     ("control", "control: pod C storms uncaptured (CPU contention alone)"),
                     ("rate-idle", "idle, agent with `--max-connection-rate-per-pod %s`" % rate),
                     ("rate-storm", "pod A storms through that agent, held to %s/s" % rate)):
        if not p.values(n, "fair-" + v, "first_p99_us"):
            continue
        def m(metric):
            return fmt(p.med(n, "fair-" + v, metric), 0)
        quiet = v.endswith("idle")
        rows.append([label, m("n"), m("connect_p50_us"), m("connect_p99_us"), m("first_p50_us"), m("first_p90_us"),
                     m("first_p99_us"), " ".join(fmt(x, 0) for x in p.values(n, "fair-" + v, "first_p99_us")),
                     "-" if quiet else "%s / %s" % (m("storm_requests"), m("storm_errors")),
                     "-" if quiet else "%s / %s" % (m("refused"), m("rate_pauses"))])
    gap = p.meta.get("lat_gap_us")
    pace = (", pod B starting a connection every %s µs" % gap) if gap else ""
    return "At %s pods, medians of %s rounds of %s s%s:\n\n" % (n, p.meta.get("rounds", "?"),
                                                             p.meta.get("seconds", "?"), pace) + \
        table(["pod B's connections, while", "connections", "connect p50 (µs)", "connect p99", "first byte p50",
               "first byte p90", "first byte p99", "p99 of each round", "storm: requests / socket errors",
               "ceiling / rate pauses of A"], rows)


def pods_cost(p):
    cost = [n for n in p.steps if p.values(n, "pod", "cpuconn_us")]
    if not cost:
        return "_Per-connection cost: %s._" % NOT_MEASURED
    n, rows = cost[0], []
    for metric, label, digits in (("cpuconn_us", "agent CPU per new connection (µs)", 1),
                                  ("cpugb_s", "agent CPU per GB (CPU s/GB)", 3),
                                  ("cost_conns", "connections wrk completed", 0),
                                  ("cost_gbytes", "GB iperf3 moved", 2)):
        pv, hv = p.values(n, "pod", metric), p.values(n, "host", metric)
        rows.append([label, fmt(statistics.median(pv) if pv else None, digits),
                     fmt(statistics.median(hv) if hv else None, digits),
                     fmt_ratio(ratio(statistics.median(pv) if pv else None, statistics.median(hv) if hv else None)),
                     " ".join(fmt(v, digits) for v in pv) or "-", " ".join(fmt(v, digits) for v in hv) or "-"])
    return ("Through one pod of %s, medians of the interleaved rounds:\n\n" % n) + \
        table(["", "pod mode", "host mode", "pod / host", "pod mode, rounds", "host mode, rounds"], rows)


def pods_ztunnel(p, run):
    at, big = p.nearest(POD_GOAL_AT), p.nearest(POD_BIG_AT)
    per_conn = run.med("weir", "perconn")
    rows = [
        ["node proxy memory under load", "about 12 MB for a single ztunnel at 1,000 HTTP requests/s of 1 KB "
         "(Istio 1.24)", "%s VmRSS (%s Pss) for the agent after the load phase through %s pods; %s at %s" % (
             kib(p.med(big, "pod", "load_rss")), kib(p.med(big, "pod", "load_pss")), big,
             kib(p.med(at, "pod", "load_rss")), at),
         "[Istio: Performance and Scalability](%s), \"Sidecar and ztunnel resource usage\"" % ZTUNNEL_PERF_URL],
        ["memory per connection", "3.8 KiB: **not found** in any Istio or ztunnel publication we could find. "
         "ztunnel's benchmark notes say its copy buffers start at 1 KB per direction and grow to 16 KB, then 256 KB, "
         "under traffic, so an idle TCP-to-TCP connection holds at least 2 KB of buffers in user space",
         "%s VmRSS per idle proxied connection (`weir proxy`, the memory section above, this run)" % kib(per_conn, 2),
         "[ztunnel benches/README.md](%s)" % ZTUNNEL_BENCH_URL],
        ["kernel socket and pipe buffers", "not said; a Kubernetes (cgroup) figure may include socket buffers",
         "not included: VmRSS and Pss are the process's user-space pages only", "the notes above"],
    ]
    return table(["", "ztunnel (published)", "weir (this run)", "source"], rows)


def pods_section(run, p):
    if not p:
        return "_The pod mode benchmark did not run (BENCH_PODS=0)._"
    out = []
    took = p.minutes()
    out.append("Measured %s, %s pod namespaces in turn, each with fresh namespaces and a fresh agent; pods attached "
               "by the CNI plugin (`%s`, `%s`). Ceiling per pod (`--max-connections-per-pod`): %s. Load phase: %s outbound "
               "and %s inbound connections per pod. Load average before / after: %s / %s." % (
                   "after the measures above, in %s" % took if took else "after the measures above",
                   ", ".join("{:,}".format(n) for n in p.steps), p.meta.get("weir_binary", "?"),
                   p.meta.get("weir_version", "?"),
                   p.meta.get("ceiling", "?"), p.meta.get("load_conns", "?"), p.meta.get("load_conns", "?"),
                   p.meta.get("load_before", "?"), p.meta.get("load_after", "?")))
    out += ["", "**Goals** (issue 19):", "", pods_goals(p), "",
            "**ADD and the agent's memory**, by the number of pods (KiB; per pod: (after the ADDs − before any pod) "
            "/ pods):", "", pods_scale(p), "",
            "**Against the sidecar model** (after the same load phase; Σ: over the N processes):", "",
            pods_sidecars(p), "", "**Re-attach after `kill -9`:**", "", pods_restart(p), "",
            "**Fairness:**", "", pods_fairness(p), "", "**Per-connection cost against host mode:**", "", pods_cost(p),
            "", "**ztunnel's published figures beside ours:**", "", pods_ztunnel(p, run)]
    return "\n".join(out)


def pod_plots(p, plt, save):
    """ADD latency and memory against the number of pods (pod_add.png, pod_memory.png)."""
    from matplotlib.ticker import FixedLocator, ScalarFormatter
    steps = p.steps
    if not steps:
        return

    def pods_x(ax):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(steps))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(FixedLocator([]))
        ax.set_xlabel("pods attached")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for metric, label, color in (("add_ms", "plugin exec (ADD to served)", COLOR["weir"]),
                                 ("add_agent_ms", "agent's own (`took_us`)", "#2ca02c")):
        for q, style in ((50, "-"), (99, "--")):
            ax.plot(steps, [p.pct(n, "pod", metric, q) for n in steps], style, marker="o", color=color,
                    label="%s, p%d" % (label, q))
    ax.axhline(POD_ADD_P99_GOAL_MS, color=COLOR["haproxy"], linestyle=":", label="goal: p99 ≤ %d ms at 100 pods" %
               POD_ADD_P99_GOAL_MS)
    pods_x(ax)
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, handlelength=3.5)
    save(fig, "pod_add.png", "ADD latency against the number of pods")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    top = 0
    for target, label, color, sum_of in (("pod", "pod mode: one agent", COLOR["weir"], ""),
                                         ("sidecar-weir", "sidecars: one `weir proxy` per pod", "#ff7f0e", "Σ "),
                                         ("sidecar-haproxy", "sidecars: one HAProxy per pod", COLOR["haproxy"], "Σ ")):
        for kind, style in (("rss", "-"), ("pss", "--")):
            ys = [p.med(n, target, "load_" + kind) for n in steps]
            if all(y is not None for y in ys):
                ax.plot(steps, [y / 1024 for y in ys], style, marker="o", color=color,
                        label="%s, %s%s" % (label, sum_of, "VmRSS" if kind == "rss" else "Pss"))
                top = max([top] + [y / 1024 for y in ys])
    pods_x(ax)
    ax.set_yscale("log")
    if top:
        ax.set_ylim(top=top * 30)   # room for the legend above the lines
    ax.set_ylabel("MiB after the load phase (log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, handlelength=3.5)
    save(fig, "pod_memory.png", "Memory against pods: pod mode against the sidecar model")


# --- plots ---------------------------------------------------------------------------------------------------------

def plots(run, fig_dir, pods):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, ScalarFormatter

    os.makedirs(fig_dir, exist_ok=True)
    made = {}
    subtitle = "%s, kernel %s, %s CPUs%s" % (run.meta.get("started", ""), run.meta.get("kernel", ""),
                                             run.meta.get("cpus", ""), {True: "", None: ", quietness not measured",
                                                                        False: ", measured under load"}[run.quiet])

    def save(fig, name, title):
        fig.suptitle(title, fontsize=11)
        fig.text(0.99, 0.005, subtitle, ha="right", va="bottom", fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(os.path.join(fig_dir, name), dpi=110, metadata={"Software": None})
        plt.close(fig)
        made[name] = True

    def spread(t, metric):
        v = run.values(t, metric)
        m = statistics.median(v)
        return m, m - min(v), max(v) - m

    def log2_x(ax, ticks):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(FixedLocator([]))

    def size_x(ax, sizes):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "%gk" % (v / 1000) if v >= 1000 else "%g" % v))
        ax.xaxis.set_minor_locator(FixedLocator([]))

    def per_stream(metric, targets, ylabel, name, title):
        """One line per target of `metric` at each stream count, if every round of every target has it."""
        if not all(run.values(t, metric % n) for t in targets for n in streams):
            return
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for t in targets:
            m, lo, hi = zip(*(spread(t, metric % n) for n in streams))
            ax.errorbar(streams, m, yerr=[lo, hi], marker="o", capsize=3, color=COLOR[t], label=LABEL[t])
        log2_x(ax, streams)
        ax.set_xlabel("parallel streams (iperf3 -P)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, name, title)

    streams = run.streams
    per_stream("gbps_%d", TARGETS, "Gb/s", "throughput.png",
               "Throughput against streams (median of rounds, bars: min to max)")
    per_stream("cpugb_%d", ("weir", "haproxy"), "proxy CPU seconds per GB forwarded", "cpu_per_gb.png",
               "Proxy CPU per GB forwarded (user+sys of the proxy process)")

    # Latency percentiles.
    pcts = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")]
    if all(run.values(t, k) for t in TARGETS for k, _ in pcts):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        width = 0.26
        for i, t in enumerate(TARGETS):
            m, lo, hi = zip(*(spread(t, k) for k, _ in pcts))
            xs = [j + (i - 1) * width for j in range(len(pcts))]
            ax.bar(xs, m, width, yerr=[lo, hi], capsize=3, color=COLOR[t], label=LABEL[t])
            for x, v in zip(xs, m):
                ax.text(x, v, "%.0f" % v, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(pcts)))
        ax.set_xticklabels([name for _, name in pcts])
        ax.set_ylabel("round trip, µs")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        save(fig, "latency.png", "1 KiB ping-pong round trip (median of rounds, bars: min to max)")

    # RSS against concurrent connections.
    steps = [0] + run.hold_steps
    if all(run.med(t, "rss_at_%d" % s) is not None for t in ("weir", "haproxy") for s in steps):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for t in ("weir", "haproxy"):
            ax.plot(steps, [run.med(t, "rss_at_%d" % s) / 1024 for s in steps], marker="o", color=COLOR[t],
                    label="%s (%s KiB per connection)" % (LABEL[t], fmt(run.med(t, "perconn"), 2)))
        ax.set_xlabel("concurrent idle proxied connections")
        ax.set_ylabel("RSS, MiB")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "rss.png", "RSS against concurrent connections (after the throughput rounds)")

    # Rule apply time against set size.
    sizes = run.cap_sizes("v6", "apply_ms", "weir")
    if sizes:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for variant, label, color in (("weir", "weir rules (netlink, one interval set)", COLOR["weir"]),
                                      ("nft", "nft -f of weir's dry-run text", "#2ca02c"),
                                      ("iptables", "ip6tables-restore, one rule per CIDR (istio)", COLOR["haproxy"])):
            xs = run.cap_sizes("v6", "apply_ms", variant)
            if xs:
                ax.plot(xs, [run.cap("v6", "apply_ms", variant, s) for s in xs], marker="o", color=color, label=label)
        size_x(ax, sizes)
        ax.set_yscale("log")
        ax.set_xlabel("excluded CIDRs (IPv6 /64s)")
        ax.set_ylabel("apply time, ms (median of 3)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        save(fig, "rule_apply.png", "Rule apply time against set size")

    # Per-connection rule cost against set size.
    sizes = run.cap_sizes("v6", "rule_us", "weir")
    if sizes:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        xs = [s for s in sizes if s]
        ax.plot(xs, [run.cap("v6", "rule_us", "weir", s) for s in xs], marker="o", color=COLOR["weir"],
                label="weir: one interval set lookup")
        xi = [s for s in run.cap_sizes("v6", "rule_us", "iptables") if s]
        if xi:
            ax.plot(xi, [run.cap("v6", "rule_us", "iptables", s) for s in xi], marker="o", color=COLOR["haproxy"],
                    label="istio layout: one ip6tables rule per CIDR")
        zero = run.cap("v6", "rule_us", "weir", 0)
        if zero:
            ax.axhline(zero, color=COLOR["weir"], linestyle=":", label="weir without -x (%.2f µs)" % zero)
        size_x(ax, xs)
        ax.set_yscale("log")
        ax.set_xlabel("excluded CIDRs (IPv6 /64s)")
        ax.set_ylabel("kernel CPU in nft_* per new connection, µs")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        save(fig, "rule_cost.png", "Per-connection cost of the rules against set size")
    pod_plots(pods, plt, save)
    # No plot of an earlier run stays beside this run's report.
    for name in PLOTS:
        if name not in made and os.path.exists(os.path.join(fig_dir, name)):
            os.remove(os.path.join(fig_dir, name))
    return made


def figure(made, name, alt, caption):
    if name not in made:
        return "_%s: not plotted (no data in this run)._" % alt
    return "![%s](docs/bench/%s)\n\n%s" % (alt, name, caption)


def handover_section(data):
    """handover.tsv: rows of (connections, round, metric, value) from scripts/bench/handover.sh."""
    path = os.path.join(data, "handover.tsv")
    if not os.path.exists(path):
        return "_Not measured in this run (BENCH_HANDOVER=0)._"
    values = {}
    for row in read_tsv(path):
        if len(row) == 4:
            values.setdefault((int(row[0]), row[2]), []).append(float(row[3]))
    if not values:
        return "_handover.tsv holds no samples._"
    rows = []
    for n in sorted({k[0] for k in values if k[1] != "limited_from"}):
        def med(metric):
            v = sorted(values.get((n, metric), []))
            return "-" if not v else "{:,.0f}".format(v[len(v) // 2])
        def each(metric):
            return " ".join("{:,.0f}".format(x) for x in values.get((n, metric), []))
        rows.append(["{:,}".format(n), med("start_to_old_exit_ms"), each("start_to_old_exit_ms"),
                     med("start_to_ready_ms"), med("old_handover_ms"), med("moved"), med("answered_after")])
    out = table(["live connections", "new process start to old process exit (ms, median)", "each round",
                 "start to ready (ms)", "old agent's handover (ms)", "moved", "answering after"], rows)
    for n in sorted(k[0] for k in values if k[1] == "limited_from"):
        for asked in values[(n, "limited_from")]:
            out += ("\n\n{:,.0f} connections were asked for; this machine's hard RLIMIT_NOFILE cannot be raised (no "
                    "CAP_SYS_RESOURCE) and holds {:,} connections per agent (two sockets each), so the row is "
                    "{:,}.".format(asked, n, n))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="directory with meta.tsv, proxy.tsv, capture.tsv, pods.tsv")
    ap.add_argument("--out", default=".", help="where BENCHMARKS.md and docs/bench/ go (default: .)")
    ap.add_argument("--template", default=os.path.join(HERE, "BENCHMARKS.md.in"))
    ap.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    args = ap.parse_args()

    run = Run(args.data)
    if not run.proxy:
        sys.exit("report: no samples in %s/proxy.tsv" % args.data)
    bench_dir = os.path.join(args.out, "docs", "bench")
    data_dir = os.path.join(bench_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    if os.path.realpath(args.data) != os.path.realpath(data_dir):
        for name in ("meta.tsv", "proxy.tsv", "capture.tsv", "pods.tsv", "handover.tsv"):
            src = os.path.join(args.data, name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(data_dir, name))
            elif os.path.exists(os.path.join(data_dir, name)):
                os.remove(os.path.join(data_dir, name))
    pods = Pods(args.data)
    made = {} if args.no_plots else plots(run, bench_dir, pods)

    parts = {
        "run": section_run(run),
        "goals": goals(run),
        "results": results(run),
        "memory": memory(run),
        "syscalls": syscalls(run),
        "raw": raw(run),
        "hz": tick_short(run.meta),
        "quiet_other": "%.0f%%" % (100 * QUIET_OTHER),
        "quiet_idle": "%.0f%%" % (100 * QUIET_IDLE_BEFORE),
        "p99_alpha": "%.0f%%" % (100 * P99_ALPHA),
        "hold": "{:,}".format(run.hold),
        "fig_throughput": figure(made, "throughput.png", "throughput against streams",
                                 "Throughput through each target against the number of parallel iperf3 streams."),
        "fig_cpu_per_gb": figure(made, "cpu_per_gb.png", "proxy CPU per GB",
                                 "CPU seconds the proxy process used per GB it forwarded, during the same iperf3 "
                                 "runs (the goal is judged at 8 streams)."),
        "fig_latency": figure(made, "latency.png", "latency percentiles",
                              "Percentiles of the round-trip time of one connection sending 1 KiB and waiting for "
                              "the 1 KiB echo (`scripts/bench/pingpong.c`), each the median over the rounds."),
        "fig_rss": figure(made, "rss.png", "RSS against concurrent connections",
                          "RSS of the long-running weir and HAProxy processes while one client holds idle "
                          "connections open, read at each step. The first point is the process after the "
                          "throughput rounds, not a fresh start (fresh starts are in the memory table)."),
        "fig_rule_apply": figure(made, "rule_apply.png", "rule apply time against set size",
                                 "Wall time of applying the whole capture with this many excluded IPv6 /64s, from a "
                                 "namespace without rules, including the start of the command. " + ipt_caption(run)),
        "fig_rule_cost": figure(made, "rule_cost.png", "per-connection rule cost against set size",
                                "Kernel CPU time per new connection in nftables code (`perf` samples in `nft_*` "
                                "symbols, all CPUs, divided by the connections wrk made): weir's interval set "
                                "against istio's one ip6tables rule per CIDR, which iptables-nft runs as nftables "
                                "rules. Log scales. " + ipt_caption(run)),
        "capture": capture(run),
        "stress": stress(),
        "pods": pods_section(run, pods),
        "handover": handover_section(args.data),
        "fig_pod_add": figure(made, "pod_add.png", "ADD latency against pods",
                              "p50 and p99 of ADD to served against the number of pods: the wall time around each "
                              "exec of the CNI plugin (what a runtime waits), and the agent's own time from the "
                              "request to the reply (`took_us` in its log)."),
        "fig_pod_memory": figure(made, "pod_memory.png", "memory against pods",
                                 "Memory after the load phase through every pod: the one pod-mode agent against the "
                                 "sum over one sidecar per pod (`weir proxy`, HAProxy). Σ VmRSS counts pages the "
                                 "sidecars share (the binary, libc) once per process; Σ Pss divides them among "
                                 "their users, so it is the sidecars' real total. Log scale."),
    }
    with open(args.template) as f:
        text = f.read()
    for key, value in parts.items():
        text = text.replace("{{%s}}" % key, value)
    with open(os.path.join(args.out, "BENCHMARKS.md"), "w") as f:
        f.write(text)
    print(parts["run"])
    print()
    print(parts["goals"])
    print()
    print(parts["results"])
    print()
    print(parts["memory"])
    print()
    print(parts["syscalls"])
    print()
    print(parts["capture"])
    print()
    print(parts["pods"])
    print("\nreport: wrote %s and %d plots in %s" % (os.path.join(args.out, "BENCHMARKS.md"), len(made), bench_dir))


if __name__ == "__main__":
    main()
