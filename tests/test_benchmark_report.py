"""The docs' results tables are generated from the benchmark JSON files, never typed."""
import json

import pytest

from benchmarks import report


def _quality(path, encoders):
    summary = {name: {"auc": {"mean": auc, "std": 0.001}, "gauc": {"mean": auc - 0.01, "std": 0.002},
                      "logloss": {"mean": 0.5, "std": 0.01}, "peak_rss_mb": {"mean": 2048.0, "std": 0.0}}
               for name, auc in encoders.items()}
    path.write_text(json.dumps({"dataset": "synthetic", "history_length": 10000, "mean_history": 3000,
                                "train_examples": 100, "test_examples": 20, "seeds": [0, 1, 2], "epochs": 2,
                                "encoders": summary}))


def _serving(path):
    rows = [{"model": model, "history_length": length, "grpc": {"p50_ms": ms}}
            for model, length, ms in [("din_full", 100, 10.0), ("hisac_agents", 100, 2.5), ("din_full", 1000, 40.0)]]
    path.write_text(json.dumps({"candidates": 100, "models": ["din_full", "hisac_agents"], "rows": rows,
                                "not_run": [{"model": "iat", "history_length": 1000, "why": "O(L^2)"}]}))


def test_tables_come_from_the_files_with_ratios_within_one_run(tmp_path):
    _quality(tmp_path / "quality_synthetic_L10000.json", {"hisac_iat": 0.61, "din_full": 0.6})
    _quality(tmp_path / "quality_synthetic_fanouts_16x2.json", {"hisac": 0.8187})
    _serving(tmp_path / "serving.json")
    text = report.render(tmp_path, {("quality_synthetic_L10000", "iat_user_order"): "too big"})
    lines = text.splitlines()
    assert lines.index(next(l for l in lines if l.startswith("| din_full | 0.6000"))) < lines.index(
        next(l for l in lines if l.startswith("| hisac_iat | 0.6100 ± 0.0010 | 0.6000 ± 0.0020")))  # canonical order
    assert "| 2,048 |" in text and "Not run here: iat_user_order — too big." in text
    assert "Not in this file yet: mean, din_last_n, sim_hard," in text  # absent rows are named, not hidden
    assert "| `quality_synthetic_fanouts_16x2` | hisac | 10,000 | 3 | 0.8187 ± 0.0010" in text
    assert "| hisac_agents | 2.5 (0.25x) | not run |" in text and "iat at L = 1,000: not run (O(L^2))" in text
    assert "`quality_ml-100k.json`" in text and "`pipeline.json`" in text  # listed as missing, not invented


def test_the_readme_section_between_the_markers_is_replaced_and_nothing_else(tmp_path):
    before = f"intro\n{report.BEGIN}\nold table\n{report.END}\noutro\n"
    after = report.replace_section(before, "new table\n")
    assert after == f"intro\n{report.BEGIN}\nnew table\n{report.END}\noutro\n"
    with pytest.raises(ValueError, match="The page lacks the markers"):
        report.replace_section("no markers here", "new table\n")


def _long_block(encoders, variant="base"):
    def row(auc, selection=None):
        summary = {f"{split}_{metric}": {"mean": auc - (0.01 if metric == "gauc" else 0), "std": 0.002}
                   for split in ("test", "validation") for metric in ("auc", "gauc")}
        summary.update(train_examples_per_second={"mean": 900.0, "std": 5.0}, peak_rss_mb={"mean": 2300.0, "std": 0.0})
        return {"chosen": {"fanouts": [16, 8]} if selection else {}, "seeds": [0, 1, 2], "summary": summary,
                "selection": selection or [{"setting": {}, "validation_auc": auc}]}
    return {"dataset": "synthetic", "variant": variant, "history_length": 1000,
            "settings": {"epochs": 2, "note": ""}, "encoders": {name: row(*spec) for name, spec in encoders.items()},
            "sizes": {"users": 3000, "events": 4_280_390, "train_targets": 167_836, "validation_targets": 23_976,
                      "test_targets": 47_954, "bayes_auc": 0.8589}}


