"""Seed studies: train a stage over several seeds and variants, record every run, compare
variants with paired confidence intervals.

    python -m srpose_lib.study run --mode quick --stage source_only --tasks hand,body \\
        --seeds 0,1,2 --variant fp32 train.precision=fp32 --variant bf16 train.precision=bf16 \\
        --out results/quick/precision
    python -m srpose_lib.study summary results/quick/precision --baseline fp32
    python -m srpose_lib.study readme     # the README's tables from the committed records

One JSON record per run (``<out>/<task>-<variant>-seed<N>.json``) with the git commit, the
config's cache key (stage + hash), the seed, the wall time, the machine's bench figure (when
known) and every metric; a record that exists is not run again, so an interrupted study
resumes. The design is paired: for a seed, every variant starts from the same seeded
initialisation and data order, so seed noise cancels in the per-seed difference
``variant - baseline``, whose mean over seeds gets a Student-t 95 % interval.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

from .errors import ConfigError, SrposeError

#: two-sided 95 % Student-t quantiles t_{0.975, df}, df = 1..30 (standard table values)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("a confidence interval needs at least two paired seeds")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def paired_ci(a: list[float], b: list[float]) -> dict:
    """Mean of ``a - b`` over paired seeds with its 95 % t interval (``None`` bounds for one seed)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired lists must have the same, non-zero length")
    d = [x - y for x, y in zip(a, b)]
    mean = statistics.fmean(d)
    if len(d) < 2:
        return {"n": 1, "mean": mean, "sd": None, "lo": None, "hi": None}
    sd = statistics.stdev(d)
    half = t975(len(d) - 1) * sd / math.sqrt(len(d))
    return {"n": len(d), "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


# ---------------------------------------------------------------------------------------
# running


def _parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"variant override {p!r} is not KEY=VALUE", "write e.g. train.precision=fp32")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def run_one(stage: str, mode: str, task: str, seed: int, overrides: dict, cache_dir, device: str = "auto",
            log=print) -> dict:
    """Train (or load) one stage for one seed and evaluate it on the test splits."""
    import torch

    from . import utils
    from .data.benchmark import BenchmarkData
    from .eval.evaluate import evaluate_pck
    from .pipeline import Stages
    from .presets import config_for
    from .train.cache import run_key

    dev = utils.resolve_device(device)
    cfg = config_for(stage, mode, task, **{"seed": seed, **overrides})
    data = BenchmarkData(cache_dir, show_progress=False)
    stages = Stages(cache_dir, data, dev, log=log, show_progress=False)
    t0 = time.perf_counter()
    result = stages.supervised(cfg)
    seconds = time.perf_counter() - t0
    from .train.supervised import load_model

    model = load_model(result, dev)
    metrics = {}
    for domain in ("source", "target"):
        ds = data.dataset(cfg.benchmark, cfg.data, domain, "test")
        with torch.no_grad():
            ev = evaluate_pck(model, ds, cfg.train.eval_batch_size, dev)
        metrics.update(ev.metrics(task, stage, f"{domain}_test"))
    return {"stage": stage, "mode": mode, "task": task, "seed": seed, "overrides": overrides,
            "run_key": run_key(stage, cfg, data.fingerprint(cfg)), "seconds": seconds,
            "from_cache": result.from_cache, "history": result.history, "metrics": metrics}


