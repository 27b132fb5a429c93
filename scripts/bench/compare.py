#!/usr/bin/env python3
"""Before/after table of two `make bench` reports (BENCHMARKS.md), row by row.

    scripts/bench/compare.py BEFORE.md AFTER.md [--before-label L] [--after-label L]

Joins the rows of the report's tables by their first column and prints, for weir's columns, the value before, the value
after and their ratio, with a verdict: "same" within the run-to-run spread (15% unless --noise: two runs of the same code differ by up to that on the busiest rows), else "better"
or "worse" by the row's direction (throughput and connections per second are better higher, everything else lower).
HAProxy's value from the same runs is printed beside weir's so that a change of the machine shows as a change of the
peer. Exit status 0; a row that cannot be read is skipped and named on stderr, never guessed.
"""
import argparse
import re
import sys

# (section heading prefix, table index in the section, columns of weir to compare, the peer's column or None)
TABLES = [
    ("## Goals", 0, ["weir"], "HAProxy"),
    ("## Results", 0, ["weir"], "HAProxy"),
    ("### Memory", 0, ["`weir proxy`", "`weir run`"], "HAProxy"),
    ("### Memory", 1, ["weir"], "HAProxy"),
    ("## Capture", 0, ["value"], None),
    ("## Capture", 1, ["weir apply", "weir rules, CPU/conn"], "`ip6tables-restore` apply"),
    ("## Syscalls", 0, ["weir"], "HAProxy"),
]
HIGHER_IS_BETTER = re.compile(r"throughput|connections/s|conn/s", re.I)


def tables_of(path):
    """{section heading: [table, ...]}, a table being (header cells, [row cells])."""
    sections, current, table = {}, None, None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("#"):
            current, table = line.strip(), None
            sections.setdefault(current, [])
            continue
        if current is None:
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if table is None:
                table = (cells, [])
                sections[current].append(table)
            elif not all(set(c) <= set("-: ") for c in cells):
                table[1].append(cells)
        else:
            table = None
    return sections


def section(sections, prefix):
    return next((tables for heading, tables in sections.items() if heading.startswith(prefix)), [])


def number(cell):
    """The first number in a cell ("4,460", "68.5 µs", "0.92×", "1,101 ms"), or None."""
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell.replace("**", ""))
    return float(m.group(0).replace(",", "")) if m else None


def unit(cell):
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?\s*([^\s|]*)", cell)
    return m.group(1) if m else ""


def rows(sections, prefix, index, columns, peer):
    tables = section(sections, prefix)
    if index >= len(tables):
        return {}
    header, body = tables[index]
    out = {}
    for cells in body:
        for column in columns:
            if column not in header:
                continue
            i = header.index(column)
            if i >= len(cells):
                continue
            name = cells[0] if len(columns) == 1 else f"{cells[0]}: {column}"
            name = re.sub(r"&nbsp;", "", name).strip()
            p = cells[header.index(peer)] if peer in header and header.index(peer) < len(cells) else ""
            out[name] = (cells[i], p)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--before-label", default="before")
    parser.add_argument("--after-label", default="after")
    parser.add_argument("--noise", type=float, default=0.15)
    args = parser.parse_args()
    before, after = tables_of(args.before), tables_of(args.after)
    print(f"| measure | {args.before_label} | {args.after_label} | after/before | verdict | "
          f"peer {args.before_label} | peer {args.after_label} |")
    print("|---|---|---|---|---|---|---|")
    for prefix, index, columns, peer in TABLES:
        b, a = rows(before, prefix, index, columns, peer), rows(after, prefix, index, columns, peer)
        for name in list(b) + [n for n in a if n not in b]:
            bv, bp = b.get(name, ("-", ""))
            av, ap = a.get(name, ("-", ""))
            x, y = number(bv), number(av)
            if x is None or y is None or x == 0:
                ratio, verdict = "-", "new" if x is None and y is not None else "-"
            else:
                r = y / x
                ratio = f"{r:.2f}×"
                if abs(r - 1) <= args.noise:
                    verdict = "same"
                elif (r > 1) == bool(HIGHER_IS_BETTER.search(name)):
                    verdict = "better"
                else:
                    verdict = "**worse**"
            print(f"| {name} | {bv} | {av} | {ratio} | {verdict} | {bp} | {ap} |")


if __name__ == "__main__":
    main()
