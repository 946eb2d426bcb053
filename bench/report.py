"""Showing the benchmark's results: a terminal table, a JSON file, and a PNG
bar chart when matplotlib happens to be importable (it is not a dependency
of minipod)."""

from __future__ import annotations

import json
import os


def _num(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "KiB":
        return f"{value:.0f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(rows: list[dict]) -> str:
    """One line per metric: minipod's median/min/max, the target and the
    verdict, then the floor's median and the minipod/floor ratio."""
    head = ("metric", "unit", "median", "min", "max", "target", "verdict", "floor", "ratio")
    lines = [head]
    for r in rows:
        m, f = r["minipod"], r["floor"] or {}
        lines.append((
            r["label"], r["unit"], _num(m["median"], r["unit"]), _num(m["min"], r["unit"]),
            _num(m["max"], r["unit"]),
            "<= " + _num(r["target"], r["unit"]) if r["target"] is not None else "-",
            r["verdict"], _num(f.get("median"), r["unit"]),
            f"{r['ratio']:.1f}x" if r["ratio"] is not None else "-",
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def floor_notes(rows: list[dict]) -> str:
    """What the floor column is for each row that has one."""
    return "\n".join(f"  floor of {r['label']!r}: {r['floor_label']}" for r in rows if r.get("floor_label"))


def write_json(result: dict, path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    return path


def print_and_save(result: dict, summary: list[str], name: str, out_dir: str, started) -> int:
    """The end of a bench run: the table, the floors, the summary, the run's
    cleanliness, and the JSON file ``<name>-<date>-<time>.json``. Returns
    the exit code: 0 only when the run left nothing behind."""
    print()
    print(table(result["rows"]))
    print(floor_notes(result["rows"]))
    print("\n".join(summary))
    print(f"\n  {result['seconds']} s, load {result['loadavg_before'][0]:.2f} -> "
          f"{result['loadavg_after'][0]:.2f}, {'clean' if result['clean'] else 'NOT CLEAN'}")
    path = os.path.join(out_dir, f"{name}-{started.strftime('%Y%m%d-%H%M%S')}.json")
    print(f"  {write_json(result, path)}")
    return 0 if result["clean"] else 1


def write_chart(result: dict, path: str) -> str | None:
    """Medians of minipod and the floor per metric, min-max as error bars,
    the target as a tick; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups = [[r for r in result["rows"] if r["unit"] == unit] for unit in ("ms", "KiB")]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.2 * len(groups)), squeeze=False)
    for ax, rows in zip(axes[:, 0], groups):
        xs = range(len(rows))
        width = 0.38

        def bars(side: str, offset: float, color: str, label: str):
            med = [(r[side] or {}).get("median") or 0 for r in rows]
            lo = [m - ((r[side] or {}).get("min") or m) for m, r in zip(med, rows)]
            hi = [((r[side] or {}).get("max") or m) - m for m, r in zip(med, rows)]
            at = [x + offset for x in xs]
            ax.bar(at, med, width, yerr=[lo, hi], capsize=3, color=color, label=label)
            for x, m, up in zip(at, med, hi):
                if m:  # the median's value, above the error bar
                    ax.annotate(_num(m, rows[0]["unit"]), (x, m + up), textcoords="offset points", xytext=(0, 3),
                                ha="center", fontsize=7)

        bars("minipod", -width / 2, "#3b6ea5", "minipod")
        bars("floor", width / 2, "#b0b0b0", "floor (public tools)")
        for x, r in zip(xs, rows):
            if r["target"] is not None:
                ax.hlines(r["target"], x - width, x + width, colors="#c0392b", linestyles="dashed")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r["label"] for r in rows], rotation=15, ha="right", fontsize=8)
        # Log scale: a 10 KiB pause and a 15 MiB supervisor, a 3 ms floor and
        # a 2 s batch, must all be readable on one chart.
        ax.set_yscale("log")
        ax.set_ylabel(rows[0]["unit"] + " (log scale)")
        ax.legend(fontsize=8)
    fig.suptitle(f"minipod core benchmark, {result['date']} (median, min-max; dashed: target)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    """``python bench/report.py RESULT.json``: the table again, and the chart
    (with a Python that has matplotlib), from a saved result."""
    import sys

    if len(argv) != 1:
        print("usage: report.py RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        result = json.load(f)
    print(table(result["rows"]))
    chart = write_chart(result, os.path.splitext(argv[0])[0] + ".png")
    print(chart or "(no chart: matplotlib is not installed)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
