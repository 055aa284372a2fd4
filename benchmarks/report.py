"""The results tables, generated from ``benchmarks/results/*.json`` (never typed by hand).

Writes ``benchmarks/results/summary.md`` and replaces the section of ``docs/benchmarks.md`` between
``<!-- benchmark-results:begin -->`` and ``<!-- benchmark-results:end -->`` with the same text:
quality per dataset (AUC / GAUC / LogLoss mean ± std over seeds, long-tail AUC, with the run's
cost columns), serving latency per encoder vs history length with its ratio to DIN-full measured
in the same run, codebook fit vs scikit-learn, the pipeline's wall time, the hot-path
before/after, and a long-history run's peak memory by phase. A file that is missing is listed as
such. The long-history blocks (``long_history.json``) go between
``<!-- long-history-results:begin/end -->`` of the same page.

    python -m benchmarks.report                # also the last step of benchmarks.suite
"""
from __future__ import annotations

import json
import pathlib

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DOCS_PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- benchmark-results:begin -->", "<!-- benchmark-results:end -->"
LONG_BEGIN, LONG_END = "<!-- long-history-results:begin -->", "<!-- long-history-results:end -->"
BASELINES = ("din_last_n", "din_full", "sim_hard")
_NOT_AT_L10000 = ("iat_temporal_order", "iat_user_order", "iat_user_order_transfer", "hisac_iat")
# What the suite does not run, and why (shown in the quality tables).
NOT_RUN = {("quality_synthetic_L10000", name): (
    "the benchmark materialises every example's L tokens and histories up front (8.6-11.4 GB peak at "
    "L = 1,000, measured; about ten times that at 10,000" + ("; and IAT's self-attention is O(L^2)"
                                                              if name.startswith("iat") else "")
    + ")") for name in _NOT_AT_L10000}
METHOD_ROWS = ("hisac", "iat")  # rows whose gain over the best baseline is stated
QUALITY_FILES = ("quality_ml-100k", "quality_synthetic", "quality_synthetic_L1000", "quality_synthetic_L10000")
ENCODER_ORDER = ("mean", "din_last_n", "din_full", "sim_hard", "global_clusters", "hisac", "iat_temporal_order",
                 "iat_user_order", "iat_user_order_transfer", "hisac_iat")


def _load(results_dir: pathlib.Path, stem: str) -> dict | None:
    path = results_dir / f"{stem}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pm(summary: dict, metric: str) -> str:
    return f"{summary[metric]['mean']:.4f} ± {summary[metric]['std']:.4f}" if metric in summary else "–"


def _number(summary: dict, metric: str, digits: int = 0) -> str:
    return f"{summary[metric]['mean']:,.{digits}f}" if metric in summary else "–"


def quality_title(report: dict) -> str:
    name = "MovieLens-100K" if report["dataset"] == "ml-100k" else "synthetic"
    if report.get("mean_history"):
        name += f" (long histories: {report['mean_history']:,} events per user on average)"
    return (f"{name}, L = {report['history_length']:,}: {report['train_examples']:,} train / "
            f"{report['test_examples']:,} test examples, {len(report['seeds'])} seeds, {report['epochs']} epochs")


