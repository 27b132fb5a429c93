"""Draws every panel of a Grafana dashboard from Prometheus's HTTP API, for docs/dashboard.png.

usage: dashboard_picture.py PROMETHEUS_URL DASHBOARD_JSON START END OUT_PNG
Each panel's queries are asked with query_range over [START, END] (Unix seconds), $instance as ".*", and drawn in a
grid in the dashboard's panel order. Run by scripts/dashboard-picture.sh.
"""
import json
import math
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def query(base, expr, start, end, step):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{q}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        sys.exit(f"query failed: {expr}: {body}")
    return body["data"]["result"]


def legend(fmt, labels):
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    while "{{" in out:
        a = out.index("{{")
        out = out[:a] + out[out.index("}}", a) + 2:]
    return " ".join(out.split()) or "value"


SCALE = {"bytes": (1 / 2**20, "MiB"), "percentunit": (1, "ratio"), "s": (1000, "ms"), "ops": (1, "per second"),
         "short": (1, "")}


def main():
    base, path, start, end, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    dash = json.load(open(path))
    panels = dash["panels"]
    step = max(2, (end - start) // 200)
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.6 * rows), squeeze=False)
    fig.suptitle(f"{dash['title']}  (real data: weir run under load, scraped by Prometheus every 2 s)", fontsize=13)
    empty = []
    for i, p in enumerate(panels):
        ax = axes[i // cols][i % cols]
        ax.set_title(p["title"], fontsize=10)
        ax.grid(alpha=0.3)
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        drawn = 0
        if p["type"] == "heatmap":
            t = p["targets"][0]
            series = query(base, t["expr"].replace("$instance", ".*"), start, end, step)
            buckets = sorted(series, key=lambda s: float(s["metric"]["le"]))
            if buckets:
                times = [float(v[0]) - start for v in buckets[0]["values"]]
                rows_ = []
                prev = [0.0] * len(times)
                for b in buckets:
                    vals = {float(v[0]) - start: float(v[1]) for v in b["values"]}
                    cur = [vals.get(x, 0.0) for x in times]
                    rows_.append([max(0.0, c - q) for c, q in zip(cur, prev)])
                    prev = cur
                ax.pcolormesh(times + [times[-1] + step], range(len(buckets) + 1), rows_, shading="flat", cmap="viridis")
                ax.set_yticks([k + 0.5 for k in range(len(buckets))])
                ax.set_yticklabels([b["metric"]["le"] for b in buckets], fontsize=6)
                ax.set_ylabel("le (s), connects per second")
                drawn = sum(1 for r in rows_ if any(v > 0 for v in r))
        else:
            factor, label = SCALE.get(unit, (1, unit))
            # Queries a field override puts on the right axis (Grafana's custom.axisPlacement), with their unit.
            right = {}
            for o in p.get("fieldConfig", {}).get("overrides", []):
                if o["matcher"]["id"] == "byFrameRefID":
                    props = {x["id"]: x["value"] for x in o["properties"]}
                    if props.get("custom.axisPlacement") == "right":
                        right[o["matcher"]["options"]] = props.get("unit", unit)
            twin = ax.twinx() if right else None
            for t in p["targets"]:
                for s in query(base, t["expr"].replace("$instance", ".*"), start, end, step):
                    xs = [float(v[0]) - start for v in s["values"]]
                    ys = [float(v[1]) for v in s["values"]]
                    ys = [0.0 if math.isnan(y) else y for y in ys]
                    name = legend(t.get("legendFormat", ""), s["metric"])
                    target, scale = ax, factor
                    if t["refId"] in right:
                        target = twin
                        scale, twin_label = SCALE.get(right[t["refId"]], (1, right[t["refId"]]))
                        twin.set_ylabel(twin_label)
                    target.plot(xs, [y * scale for y in ys], lw=1.2, label=name, color=f"C{drawn % 10}",
                                ls="--" if target is twin else "-")
                    print(f"{p['title']} | {name}: max {max(ys + [0]):.4g} last {ys[-1] if ys else 0:.4g}")
                    drawn += 1
            ax.set_ylabel(label)
            handles, labels = ax.get_legend_handles_labels()
            if twin:
                h2, l2 = twin.get_legend_handles_labels()
                handles, labels = handles + h2, labels + [f"{x} (right)" for x in l2]
            if handles:
                ax.legend(handles[:8], labels[:8], fontsize=7, loc="upper left")
        ax.set_xlabel("seconds since the load started")
        if drawn == 0:
            empty.append(p["title"])
    for j in range(len(panels), rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    if empty:
        print(f"panels with no data: {empty}", file=sys.stderr)


if __name__ == "__main__":
    main()
