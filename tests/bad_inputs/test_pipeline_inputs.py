"""Bad-input corpus, pipeline inputs: the main job's command line and a user's log files.

Every case is refused before any pipeline step runs (exit code 2, one ``ERROR:`` line naming the
file, column or flag); the pipeline root, the ML Metadata store and the served models a previous
run left are byte-identical afterwards, and nothing new was written."""
import pytest

from pipelines import local_runner
from tests import helpers

HEADER = "user_id,item_id,timestamp,label,category"
GOOD_ROWS = "1,5,100,1,2\n1,6,200,0,3\n2,5,150,1,2\n"

# (case, extra arguments, files to write: name -> text, what the ERROR line must say)
CASES = [
    ("log_does_not_exist", ["--data", "{dir}/nope.csv"], {}, "nope.csv does not exist"),
    ("log_empty", ["--data", "{dir}/log.csv"], {"log.csv": ""}, "is empty: expected a header row"),
    ("log_header_only", ["--data", "{dir}/log.csv"], {"log.csv": HEADER + "\n"}, "has a header but no events"),
    ("log_missing_column", ["--data", "{dir}/log.csv"], {"log.csv": "user_id,item_id,label,category\n1,5,1,2\n"},
     "missing column(s) ['timestamp']"),
    ("log_label_not_binary", ["--data", "{dir}/log.csv"], {"log.csv": f"{HEADER}\n1,5,100,3,2\n"},
     "'label' must be 0 or 1"),
    ("log_text_in_id_column", ["--data", "{dir}/log.csv"], {"log.csv": f"{HEADER}\n1,x,100,1,2\n"},
     "line 2, column 'item_id': 'x' is not an exact integer"),
    ("log_negative_user", ["--data", "{dir}/log.csv"], {"log.csv": f"{HEADER}\n-4,5,100,1,2\n"},
     "'user_id' has negative IDs"),
    ("item_table_lacks_items", ["--data", "{dir}/log.csv", "--items", "{dir}/items.csv"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}", "items.csv": "item_id,category\n5,1\n"},
     "1 logged item_id(s) are not in the item table (first: [6])"),
    ("context_feature_not_in_log", ["--data", "{dir}/log.csv", "--context-features", "device"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}"}, "context_features ['device'] are not event_features"),
    ("history_length_zero", ["--data", "{dir}/log.csv", "--history-length", "0"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}"}, "--history-length must be a positive integer, got 0"),
    ("history_length_beyond_memory", ["--history-length", "10000000"], {}, "--history-length 10000000 is above"),
    ("model_name_climbs_out", ["--model-name", "../../x"], {}, "--model-name '../../x' must be one name"),
    ("model_name_absolute", ["--model-name", "/tmp/x"], {}, "--model-name '/tmp/x' must be one name"),
    ("model_name_empty", ["--model-name", ""], {}, "--model-name '' must be one name"),
    ("model_name_dot_dot", ["--model-name", ".."], {}, "--model-name '..' must be one name"),
    ("batch_size_zero", ["--batch-size", "0"], {}, "--batch-size must be a positive integer, got 0"),
    ("search_window_longer_than_L", ["--encoder", "iat", "--history-length", "100", "--search-window", "64,64"], {},
     "--search-window '64,64' must be RECENT,RETRIEVED: two integers >= 0, not both 0, adding up to at most "
     "--history-length (100)"),
    ("search_window_one_number", ["--encoder", "iat", "--search-window", "64"], {}, "must be RECENT,RETRIEVED"),
    ("search_window_for_agents", ["--encoder", "hisac", "--search-window", "10,10"], {},
     "hisac compresses the whole last --history-length events into agents and reads no window"),
    ("targets_per_user_negative", ["--targets-per-user", "-2"], {}, "--targets-per-user must be >= 0"),
    ("epochs_negative", ["--epochs", "-1"], {}, "--epochs must be a positive integer, got -1"),
    ("token_dim_zero", ["--encoder", "iat", "--token-dim", "0"], {}, "--token-dim must be a positive integer"),
    ("min_eval_auc_nan", ["--min-eval-auc", "nan"], {}, "--min-eval-auc must be a finite number, got nan"),
    ("min_eval_gauc_above_one", ["--min-eval-gauc", "1.5"], {}, "--min-eval-gauc must be between 0 and 1"),
    ("max_drop_inf", ["--max-drop-vs-baseline", "inf"], {}, "--max-drop-vs-baseline must be a finite number"),
    ("codebook_larger_than_the_catalogue", ["--data", "{dir}/log.csv", "--encoder", "hisac", "--codebook-levels", "4,2",
                                            "--fanouts", "2,1"], {"log.csv": f"{HEADER}\n{GOOD_ROWS}"},
     "the first level has more codes (4) than the log has items (2)"),
    ("item_vectors_for_an_encoder_without_codebook", ["--data", "{dir}/log.csv", "--encoder", "din_full",
                                                      "--item-vectors", "{dir}/vectors.csv"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}", "vectors.csv": "item_id,v0\n5,1.0\n"},
     "--item-vectors feeds the codebook of the encoders that read semantic IDs"),
    ("item_vectors_malformed", ["--data", "{dir}/log.csv", "--encoder", "hisac", "--codebook-levels", "1,1",
                                "--fanouts", "1,1", "--item-vectors", "{dir}/vectors.csv"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}", "vectors.csv": "item_id,v0,v1\n5,1.0\n"},
     "vectors.csv line 2: expected 3 fields"),
    ("item_vectors_of_other_items", ["--data", "{dir}/log.csv", "--encoder", "hisac", "--codebook-levels", "2,1",
                                     "--fanouts", "1,1", "--item-vectors", "{dir}/vectors.csv"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}", "vectors.csv": "item_id,v0\n5,1.0\n70,2.0\n"},
     "1 of the log's items have a vector, fewer than the codebook's first level (2 codes); 1 rows are of items"),
    ("target_column_not_in_log", ["--data", "{dir}/log.csv", "--target-column", "is_target"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}"}, "--target-column 'is_target' is not a column of the log"),
    ("target_column_without_data", ["--target-column", "is_target"], {}, "--target-column needs --data"),
    ("raw_ids_without_data", ["--raw-ids", "item_id"], {}, "--raw-ids needs --data"),
    ("string_ids_not_named_raw", ["--data", "{dir}/log.csv"], {"log.csv": f"{HEADER}\n1,sku-5,100,1,2\n"},
     "column 'item_id': 'sku-5' is not an exact integer (expected ASCII digits, no decimals, exponents or "
     "infinities; nothing is rounded). If column 'item_id' holds raw (string) IDs, name it in raw_id_columns "
     "(the pipeline's --raw-ids)."),
    ("raw_timestamp", ["--data", "{dir}/log.csv", "--raw-ids", "item_id,timestamp"],
     {"log.csv": f"{HEADER}\n{GOOD_ROWS}"}, "column 'timestamp' cannot hold raw IDs"),
    ("items_without_data", ["--items", "{dir}/items.csv"], {"items.csv": "item_id,category\n5,1\n"},
     "--items needs --data"),
    ("unknown_encoder", ["--encoder", "transformer_xl"], {}, "unknown --encoder 'transformer_xl'"),
    ("fanouts_for_other_levels", ["--encoder", "hisac", "--codebook-levels", "16,8", "--fanouts", "4"], {},
     "--fanouts 4 must give one fan-out per codebook level (16,8)"),
    ("fanout_above_level_size", ["--encoder", "hisac_iat", "--codebook-levels", "4,2", "--fanouts", "8,2"], {},
     "--fanouts 8,2 must give one fan-out per codebook level"),
    ("temperature_scale_zero", ["--encoder", "hisac", "--temperature-scale", "0"], {},
     "--temperature-scale must be a positive number, got 0.0"),
    ("temperature_scale_nan", ["--encoder", "hisac", "--temperature-scale", "nan"], {},
     "--temperature-scale must be a positive number, got nan"),
    ("short_term_longer_than_L", ["--encoder", "hisac", "--history-length", "50", "--short-term-last-n", "60"], {},
     "--short-term-last-n must be between 0 (no short-term base) and --history-length (50), got 60"),
    ("short_term_negative", ["--short-term-last-n", "-1"], {}, "--short-term-last-n must be between 0"),
    ("short_term_beyond_the_recent_window", ["--encoder", "iat", "--history-length", "200", "--search-window", "32,64",
                                             "--short-term-last-n", "50"], {},
     "--short-term-last-n 50 reads the last 50 events of each history, but --search-window 32,64 keeps only the 32"),
]


@pytest.fixture
def earlier_run(tmp_path):
    """What an earlier run left: a pipeline root, its metadata store and a served model version."""
    root, metadata, served = tmp_path / "pipeline_root", tmp_path / "metadata" / "metadata.db", tmp_path / "served"
    (root / "data" / "ml-100k").mkdir(parents=True)
    (root / "data" / "ml-100k" / "log.csv").write_text(f"{HEADER}\n{GOOD_ROWS}")
    metadata.parent.mkdir()
    metadata.write_bytes(b"SQLite format 3\x00 (an earlier run's store)")
    (served / "1700000000" / "variables").mkdir(parents=True)
    (served / "1700000000" / "saved_model.pb").write_bytes(b"an earlier pushed model")
    flags = ["--pipeline-root", str(root), "--metadata-path", str(metadata), "--serving-model-dir", str(served)]
    return tmp_path, flags


@pytest.mark.parametrize("case, arguments, files, message", CASES, ids=[case[0] for case in CASES])
def test_bad_pipeline_input_is_refused_before_anything_runs(earlier_run, capsys, case, arguments, files, message):
    workspace, flags = earlier_run
    inputs = workspace / "inputs"
    inputs.mkdir()
    for name, text in files.items():
        (inputs / name).write_text(text)
    before = helpers.file_bytes(workspace)
    assert local_runner.main([argument.format(dir=inputs) for argument in arguments] + flags) == 2
    error = capsys.readouterr().err
    assert error.startswith("ERROR: ") and message in error, error
    assert helpers.file_bytes(workspace) == before  # nothing changed, nothing added


@pytest.mark.parametrize("name", ["ranker", "ctr-v2.1", "a_b"])
def test_a_safe_model_name_is_served_from_inside_saved_models(name):
    served = local_runner.serving_directory(local_runner.parse_args(["--model-name", name]))
    assert served == str((local_runner.configs.REPO_ROOT / "saved_models" / name).resolve())