def test_long_history_blocks_are_tabled_with_selection_and_the_gain_over_the_best_baseline(tmp_path):
    selection = [{"setting": {"fanouts": [4, 2]}, "validation_auc": 0.83},
                 {"setting": {"fanouts": [16, 8]}, "validation_auc": 0.841}]
    blocks = [_long_block({"sim_hard": (0.8498,), "din_full": (0.8478,), "hisac": (0.8460, selection)})]
    (tmp_path / "long_history.json").write_text(json.dumps(blocks))
    text = report.long_history_section(tmp_path)
    assert "**synthetic / base, L = 1,000**: 3,000 users, 4,280,390 events; 167,836 train" in text
    assert "Bayes ceiling (the planted preferences) test AUC 0.8589" in text
    assert "| hisac | fanouts 16x8 | 0.8460 ± 0.0020 |" in text
    assert "hisac, validation AUC of every setting (seed 0): fanouts 4x2: 0.8300, fanouts 16x8: 0.8410." in text
    assert "hisac -0.0038 AUC vs sim_hard" in text  # computed from the file, never typed; best by validation
    assert "`long_history.json`" in report.long_history_section(tmp_path / "absent")


def test_a_block_with_an_elbow_codebook_says_which_levels_and_why(tmp_path):
    block = _long_block({"sim_hard": (0.8498,), "hisac": (0.8460,)}, variant="fine_elbow")
    block["encoders"]["hisac"]["chosen"] = {"fanouts": None, "temperature_scale": 0.05}
    block["analysis"] = {"test_targets_with_item_in_window": 0.73, "item_click_rate_test_auc": 0.79,
                         "codebook_by_elbow": {"level_sizes": [128, 2],
                                               "level_1_error_by_size": {"64": 2.961, "128": 0.998, "256": 0.775}}}
    (tmp_path / "long_history.json").write_text(json.dumps([block]))
    text = report.long_history_section(tmp_path)
    assert ("block codebook (128, 2), its level 1 chosen by the elbow of the level-1 quantisation error "
            "(64: 2.96, 128: 1.00, 256: 0.78)") in text
    assert "| hisac | fanouts all, temperature_scale 0.05 |" in text


def test_both_generated_sections_of_the_docs_page_are_replaced(tmp_path):
    (tmp_path / "long_history.json").write_text(json.dumps([_long_block({"din_full": (0.8,)})]))
    page = tmp_path / "benchmarks.md"
    page.write_text(f"intro\n{report.LONG_BEGIN}\n{report.LONG_END}\nmiddle\n{report.BEGIN}\nold\n{report.END}\nend\n")
    report.main(tmp_path, page, not_run={})
    text = page.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith(f"{report.END}\nend\n")
    assert "| din_full | – | 0.8000 ± 0.0020 |" in text and "old" not in text


def test_the_pipeline_table_has_a_row_per_configuration_and_run(tmp_path):
    from benchmarks import pipeline

    old = {"data": "ml-100k", "encoder": "din_full", "peak_rss_mb": 2121.0,
           "runs": [{"name": "from scratch", "seconds": 162.0, "components": {"Trainer": 15.0}}]}
    (tmp_path / "pipeline.json").write_text(json.dumps(old))
    configurations = pipeline.read_report(tmp_path / "pipeline.json")   # an older file stays, as ml-100k
    configurations["ml-1m_hisac_L1000"] = {"arguments": ["--dataset", "ml-1m"], "runs": [
        {"name": "from scratch", "seconds": 900.0, "components": {"CodebookFitter": 60.0, "Trainer": 500.0},
         "bytes_written": {"HistoryExampleGen": 300 * 2**20, "Trainer": 20 * 2**20}, "peak_rss_mb": 3500.0}]}
    text = report.pipeline_table({"configurations": configurations})
    assert "| ml-100k | --encoder din_full | from scratch | 162 | 2,121 | – | 15 | – |" in text
    assert "| ml-1m_hisac_L1000 | --dataset ml-1m | from scratch | 900 | 3,500 | 320 | 500 | 60 |" in text


