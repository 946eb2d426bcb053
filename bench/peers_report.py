"""The side-by-side comparison's results: rows with several contenders
(minipod, podman, a raw OCI bundle, the floor), verdicts against targets
that are ratios to a peer or plain bounds, the terminal table, a Markdown
table for the README, and PNG charts (one per scenario, and an overview).

Pure logic, tested without root in ``test_peers_bench.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from core import summarize

SIDES = ("minipod", "podman", "bundle", "floor")
SIDE_TITLES = {"minipod": "minipod", "podman": "podman", "bundle": "raw bundle", "floor": "floor"}
COLORS = {"minipod": "#3b6ea5", "podman": "#8e5ea2", "bundle": "#e0a030", "floor": "#b0b0b0"}


@dataclass
class Target:
    """``kind``: "ratio_max" (minipod/peer at most ``value``), "ratio_min"
    (at least ``value``: throughput) or "max" (minipod's median at most
    ``value`` in the row's unit)."""

    kind: str
    value: float
    peer: str | None = None

    def text(self, unit: str) -> str:
        if self.kind == "max":
            return f"<= {_num(self.value, unit)} {unit}"
        sign = "<=" if self.kind == "ratio_max" else ">="
        return f"{sign} {self.value:g}x {SIDE_TITLES[self.peer]}"


@dataclass
class Row:
    """One measured quantity of one scenario, for every contender that has it."""

    scenario: str
    key: str
    label: str
    unit: str
    target: Target | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    what: dict[str, str] = field(default_factory=dict)  # side -> what was run

    def add(self, side: str, value: float) -> None:
        self.samples.setdefault(side, []).append(value)

    def to_dict(self) -> dict:
        sides = {s: summarize(v) for s, v in self.samples.items() if v}
        mine = (sides.get("minipod") or {}).get("median")
        ratios = {s: ratio(mine, d["median"]) for s, d in sides.items() if s != "minipod"}
        out = {"scenario": self.scenario, "key": self.key, "label": self.label, "unit": self.unit,
               "sides": sides, "what": self.what, "ratios": ratios,
               "target": None, "verdict": "-", "margin": None}
        if self.target is not None:
            out["target"] = {"kind": self.target.kind, "value": self.target.value, "peer": self.target.peer,
                             "text": self.target.text(self.unit)}
            out["verdict"], out["margin"] = judge(self.target, mine, sides)
        return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def judge(target: Target, mine: float | None, sides: dict) -> tuple[str, str | None]:
    """(PASS/MISS/"-", a sentence saying by how much)."""
    if mine is None:
        return "-", None
    if target.kind == "max":
        ok = mine <= target.value
        over = mine - target.value
        return ("PASS" if ok else "MISS"), (f"{abs(over):.1f} under" if ok else f"{over:.1f} over") + \
            f" the {target.value:g} bound"
    peer = (sides.get(target.peer) or {}).get("median")
    r = ratio(mine, peer)
    if r is None:
        return "-", None
    if target.kind == "ratio_max":
        ok = r <= target.value
        # How much faster (smaller) minipod must get to meet the target.
        need = 1 - target.value / r
        return ("PASS" if ok else "MISS"), f"{r:.2f}x" + ("" if ok else f": {need * 100:.0f}% too high")
    ok = r >= target.value
    short = (target.value - r) / target.value
    return ("PASS" if ok else "MISS"), f"{r:.2f}x" + ("" if ok else f": {short * 100:.0f}% short")


# ------------------------------------------------------------------ text
def _num(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("KiB",):
        return f"{value:.0f}"
    if unit in ("s", "Gbit/s"):
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def cell(side: dict | None, unit: str) -> str:
    """``median (min-max)``, or ``median`` when there is one sample."""
    if not side or side.get("median") is None:
        return "-"
    if side["n"] == 1:
        return _num(side["median"], unit)
    return f"{_num(side['median'], unit)} ({_num(side['min'], unit)}-{_num(side['max'], unit)})"


def present_sides(rows: list[dict]) -> list[str]:
    return [s for s in SIDES if any(s in r["sides"] for r in rows)]


def table(rows: list[dict], titles: dict[str, str] | None = None) -> str:
    """The terminal table: per row each contender's median (min-max), the
    ratios minipod/peer, the target and the verdict."""
    titles = {**SIDE_TITLES, **(titles or {})}
    sides = present_sides(rows)
    peers = [s for s in sides if s != "minipod"]
    head = ["scenario", "metric", "unit", *[titles[s] for s in sides], *[f"/{titles[s]}" for s in peers],
            "target", "verdict"]
    lines = [head]
    for r in rows:
        lines.append([r["scenario"], r["label"], r["unit"], *[cell(r["sides"].get(s), r["unit"]) for s in sides],
                      *[f"{r['ratios'][s]:.2f}x" if r["ratios"].get(s) else "-" for s in peers],
                      (r["target"] or {}).get("text", "-"), r["verdict"]])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(rows: list[dict], titles: dict[str, str] | None = None) -> str:
    """The same table in Markdown, for the README."""
    titles = {**SIDE_TITLES, **(titles or {})}
    sides = present_sides(rows)
    head = ["scenario", *[titles[s] for s in sides], "minipod / podman", "target", "verdict"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        podman = r["ratios"].get("podman")
        floor = r["ratios"].get("floor") if r["target"] and r["target"]["peer"] == "floor" else None
        shown = f"{podman:.2f}x" if podman else (f"{floor:.2f}x the floor" if floor else "-")
        verdict = f"**{r['verdict']}** ({r['margin']})" if r["verdict"] != "-" else "-"
        out.append("| " + " | ".join([f"{r['label']} ({r['unit']})",
                                      *[cell(r["sides"].get(s), r["unit"]) for s in sides], shown,
                                      (r["target"] or {}).get("text", "-"), verdict]) + " |")
    return "\n".join(out)


def verdict_lines(rows: list[dict]) -> list[str]:
    """One line per row with a target: met or missed, and by how much."""
    return [f"  {r['verdict']:4}  {r['label']}: {r['margin']} (target {r['target']['text']})"
            for r in rows if r["target"] and r["verdict"] != "-"]


# ------------------------------------------------------------------ charts
def _bars(ax, rows: list[dict], titles: dict[str, str]) -> None:
    sides = present_sides(rows)
    width = 0.8 / max(1, len(sides))
    for i, side in enumerate(sides):
        xs, med, lo, hi = [], [], [], []
        for x, r in enumerate(rows):
            s = r["sides"].get(side)
            if not s:
                continue
            xs.append(x + (i - (len(sides) - 1) / 2) * width)
            med.append(s["median"])
            lo.append(s["median"] - s["min"])
            hi.append(s["max"] - s["median"])
        if not xs:
            continue
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, color=COLORS[side], label=titles[side])
        for x, m, up in zip(xs, med, hi):
            ax.annotate(_num(m, rows[0]["unit"]), (x, m + up), textcoords="offset points", xytext=(0, 2),
                        ha="center", fontsize=6)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["label"] for r in rows], rotation=12, ha="right", fontsize=7)
    medians = [s["median"] for r in rows for s in r["sides"].values() if s.get("median")]
    # A 3 ms floor and a 3.5 s kube down on one axis: only a log scale shows both.
    if medians and min(medians) > 0 and max(medians) / min(medians) > 30:
        ax.set_yscale("log")
        ax.set_ylabel(rows[0]["unit"] + " (log scale)")
    else:
        ax.set_ylabel(rows[0]["unit"])
    ax.legend(fontsize=7)


