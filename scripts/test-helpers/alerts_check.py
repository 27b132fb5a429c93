#!/usr/bin/env python3
"""Checks behind scripts/check-alerts.sh.

prometheusrule RULES             print the PrometheusRule manifest that carries RULES' groups
same RULES PROMETHEUSRULE        exit 1 (and say where) unless the manifest's spec.groups equal RULES' groups
names RULES DASHBOARD            print every metric name an alert expression or a dashboard query uses
unknown METRICS RULES DASHBOARD  exit 1 naming each metric used by RULES or DASHBOARD that the exposition text
                                 METRICS (a real agent's /metrics) does not contain
"""
import json
import re
import sys

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan", "le"}


def rules_exprs(path):
    doc = yaml.safe_load(open(path))
    return [(f"alert {r.get('alert') or r.get('record')}", r["expr"]) for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs(path):
    doc = json.load(open(path))
    out = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    return out


def metric_names(expr):
    """Metric names in a PromQL expression: strings, label matchers, ranges and grouping clauses removed, then
    every identifier that is not a function call or a keyword."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', str(expr))
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = []
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.append(word)
    return names


def exposed(path):
    names = set()
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def main(argv):
    cmd = argv[1]
    if cmd == "prometheusrule":
        groups = yaml.safe_load(open(argv[2]))["groups"]
        print("# Generated from deploy/prometheus/weir-rules.yaml by scripts/check-alerts.sh --write; do not edit.")
        print("# scripts/check-alerts.sh (make test) fails when the two differ.")
        print(yaml.safe_dump({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "weir", "namespace": "weir-system", "labels": {"app.kubernetes.io/name": "weir"}},
            "spec": {"groups": groups}}, sort_keys=False, width=1000), end="")
        return 0
    if cmd == "same":
        want = yaml.safe_load(open(argv[2]))["groups"]
        doc = yaml.safe_load(open(argv[3]))
        got = (doc or {}).get("spec", {}).get("groups")
        if doc.get("kind") != "PrometheusRule" or got != want:
            print(f"{argv[3]} does not carry the groups of {argv[2]}: run scripts/check-alerts.sh --write")
            return 1
        return 0
    if cmd == "names":
        for where, expr in rules_exprs(argv[2]) + dashboard_exprs(argv[3]):
            print(where, " ".join(sorted(set(metric_names(expr)))))
        return 0
    if cmd == "unknown":
        have = exposed(argv[2])
        bad = 0
        used = rules_exprs(argv[3]) + dashboard_exprs(argv[4])
        for where, expr in used:
            names = metric_names(expr)
            if not names:
                print(f"{where}: names no metric: {expr}")
                bad += 1
            for n in names:
                if n not in have:
                    print(f"{where}: {n} is not in the agent's /metrics")
                    bad += 1
        print(f"{len(used)} expressions, {len({n for _, e in used for n in metric_names(e)})} metric names, "
              f"{bad} unknown")
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