def test_the_pipeline_benchmark_counts_the_bytes_each_component_wrote(tmp_path):
    from benchmarks import pipeline

    (tmp_path / "Trainer" / "model" / "3").mkdir(parents=True)
    (tmp_path / "Trainer" / "model" / "3" / "saved_model.pb").write_bytes(b"x" * 1000)
    (tmp_path / "HistoryExampleGen").mkdir()
    (tmp_path / "HistoryExampleGen" / "data.gz").write_bytes(b"y" * 10)
    assert pipeline.bytes_by_directory(tmp_path) == {"Trainer": 1000, "HistoryExampleGen": 10}
    assert pipeline.bytes_by_directory(tmp_path / "absent") == {}


def test_the_routing_temperature_is_compared_across_blocks_by_regret():
    def hisac(variant, scales, fanouts=(32, 8)):
        selection = [{"setting": {"fanouts": list(fanouts), "temperature_scale": scale}, "validation_auc": auc}
                     for scale, auc in scales.items()]
        selection.append({"setting": {"fanouts": [4, 2], "temperature_scale": 0.25}, "validation_auc": 0.9})
        block = _long_block({"hisac": (0.84, selection)}, variant=variant)
        best = max(scales, key=scales.get)
        block["encoders"]["hisac"]["chosen"] = {"fanouts": list(fanouts), "temperature_scale": best}
        return block

    blocks = [hisac("fine", {0.01: 0.8507, 0.05: 0.8510, 0.25: 0.8489}),
              hisac("base", {0.05: 0.8400, 0.25: 0.8415, 1.0: 0.8420})]
    by_block, regret = report.temperature_study(blocks)
    assert by_block["synthetic / fine, L = 1,000"] == {0.01: 0.8507, 0.05: 0.8510, 0.25: 0.8489}  # K = 4x2 left out
    assert regret == pytest.approx({0.05: 0.0 + 0.0020, 0.25: 0.0021 + 0.0005})  # the scales both blocks tried
    text = report.temperature_table(blocks)
    assert "| synthetic / base, L = 1,000 | – | 0.8400 | 0.8415 | 0.8420 |" in text
    assert "| total regret (best of the block minus this, summed) | – | 0.0020 | 0.0026 | – |" in text


def test_iat_windows_are_tabled_with_their_speed_against_din_last_n():
    selection = [{"setting": {"window": [64, 64]}, "validation_auc": 0.8423, "train_examples_per_second": 1614.0},
                 {"setting": {"window": [32, 32]}, "validation_auc": 0.8414, "train_examples_per_second": 4168.0}]
    block = _long_block({"iat": (0.8476, selection), "din_last_n": (0.8443, [])})
    block["encoders"]["iat"]["chosen"] = {"window": [64, 64]}
    block["encoders"]["din_last_n"]["summary"]["train_examples_per_second"] = {"mean": 3871.0, "std": 0.0}
    text = report.window_table([block])
    assert "| synthetic / base, L = 1,000 | 64 + 64 (chosen) | 0.8423 | 1,614 | 0.42x |" in text
    assert "| synthetic / base, L = 1,000 | 32 + 32 | 0.8414 | 4,168 | 1.08x |" in text
    assert report.window_table([_long_block({"iat": (0.8476, selection[:1])})]) == ""  # nothing to compare


def test_the_memory_profile_table_has_a_row_per_fresh_process_with_each_phase():
    phase = lambda peak, held: {"peak_mb": peak, "held_after_mb": held, "seconds": 1.0}  # noqa: E731
    run = {"runtime": phase(570.0, 570.0), "data": phase(1400.0, 1350.0), "fit": phase(2900.0, 2800.0),
           "fit_rounds_mb": [2700.0, 2850.0, 2900.0], "predict": phase(3100.0, 3000.0),
           "serving": phase(3200.0, 3150.0), "setting": {}}
    text = report.memory_profile_table({"block": "synthetic_fine_L10000", "steps": 8, "runs": {"hisac oneDNN on": run}})
    assert "block synthetic_fine_L10000" in text and "each round of 8 steps" in text
    assert "| hisac oneDNN on | 570 (570) | 1,400 (1,350) | 2,700 / 2,850 / 2,900 | 3,100 (3,000) | 3,200 (3,150) |" in text