def chart_groups(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """Rows grouped for drawing: by scenario, then by unit (one axis each)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["unit"]), []).append(r)
    return [(f"{scenario} ({unit})", rs) for (scenario, unit), rs in groups.items()]


def write_charts(result: dict, stem: str) -> list[str]:
    """``<stem>-overview.png`` (every group, one panel each) and one PNG per
    scenario; [] when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    titles = {**SIDE_TITLES, **result.get("side_titles", {})}
    groups = chart_groups(result["rows"])
    written = []
    cols = 2
    nrows = (len(groups) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(12, 3.3 * nrows), squeeze=False)
    for ax, (title, rows) in zip(axes.flat, groups):
        _bars(ax, rows, titles)
        ax.set_title(title, fontsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    host = result.get("host", {})
    podman = (result.get("versions", {}).get("podman") or "").replace("podman version ", "")
    fig.suptitle(f"minipod vs podman {podman}, raw {result.get('bundle_runtime', '')} bundle, floor — "
                 f"{result['date']}, {host.get('cpus')} CPUs, kernel {host.get('kernel')} "
                 f"(median, min-max)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    fig.savefig(stem + "-overview.png", dpi=100)
    plt.close(fig)
    written.append(stem + "-overview.png")
    for scenario in dict.fromkeys(r["scenario"] for r in result["rows"]):
        mine = [(t, rs) for t, rs in groups if rs[0]["scenario"] == scenario]
        fig, axes = plt.subplots(1, len(mine), figsize=(5.5 * len(mine), 3.4), squeeze=False)
        for ax, (title, rows) in zip(axes[0], mine):
            _bars(ax, rows, titles)
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        path = f"{stem}-{scenario}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    """``python bench/peers_report.py RESULT.json``: the table again, and
    the Markdown and the charts rewritten next to it, from a saved run."""
    import json
    import sys

    if len(argv) != 1 or not argv[0].endswith(".json"):
        print("usage: peers_report.py RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        result = json.load(f)
    titles = result.get("side_titles", {})
    print(table(result["rows"], titles))
    stem = argv[0][:-len(".json")]
    with open(stem + ".md", "w") as f:
        f.write(markdown(result["rows"], titles) + "\n")
    print("\n".join([stem + ".md", *write_charts(result, stem)]))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
