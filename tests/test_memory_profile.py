"""The memory profile benchmark: one encoder's run, phase by phase, in a fresh process (toy block)."""
import json

from benchmarks import long_history, memory_profile


def test_each_phase_of_a_fresh_run_reports_its_peak_and_what_it_leaves_held(tmp_path):
    report = memory_profile.main(["--blocks", "synthetic_smoke_L100", "--encoders", "hisac", "--steps", "1",
                                  "--rounds", "2", "--output-dir", str(tmp_path)])

    run = report["runs"]["hisac oneDNN on"]
    assert json.loads((tmp_path / "memory_profile.json").read_text()) == report
    assert (tmp_path / "memory_profile.png").stat().st_size > 0
    assert len(run["fit_rounds_mb"]) == 2 and run["fit"]["peak_mb"] == max(run["fit_rounds_mb"])
    # TensorFlow alone holds hundreds of MB; every later phase starts from what the one before held.
    assert run["runtime"]["held_after_mb"] > 200
    for before, phase in zip(memory_profile.PHASES, memory_profile.PHASES[1:]):
        assert run[phase]["peak_mb"] >= run[before]["held_after_mb"] * 0.9, (before, phase)
    first_setting = long_history.settings_of(long_history.ROWS["hisac"], long_history.BLOCKS["synthetic_smoke_L100"],
                                             "hisac")[0]
    assert run["setting"] == json.loads(json.dumps(first_setting))