def cmd_run(args) -> int:
    from . import utils

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [(name, _parse_overrides(kv)) for name, *kv in args.variant] or [("default", {})]
    cache = Path(args.cache_dir) if args.cache_dir else utils.default_cache_dir()
    bench = _bench_figure()
    code = utils.git_sha()  # the code this process runs (it may be committed over while it trains)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for task in args.tasks.split(","):
            for name, overrides in variants:
                path = out / f"{task}-{name}-seed{seed}.json"
                if path.exists():
                    print(f"[study] {path.name} exists: skipped", flush=True)
                    continue
                t0 = time.perf_counter()
                rec = run_one(args.stage, args.mode, task, seed, overrides, cache, args.device,
                              log=lambda s: print(s, flush=True))
                rec.update({"variant": name, "wall_s": time.perf_counter() - t0, "git_sha": code,
                            "git_sha_at_write": utils.git_sha(),
                            "bench_figure": bench, "versions": utils.versions(),
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                utils.atomic_write_json(path, rec)
                key = f"pck/{task}/{args.stage}/target_test/all"
                print(f"[study] {path.name}: target All {rec['metrics'].get(key, float('nan')):.1f} "
                      f"in {rec['wall_s']:.0f} s", flush=True)
    return 0


def _bench_figure():
    """The machine's bench figure (``srpose_lib.machine``: measured once per machine, then
    cached), or None when it cannot be had."""
    from . import machine

    try:
        return machine.bench_figure()
    except Exception:  # a figure is provenance, not a reason to stop a study
        return None


# ---------------------------------------------------------------------------------------
# summarising


def load_records(folder: str | Path) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json")) if p.name != "summary.json"]
    if not recs:
        raise SrposeError(f"no study records in {folder}", "run `python -m srpose_lib.study run ... --out` first")
    return recs


def summarize(records: list[dict], baseline: str, metric_suffix: str = "target_test/all") -> dict:
    """Per task and variant: mean ± std over seeds of each metric ending in ``metric_suffix``,
    and the paired difference to ``baseline`` with its 95 % interval (seeds both have)."""
    out: dict = {}
    tasks = sorted({r["task"] for r in records})
    for task in tasks:
        rt = [r for r in records if r["task"] == task]
        by = {}
        for r in rt:
            by.setdefault(r["variant"], {})[r["seed"]] = r
        if baseline not in by:
            raise SrposeError(f"no records of baseline variant {baseline!r} for {task}",
                              f"variants present: {', '.join(sorted(by))}")
        for variant, seeds in by.items():
            for key in sorted(k for k in next(iter(seeds.values()))["metrics"] if k.endswith(metric_suffix)):
                vals = [seeds[s]["metrics"][key] for s in sorted(seeds)]
                m, sd = mean_std(vals)
                entry = {"seeds": sorted(seeds), "values": vals, "mean": m, "std": sd}
                common = sorted(set(seeds) & set(by[baseline]))
                if variant != baseline and common:
                    entry["paired_vs_" + baseline] = paired_ci([seeds[s]["metrics"][key] for s in common],
                                                               [by[baseline][s]["metrics"][key] for s in common])
                out.setdefault(task, {}).setdefault(variant, {})[key] = entry
    return out


def format_summary(summary: dict, baseline: str) -> str:
    lines = []
    for task, variants in summary.items():
        for variant, metrics in variants.items():
            for key, e in metrics.items():
                sd = f" ± {e['std']:.1f}" if e["std"] is not None else ""
                line = f"{task:5s} {variant:10s} {key}: {e['mean']:.1f}{sd} (seeds {e['seeds']})"
                p = e.get("paired_vs_" + baseline)
                if p:
                    ci = f" [{p['lo']:+.1f}, {p['hi']:+.1f}]" if p["lo"] is not None else ""
                    line += f"  vs {baseline}: {p['mean']:+.2f}{ci} (n={p['n']})"
                lines.append(line)
    return "\n".join(lines)


def markdown_table(summary: dict, baseline: str) -> str:
    """One row per task and variant: mean ± std over seeds, and the paired difference to
    ``baseline`` with its 95 % interval (what the README shows; :func:`update_readme`)."""
    lines = ["| task | split | variant | seeds | mean ± std | paired difference to " + baseline + " [95 % CI] |",
             "|---|---|---|---|---|---|"]
    rows = []
    for task, variants in summary.items():
        for variant in sorted(variants, key=lambda v: (v != baseline, v)):
            for key, e in variants[variant].items():
                sd = f" ± {e['std']:.1f}" if e["std"] is not None else ""
                p = e.get("paired_vs_" + baseline)
                if p is None:
                    diff = "—"
                elif p["lo"] is None:
                    diff = f"{p['mean']:+.2f} (one seed)"
                else:
                    diff = f"{p['mean']:+.2f} [{p['lo']:+.2f}, {p['hi']:+.2f}]"
                seeds = ",".join(str(x) for x in e["seeds"])
                split = key.split("/")[-2]
                rows.append(((task, split, variant != baseline, variant),
                             f"| {task} | {split} | {variant} | {seeds} | {e['mean']:.1f}{sd} | {diff} |"))
    return "\n".join(lines + [r for _, r in sorted(rows)])


_BLOCK = re.compile(r"(<!-- study: (?P<folder>\S+) baseline=(?P<base>\S+) metric=(?P<metric>\S+) -->\n)"
                    r"(?P<body>.*?)(<!-- /study -->)", re.S)


def readme_blocks(text: str, root: Path) -> list[tuple[str, str]]:
    """(current, expected) body of every study block of a README: the table
    :func:`markdown_table` makes from the committed records the block names."""
    out = []
    for m in _BLOCK.finditer(text):
        summary = summarize(load_records(root / m["folder"]), m["base"], m["metric"])
        out.append((m["body"], markdown_table(summary, m["base"]) + "\n"))
    return out


def update_readme(path: Path, root: Path) -> int:
    """Rewrite every study block of ``path`` from its records; returns how many changed."""
    text = path.read_text()
    changed = 0

    def fill(m):
        nonlocal changed
        summary = summarize(load_records(root / m["folder"]), m["base"], m["metric"])
        body = markdown_table(summary, m["base"]) + "\n"
        changed += body != m["body"]
        return m.group(1) + body + m.group(6)

    path.write_text(_BLOCK.sub(fill, text))
    return changed


def cmd_summary(args) -> int:
    summary = summarize(load_records(args.folder), args.baseline, args.metric)
    print(markdown_table(summary, args.baseline) if args.markdown else format_summary(summary, args.baseline))
    return 0


def cmd_readme(args) -> int:
    from .utils import repo_root

    root = repo_root()
    n = update_readme(Path(args.readme) if args.readme else root / "README.md", root)
    print(f"{n} study table(s) updated")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srpose_lib.study", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and evaluate a stage over seeds and variants")
    r.add_argument("--mode", default="quick", choices=("smoke", "quick", "full"))
    r.add_argument("--stage", default="source_only", choices=("source_only", "oracle"))
    r.add_argument("--tasks", default="hand,body")
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"),
                   help="a named variant with config overrides, e.g. --variant bf16 train.precision=bf16")
    r.add_argument("--out", required=True)
    r.add_argument("--cache-dir", default="")
    r.add_argument("--device", default="auto")
    s = sub.add_parser("summary", help="mean ± std and paired 95 %% intervals of a study's records")
    s.add_argument("folder")
    s.add_argument("--baseline", required=True)
    s.add_argument("--metric", default="target_test/all", help="metric-name suffix to report")
    s.add_argument("--markdown", action="store_true", help="print the README's table")
    m = sub.add_parser("readme", help="rewrite the README's study tables from the committed records")
    m.add_argument("--readme", default="")
    args = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "summary": cmd_summary, "readme": cmd_readme}[args.cmd](args)
    except SrposeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
