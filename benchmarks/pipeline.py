"""Pipeline benchmark: the main job end to end, per component, at short and at long histories.

Runs the local runner (LocalDagRunner, SQLite ML Metadata, Beam DirectRunner) exactly as
``bash scripts/pipeline.sh`` does, into fresh temporary pipeline-root / metadata / serving dirs,
once per named configuration: from scratch, then (unless ``--skip-rerun``) again with the same data
(a scheduled refresh with nothing new: every step cached but the evaluations). Per run: wall
seconds, each component's seconds (its execution's span in ML Metadata,
``pipelines.progress.node_executions``, never log text), the bytes each component wrote under the
pipeline root, and the runner's peak RSS.

    python -m benchmarks.pipeline                                   # the main job: MovieLens-100K
    python -m benchmarks.pipeline --configurations ml-1m_hisac_L1000 --skip-rerun
    python -m benchmarks.pipeline --list                            # the configurations and their flags
    python -m benchmarks.pipeline --data my_log.csv --context-features hour   # your log ("custom")

Merges each configuration's report into ``benchmarks/results/pipeline.json`` (the others stay) and
plots ``.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

from benchmarks import plotting

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Configuration name -> the runner's flags (besides its output directories).
CONFIGURATIONS = {
    "ml-100k": [],   # the main job as `bash scripts/pipeline.sh` runs it
    "ml-1m_hisac_L1000": ["--dataset", "ml-1m", "--encoder", "hisac", "--history-length", "1000",
                          "--targets-per-user", "20"],
    "ml-1m_iat_L1000": ["--dataset", "ml-1m", "--encoder", "iat", "--history-length", "1000",
                        "--targets-per-user", "20", "--search-window", "64,64"],
    # HiSAC beside a DIN over the last 50 events at the temperature MovieLens-1M chose: its long-history
    # benchmark's best model, as the README's example runs it.
    "ml-1m_hisac_short_L1000": ["--dataset", "ml-1m", "--encoder", "hisac", "--history-length", "1000",
                                "--targets-per-user", "20", "--short-term-last-n", "50", "--temperature-scale", "1.0"],
}


def bytes_by_directory(root: pathlib.Path) -> dict:
    """Bytes of the files under each top-level directory of ``root`` (a component's outputs)."""
    sizes = {}
    for directory in (root.iterdir() if root.exists() else ()):
        files = (path for path in directory.rglob("*") if path.is_file() and not path.is_symlink())
        sizes[directory.name] = sum(path.stat().st_size for path in files)
    return sizes


def run_once(arguments: list[str], metadata_path: str, pipeline_root: pathlib.Path) -> dict:
    """One runner invocation: seconds in all and per component (ML Metadata), bytes each component
    wrote, the runner's peak RSS, its exit code and the tail of its output."""
    from pipelines import progress

    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    since = progress.last_execution_id(metadata_path)
    before = bytes_by_directory(pipeline_root)
    started = time.perf_counter()
    runner = subprocess.Popen([sys.executable, "-m", "pipelines.local_runner", *arguments], cwd=str(REPO_ROOT),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = []
    for line in runner.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        print(line.rstrip(), flush=True)
    runner.stdout.close()
    # The runner's rusage: the peak RSS of its largest process (the runner or a Beam worker), not the benchmark's.
    _, status, usage = os.wait4(runner.pid, 0)
    runner.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    executions = progress.node_executions(progress.store_for(metadata_path), since) if runner.returncode == 0 else {}
    written = {name: size - before.get(name, 0) for name, size in bytes_by_directory(pipeline_root).items()}
    return {"seconds": seconds, "components": {node: run.seconds for node, run in executions.items()},
            "bytes_written": {name: size for name, size in written.items() if size > 0},
            "peak_rss_mb": usage.ru_maxrss / 1024, "exit_code": runner.returncode, "output_tail": tail}


def run_configuration(name: str, arguments: list[str], skip_rerun: bool, failed_log_dir: pathlib.Path) -> dict:
    """A configuration's runs into fresh directories; raises if a run fails, keeping the runner's
    full logs as ``<failed_log_dir>/pipeline_<name>_failed.log`` (the run's directories are removed)."""
    report = {"arguments": arguments, "machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": []}
    with tempfile.TemporaryDirectory(prefix="pipeline_benchmark_") as directory:
        root = pathlib.Path(directory) / "root"
        metadata_path = f"{directory}/mlmd/metadata.db"
        flags = [*arguments, "--pipeline-root", str(root), "--metadata-path", metadata_path,
                 "--serving-model-dir", f"{directory}/served"]
        for run_name in ("from scratch",) if skip_rerun else ("from scratch", "re-run, same data"):
            run = {"name": run_name, **run_once(flags, metadata_path, root)}
            if run["exit_code"] != 0:
                kept = failed_log_dir / f"pipeline_{name}_failed.log"
                kept.write_text("".join(log.read_text() for log in sorted((root / "logs").glob("*.log"))))
                raise RuntimeError(f"pipeline {name} run '{run_name}' failed (full logs: {kept}):\n"
                                   + "\n".join(run["output_tail"]))
            report["runs"].append(run)
            print(f"[pipeline-benchmark] {name}, {run_name}: {run['seconds']:.0f} s, peak RSS "
                  f"{run['peak_rss_mb']:,.0f} MB, {sum(run['bytes_written'].values()) / 2**20:,.0f} MB written; "
                  + ", ".join(f"{component} {seconds:.0f} s" for component, seconds in run["components"].items()),
                  flush=True)
    return report


def read_report(path: pathlib.Path) -> dict:
    """The results file as {configuration name: report} (an older single-run file is kept as ``ml-100k``)."""
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    if "runs" in report:   # the older layout: one MovieLens-100K run with the encoder it names
        return {"ml-100k": {"arguments": ["--encoder", report.get("encoder", "?")], **report}}
    return report["configurations"]


def plot(configurations: dict, path: pathlib.Path) -> None:
    """Seconds per component of each configuration's run from scratch."""
    names = list(dict.fromkeys(node for report in configurations.values() for node in report["runs"][0]["components"]))
    figure, axis = plotting.subplots(figsize=(9, 1.5 + 0.35 * len(names) * max(1, len(configurations)) / 2))
    height = 0.8 / max(1, len(configurations))
    for position, (name, report) in enumerate(configurations.items()):
        run = report["runs"][0]
        axis.barh([index + position * height for index in range(len(names))],
                  [run["components"].get(node, 0.0) for node in names], height,
                  label=f"{name} ({run['seconds']:.0f} s in all)")
    axis.set_yticks([index + 0.4 - height / 2 for index in range(len(names))], names)
    axis.set(xlabel="seconds (run from scratch)", title="pipeline components, per configuration")
    axis.legend()
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", default="ml-100k",
                        help=f"comma-separated, of {list(CONFIGURATIONS)} (default: the main job's)")
    parser.add_argument("--data", help="run your own log instead, as configuration 'custom'")
    parser.add_argument("--context-features", default="")
    parser.add_argument("--encoder", help="override the configurations' encoder")
    parser.add_argument("--skip-rerun", action="store_true", help="only the run from scratch")
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    if args.list:
        for name, flags in CONFIGURATIONS.items():
            print(f"{name}: python -m pipelines.local_runner {' '.join(flags)}")
        return {}
    if args.data:
        chosen = {"custom": ["--data", args.data, "--context-features", args.context_features]}
    else:
        names = args.configurations.split(",")
        unknown = sorted(set(names) - set(CONFIGURATIONS))
        if unknown:
            parser.error(f"unknown configuration(s) {unknown}; expected some of {list(CONFIGURATIONS)}")
        chosen = {name: CONFIGURATIONS[name] for name in names}
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / "pipeline.json"
    for name, flags in chosen.items():
        flags = [*flags, "--encoder", args.encoder] if args.encoder else flags
        configurations = {**read_report(json_path), name: run_configuration(name, flags, args.skip_rerun, output_dir)}
        json_path.write_text(json.dumps({"configurations": configurations}, indent=2))
        plot(configurations, json_path.with_suffix(".png"))
        print(f"[pipeline-benchmark] wrote {name} into {json_path} and {json_path.with_suffix('.png')}")
    return read_report(json_path)


if __name__ == "__main__":
    main()
