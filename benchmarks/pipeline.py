"""Pipeline benchmark: end-to-end wall time of the main job, per component, and of a cached re-run.

Runs the local runner (LocalDagRunner, SQLite ML Metadata, Beam DirectRunner) exactly as
``bash scripts/pipeline.sh`` does, into fresh temporary pipeline-root / metadata / serving dirs:
once from scratch, then again with the same data (a scheduled refresh with nothing new: every
step cached but the evaluations). A component's time is its execution's span in ML Metadata
(``pipelines.progress.node_executions``: creation to last update), never log text. Also reports
the runner process's peak RSS.

    python -m benchmarks.pipeline                                 # MovieLens-100K, default encoder
    python -m benchmarks.pipeline --encoder hisac
    python -m benchmarks.pipeline --data my_log.csv --context-features hour

Writes ``benchmarks/results/pipeline.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

from benchmarks import plotting
from pipelines import configs

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
def run_once(arguments: list[str], metadata_path: str) -> dict:
    """One runner invocation: total seconds, seconds per component (ML Metadata), exit code, its output."""
    from pipelines import progress

    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    since = progress.last_execution_id(metadata_path)
    started = time.perf_counter()
    runner = subprocess.Popen([sys.executable, "-m", "pipelines.local_runner", *arguments], cwd=str(REPO_ROOT),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = []
    for line in runner.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        print(line.rstrip(), flush=True)
    runner.wait()
    seconds = time.perf_counter() - started
    executions = progress.node_executions(progress.store_for(metadata_path), since) if runner.returncode == 0 else {}
    return {"seconds": seconds, "components": {node: run.seconds for node, run in executions.items()},
            "exit_code": runner.returncode, "output_tail": tail}


def plot(report: dict, path: pathlib.Path) -> None:
    figure, axis = plotting.subplots(figsize=(9, 4))
    names = list(report["runs"][0]["components"])
    for offset, run in zip((-0.2, 0.2), report["runs"]):
        positions = [index + offset for index in range(len(names))]
        axis.barh(positions, [run["components"].get(name, 0.0) for name in names], 0.4,
                  label=f"{run['name']} ({run['seconds']:.0f} s in all)")
    axis.set_yticks(range(len(names)), names)
    axis.set(xlabel="seconds", title=f"pipeline components on {report['data']} ({report['encoder']})")
    axis.legend()
    plotting.save(figure, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=configs.PipelineConfig(data_dir="").encoder, help="default: the main job's")
    parser.add_argument("--data", help="a log file (default: MovieLens-100K)")
    parser.add_argument("--context-features", default="")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    report = {"data": args.data or "ml-100k", "encoder": args.encoder,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": []}
    with tempfile.TemporaryDirectory(prefix="pipeline_benchmark_") as directory:
        arguments = ["--encoder", args.encoder, "--pipeline-root", f"{directory}/root",
                     "--metadata-path", f"{directory}/mlmd/metadata.db", "--serving-model-dir", f"{directory}/served"]
        if args.data:
            arguments += ["--data", args.data, "--context-features", args.context_features]
        for name in ("from scratch", "re-run, same data"):
            run = {"name": name, **run_once(arguments, f"{directory}/mlmd/metadata.db")}
            if run["exit_code"] != 0:
                raise RuntimeError(f"pipeline run '{name}' failed:\n" + "\n".join(run["output_tail"]))
            report["runs"].append(run)
            print(f"[pipeline-benchmark] {name}: {run['seconds']:.0f} s; " + ", ".join(
                f"{component} {seconds:.0f} s" for component, seconds in run["components"].items()), flush=True)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report["rerun_ratio"] = report["runs"][1]["seconds"] / report["runs"][0]["seconds"]
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / "pipeline.json"
    json_path.write_text(json.dumps(report, indent=2))
    plot(report, json_path.with_suffix(".png"))
    print(f"[pipeline-benchmark] wrote {json_path} and {json_path.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