def table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    """A bold title line, then a Markdown table."""
    lines = [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def quality_table(stem: str, report: dict, not_run: dict) -> str:
    encoders = report["encoders"]
    rows = []
    for name in [n for n in ENCODER_ORDER if n in encoders] + [n for n in encoders if n not in ENCODER_ORDER]:
        summary = encoders[name]
        rows.append([name] + [_pm(summary, m) for m in ("auc", "gauc", "logloss", "auc_long_tail")]
                    + [_number(summary, "train_examples_per_second"), _number(summary, "serving_ms_p50", 1),
                       _number(summary, "serving_agents_ms_p50", 1), _number(summary, "peak_rss_mb")])
    text = table(f"**{quality_title(report)}** (`{stem}.json`)",
                 ["encoder", "AUC", "GAUC", "LogLoss", "AUC long-tail", "train ex/s", "serving ms p50",
                  "agents ms p50", "peak RSS MB"], rows)
    skipped = {}
    for (file_stem, name), why in not_run.items():
        if file_stem == stem and name not in encoders:
            skipped.setdefault(why, []).append(name)
    absent = [name for name in ENCODER_ORDER if name not in encoders and all(name not in names
                                                                              for names in skipped.values())]
    text += "".join(f"\n\nNot run here: {', '.join(names)} — {why}." for why, names in skipped.items())
    return text + (f"\n\nNot in this file yet: {', '.join(absent)}." if absent else "")


def studies_table(results_dir: pathlib.Path) -> str:
    """Every other quality run (ablations and studies, ``--tag``): one row per file and encoder."""
    rows = []
    for path in sorted(results_dir.glob("quality_*.json")):
        if path.stem in QUALITY_FILES:
            continue
        report = json.loads(path.read_text())
        rows += [[f"`{path.stem}`", name, f"{report['history_length']:,}", str(len(report["seeds"]))]
                 + [_pm(summary, m) for m in ("auc", "gauc", "logloss", "auc_long_tail")]
                 + [_number(summary, "peak_rss_mb")] for name, summary in report["encoders"].items()]
    return table("**Studies and ablations** (the other `quality_*.json`: one row per file and encoder)",
                 ["file", "encoder", "L", "seeds", "AUC", "GAUC", "LogLoss", "AUC long-tail", "peak RSS MB"], rows)


def _serving_cell(p50: dict, model: str, length: int) -> str:
    if (model, length) not in p50:
        return "not run"
    base = p50.get(("din_full", length))
    return f"{p50[(model, length)]:.1f}" + (f" ({p50[(model, length)] / base:.3g}x)" if base else "")


def serving_table(report: dict) -> str:
    lengths = sorted({row["history_length"] for row in report["rows"]})
    p50 = {(row["model"], row["history_length"]): row["grpc"]["p50_ms"] for row in report["rows"]}
    rows = [[model] + [_serving_cell(p50, model, length) for length in lengths] for model in report["models"]]
    text = table(f"**Serving over TF Serving's gRPC API** (`serving.json`, one run; {report['candidates']} "
                 "candidates per request; ms p50, in brackets the ratio to DIN-full at the same L)",
                 ["model"] + [f"L = {length:,}" for length in lengths], rows)
    return text + "".join(f"\n\n{skipped['model']} at L = {skipped['history_length']:,}: not run ({skipped['why']})."
                          for skipped in report.get("not_run", []))


def latency_table(report: dict) -> str:
    names = list(report["rows"][0]["latency"])
    rows = [[f"{row['history_length']:,}"] + [f"{row['latency'][name]['p50_ms']:.1f} / "
                                               f"{row['latency'][name]['p99_ms']:.1f}" for name in names]
            for row in report["rows"]]
    return table(f"**Model compute vs history length** (`latency.json`, one run; {report['candidates']} candidates, "
                 "from tensors without parsing; ms p50 / p99)", ["L", *names], rows)


def codebook_table(report: dict) -> str:
    rows = [[f"{row['n']:,}", f"{row['ours']['seconds']:.1f}", f"{row['sklearn']['seconds']:.1f}",
             f"{row['ours']['seconds'] / row['sklearn']['seconds']:.2f}", f"{row['ours']['relative_error']:.4f}",
             f"{row['sklearn']['relative_error']:.4f}", f"{row['beam']['seconds']:.1f}" if "beam" in row else "–"]
            for row in report["rows"]]
    return table(f"**Codebook fit** (`codebook.json`, one run; {report['levels']} codes, dim {report['dim']}, "
                 f"{report['iterations']} iterations; relative quantisation error)",
                 ["N", "ours s", "scikit-learn s", "ours / sklearn time", "ours error", "sklearn error", "Beam s"],
                 rows)


def pipeline_table(report: dict) -> str:
    configurations = report.get("configurations", {"ml-100k": report})  # an older file holds one configuration
    names = list(dict.fromkeys(node for one in configurations.values() for run in one["runs"]
                               for node in run["components"]))
    rows = []
    for name, one in configurations.items():
        for run in one["runs"]:
            peak = run.get("peak_rss_mb", one.get("peak_rss_mb"))
            written = f"{sum(run['bytes_written'].values()) / 2**20:,.0f}" if "bytes_written" in run else "–"
            rows.append([name, " ".join(one.get("arguments", [])) or "(defaults)", run["name"], f"{run['seconds']:.0f}",
                         f"{peak:,.0f}" if peak else "–", written]
                        + [f"{run['components'][node]:.0f}" if node in run["components"] else "–" for node in names])
    return table("**Pipeline end to end** (`pipeline.json`, one run per configuration; seconds, the runner's peak "
                 "RSS, MB written under the pipeline root)",
                 ["configuration", "runner flags", "run", "total s", "peak RSS MB", "MB written", *names], rows)


def hot_path_table(report: dict) -> str:
    rows = [[f"{int(length):,}", f"{row['before_agents_ms']:.1f}", f"{row['after_agents_ms']:.1f}",
             f"{row['agents_speedup']:.2f}x", f"{row['before_encode_ms']:.1f}", f"{row['after_encode_ms']:.1f}",
             f"{row['encode_speedup']:.2f}x"] for length, row in report["summary"].items()]
    return table(f"**Hot path: soft routing's distances** (`hot_path.json`, one run alternating the trees; "
                 f"before {report['before']}, after {report['after']}; ms per 100-row request, median)",
                 ["L", "compute_agents before", "after", "speed-up", "in-graph encode before", "after", "speed-up"],
                 rows)


def memory_profile_table(report: dict) -> str:
    def cell(run: dict, phase: str) -> str:
        return f"{run[phase]['peak_mb']:,.0f} ({run[phase]['held_after_mb']:,.0f})"

    rows = [[key, cell(run, "runtime"), cell(run, "data"), " / ".join(f"{mb:,.0f}" for mb in run["fit_rounds_mb"]),
             cell(run, "predict"), cell(run, "serving")] for key, run in report["runs"].items()]
    return table(f"**Peak memory by phase** (`memory_profile.json`, block {report['block']}, one fresh process per "
                 f"row; MB of RSS: the phase's peak (held after it); fit: the peak of each round of {report['steps']} "
                 f"steps)", ["encoder", "runtime", "data", "fit rounds", "predict", "serving"], rows)


def render(results_dir: pathlib.Path = RESULTS_DIR, not_run: dict | None = None) -> str:
    """The whole results section as Markdown."""
    sections, missing = [], []

    def add(stem: str, table) -> None:
        report = _load(results_dir, stem)
        if report is None:
            missing.append(stem)
            return
        sections.append(table(report))
        if (results_dir / f"{stem}.png").exists():
            sections.append(f"![{stem}](benchmarks/results/{stem}.png)")

    for stem in QUALITY_FILES:
        add(stem, lambda report, stem=stem: quality_table(stem, report, not_run or {}))
    sections.append(studies_table(results_dir))
    for stem, table in (("latency", latency_table), ("serving", serving_table), ("codebook", codebook_table),
                        ("pipeline", pipeline_table), ("hot_path", hot_path_table),
                        ("memory_profile", memory_profile_table)):
        add(stem, table)
    if missing:
        sections.append("Not in `benchmarks/results/` yet: " + ", ".join(f"`{stem}.json`" for stem in missing) + ".")
    header = ("_Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`. A quality row's cost "
              "columns come from the run that made that row (rows re-run with `--update` are from later runs, "
              "on a machine that may have been busier); the latency, serving, codebook, pipeline and hot-path "
              "tables are each one run: compare costs as ratios within those. The `quality_*.json` files predate "
              "HiSAC's candidate routing and its temperature relative to the level-1 error: their HiSAC rows "
              "(and hisac_iat's) measure HiSAC without them; the long-history section measures the current one, "
              "each row with the temperature scale it chose._")
    return "\n\n".join([header] + sections) + "\n"


def _value(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else "all" if value is None else str(value)


def _setting(chosen: dict) -> str:
    return ", ".join(f"{key} {_value(value)}" for key, value in chosen.items()) or "–"


def _test(row: dict, metric: str) -> str:
    return _pm({metric: row["summary"][f"test_{metric}"]}, metric) if f"test_{metric}" in row["summary"] else "–"


def _gain(block: dict, name: str, over: tuple[str, ...]) -> str | None:
    """``name``'s mean test AUC minus that of the best of ``over`` (chosen by validation AUC, as a
    user would choose; None if any is missing)."""
    encoders = block["encoders"]
    present = [other for other in over if other in encoders]
    if name not in encoders or not present:
        return None
    best = max(present, key=lambda other: encoders[other]["summary"]["validation_auc"]["mean"])
    gap = encoders[name]["summary"]["test_auc"]["mean"] - encoders[best]["summary"]["test_auc"]["mean"]
    return f"{name} {gap:+.4f} AUC vs {best}"


def long_history_block(block: dict) -> str:
    sizes = block["sizes"]
    title = (f"**{block['dataset']} / {block['variant']}, L = {block['history_length']:,}**: {sizes['users']:,} users, "
             f"{sizes['events']:,} events; {sizes['train_targets']:,} train / {sizes['validation_targets']:,} "
             f"validation / {sizes['test_targets']:,} test targets; {block['settings']['epochs']} epochs")
    if "bayes_auc" in sizes:
        title += f"; Bayes ceiling (the planted preferences) test AUC {sizes['bayes_auc']:.4f}"
    if block["settings"].get("note"):
        title += f" ({block['settings']['note']})"
    elbow = block.get("analysis", {}).get("codebook_by_elbow")
    if elbow:
        title += (f"; block codebook {tuple(elbow['level_sizes'])}, its level 1 chosen by the elbow of the level-1 "
                  "quantisation error (" + ", ".join(f"{size}: {error:.2f}" for size, error
                                                     in elbow["level_1_error_by_size"].items()) + ")")
    if "analysis" in block:
        title += (f". The target item itself is in the window for "
                  f"{block['analysis']['test_targets_with_item_in_window']:.1%} of test targets; its past click "
                  f"rate there, alone, reaches test AUC {block['analysis']['item_click_rate_test_auc']:.4f}")
        if "subcategory_evidence_test_auc" in block["analysis"]:
            analysis = block["analysis"]
            title += (". What the history can tell at best (the posterior under the world's own model, from the "
                      "clicks, click depth and dwell of the window's events that share the target's planted "
                      "sub-category / codebook leaf / category column): test AUC "
                      f"{analysis['subcategory_evidence_test_auc']:.4f} / "
                      f"{analysis['codebook_leaf_evidence_test_auc']:.4f} / {analysis['category_evidence_test_auc']:.4f}")
        rates = [(name, block["analysis"].get(f"user_click_rate_{key}_test_auc"),
                  block["analysis"].get(f"user_click_rate_{key}_test_gauc"))
                 for name, key in (("whole window", "window"), ("last 20", "last_20"), ("last 50", "last_50"))]
        if all(auc is not None for _, auc, _ in rates):
            title += (". The user's own click rate alone (no item), test AUC (GAUC): " + ", ".join(
                f"{name} {auc:.4f} ({gauc:.4f})" for name, auc, gauc in rates))
        sharpness = block["analysis"].get("own_leaf_share_by_temperature_scale")
        if sharpness:
            title += (". Soft routing's share of an item's weight in its own codebook leaf, by temperature (x the "
                      "level-1 error): " + ", ".join(f"{scale}: {share:.2f}" for scale, share in sharpness.items()))
    rows = [[name, _setting(row["chosen"]), _test(row, "auc"), _test(row, "gauc"), _test(row, "auc_long_tail"),
             _test({"summary": {"test_auc": row["summary"]["validation_auc"]}}, "auc"),
             _number(row["summary"], "train_examples_per_second"), _number(row["summary"], "serving_ms_p50", 1),
             _number(row["summary"], "serving_agents_ms_p50", 1), _number(row["summary"], "peak_rss_mb")]
            for name, row in block["encoders"].items()]
    text = table(title, ["encoder", "chosen on validation", "test AUC", "test GAUC", "long-tail AUC", "validation AUC",
                         "train ex/s", "serving ms p50", "agents ms p50", "peak RSS MB"], rows)
    studies = [(name, row) for name, row in block["encoders"].items() if len(row["selection"]) > 1]
    for name, row in studies:
        cells = ", ".join(f"{_setting(entry['setting'])}: {entry['validation_auc']:.4f}" for entry in row["selection"])
        text += f"\n\n{name}, validation AUC of every setting (seed {row['seeds'][0]}): {cells}."
    gains = [_gain(block, name, BASELINES) for name in block["encoders"] if name.startswith(METHOD_ROWS)]
    gains = [gain for gain in gains if gain]
    if gains:
        text += ("\n\nAgainst the best of " + ", ".join(BASELINES) + " (the best chosen by validation AUC; "
                 "differences of test AUC, mean of seeds): " + "; ".join(gains) + ".")
    return text


def temperature_study(blocks: list[dict]) -> tuple[dict, dict]:
    """HiSAC's routing temperature across blocks: ``({block: {scale: validation AUC}}, {scale: total
    regret})`` from each block's ``hisac`` selection at the agent budget it chose (seed 0). A scale's
    regret on a block is the block's best validation AUC minus its own; totals are given for the
    scales every block tried, so each scale is held to the same blocks."""
    by_block = {}
    for block in blocks:
        row = block["encoders"].get("hisac")
        if not row or "temperature_scale" not in row["chosen"]:
            continue
        fanouts = row["chosen"].get("fanouts")
        scales = {entry["setting"]["temperature_scale"]: entry["validation_auc"] for entry in row["selection"]
                  if entry["setting"].get("fanouts") == fanouts and "temperature_scale" in entry["setting"]}
        if len(scales) > 1:
            by_block[f"{block['dataset']} / {block['variant']}, L = {block['history_length']:,}"] = scales
    common = sorted(set.intersection(*(set(scales) for scales in by_block.values()))) if by_block else []
    regret = {scale: sum(max(scales.values()) - scales[scale] for scales in by_block.values()) for scale in common}
    return by_block, regret


def temperature_table(blocks: list[dict]) -> str:
    by_block, regret = temperature_study(blocks)
    if not by_block:
        return ""
    scales = sorted({scale for values in by_block.values() for scale in values})
    rows = [[name] + [f"{values[scale]:.4f}" if scale in values else "–" for scale in scales]
            for name, values in by_block.items()]
    if regret:
        rows.append(["total regret (best of the block minus this, summed)"]
                    + [f"{regret[scale]:.4f}" if scale in regret else "–" for scale in scales])
    return table("HiSAC's routing temperature across blocks (x the codebook's level-1 error; validation AUC, seed 0, "
                 "at the agent budget each block chose). The library's default is the scale of least total regret",
                 ["block"] + [str(scale) for scale in scales], rows)


def window_table(blocks: list[dict]) -> str:
    """IAT's bounded window per block: each window's validation AUC and training speed (seed 0),
    the speed also as a multiple of the block's DIN-last-N row (the speed the issue holds IAT to)."""
    rows = []
    for block in blocks:
        iat, last_n = block["encoders"].get("iat"), block["encoders"].get("din_last_n")
        if not iat or len(iat["selection"]) < 2:
            continue
        reference = last_n["summary"]["train_examples_per_second"]["mean"] if last_n else None
        for entry in iat["selection"]:
            speed = entry.get("train_examples_per_second")
            recent, retrieved = entry["setting"]["window"]
            rows.append([f"{block['dataset']} / {block['variant']}, L = {block['history_length']:,}",
                         f"{recent} + {retrieved}" + (" (chosen)" if entry["setting"] == iat["chosen"] else ""),
                         f"{entry['validation_auc']:.4f}", "–" if speed is None else f"{speed:,.0f}",
                         "–" if speed is None or not reference else f"{speed / reference:.2f}x"])
    if not rows:
        return ""
    return table("IAT's bounded window (recent + retrieved tokens; validation AUC and training speed of seed 0; "
                 "the speed as a multiple of the block's DIN-last-N row)",
                 ["block", "window", "validation AUC", "train ex/s", "x DIN-last-N"], rows)


def long_history_section(results_dir: pathlib.Path = RESULTS_DIR) -> str:
    blocks = _load(results_dir, "long_history")
    if not blocks:
        return "Not in `benchmarks/results/` yet: `long_history.json`.\n"
    sections = [long_history_block(block) for block in blocks]
    sections += [text for text in (temperature_table(blocks), window_table(blocks)) if text]
    if (results_dir / "long_history.png").exists():
        sections.append("![long_history](../benchmarks/results/long_history.png)")
    header = ("_Generated by `python -m benchmarks.report` from `benchmarks/results/long_history.json`; every "
              "number is a test-split mean ± std over the block's seeds unless marked validation._")
    return "\n\n".join([header] + sections) + "\n"


def replace_section(text: str, section: str, begin_marker: str = BEGIN, end_marker: str = END) -> str:
    """``text`` with the part between the markers replaced by ``section``.

    Raises:
      ValueError: the markers are missing or out of order.
    """
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        raise ValueError(f"The page lacks the markers {begin_marker} ... {end_marker} (in that order) around the "
                         "results section.")
    return text[: begin + len(begin_marker)] + "\n" + section + text[end:]


def main(results_dir: pathlib.Path = RESULTS_DIR, page: pathlib.Path = DOCS_PAGE, not_run: dict | None = None) -> str:
    not_run = NOT_RUN if not_run is None else not_run
    section = render(results_dir, not_run).replace("](benchmarks/results/", "](../benchmarks/results/")
    long_section = long_history_section(results_dir)
    in_results_dir = (section + "\n" + long_section).replace("](../benchmarks/results/", "](")
    (results_dir / "summary.md").write_text(in_results_dir)
    text = replace_section(page.read_text(), section)
    page.write_text(replace_section(text, long_section, LONG_BEGIN, LONG_END))
    print(f"[report] wrote {results_dir / 'summary.md'} and the results sections of {page}")
    return section


if __name__ == "__main__":
    main()
