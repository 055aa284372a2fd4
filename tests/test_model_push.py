"""Atomic, versioned push: a reader never sees a half-written version; a failed push leaves nothing."""
import threading

import pytest
import tensorflow as tf

from tfrs_seqcompress import model_push


def _fake_model(directory, files: int = 200) -> None:
    """A directory shaped like a SavedModel: many variable shards, then saved_model.pb."""
    (directory / "variables").mkdir(parents=True)
    for index in range(files):
        (directory / "variables" / f"variables.data-{index:05d}").write_bytes(b"x" * 20_000)
    (directory / "assets.extra").mkdir()
    (directory / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"warmup")
    (directory / "saved_model.pb").write_bytes(b"graph")


def _files(directory) -> set:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


def test_a_reader_only_ever_sees_complete_versions(tmp_path):
    source, base = tmp_path / "model", tmp_path / "saved_models" / "ranker"
    _fake_model(source)
    expected = _files(source)
    seen_incomplete, pushed = [], []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for version in (base.iterdir() if base.exists() else []):
                if version.name.isdigit() and _files(version) != expected:
                    seen_incomplete.append(version.name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            pushed.append(model_push.push_atomically(str(source), str(base)))
    finally:
        stop.set()
        watcher.join()
    assert seen_incomplete == []
    versions = model_push.model_versions(str(base))
    assert len(versions) == 3 and versions == sorted(set(versions))          # three distinct, growing versions
    assert pushed == [str(base / str(version)) for version in versions]
    assert sorted(path.name for path in base.iterdir()) == sorted(map(str, versions))   # no staging left


def test_versions_never_go_backwards(tmp_path):
    (tmp_path / "2000000000").mkdir()
    assert model_push.next_version(str(tmp_path), now=1_700_000_000) == 2000000001
    assert model_push.next_version(str(tmp_path / "missing"), now=1_700_000_000) == 1_700_000_000


def test_a_failed_push_leaves_no_version_and_no_staging(tmp_path, monkeypatch):
    source, base = tmp_path / "model", tmp_path / "saved_models" / "ranker"
    _fake_model(source, files=5)
    (base / "7").mkdir(parents=True)
    copies = []
    real_copy = tf.io.gfile.copy

    def copy_then_fail(*args, **kwargs):
        copies.append(args[0])
        if len(copies) == 3:
            raise OSError("disk full")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(tf.io.gfile, "copy", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        model_push.push_atomically(str(source), str(base))
    assert sorted(path.name for path in base.iterdir()) == ["7"]


def test_a_directory_without_a_saved_model_is_refused(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(FileNotFoundError, match="has no saved_model.pb"):
        model_push.push_atomically(str(tmp_path / "model"), str(tmp_path / "base"))
    assert not (tmp_path / "base").exists()


def test_the_same_model_blessed_again_is_not_pushed_twice(tmp_path):
    source, other, base = tmp_path / "model", tmp_path / "other", tmp_path / "saved_models" / "ranker"
    _fake_model(source, files=3)
    _fake_model(other, files=3)
    (source / "fingerprint.pb").write_bytes(b"model A")
    (other / "fingerprint.pb").write_bytes(b"model B")
    first = model_push.push_atomically(str(source), str(base))
    assert model_push.push_atomically(str(source), str(base)) == first          # already the newest version
    second = model_push.push_atomically(str(other), str(base))
    assert second != first
    third = model_push.push_atomically(str(source), str(base))                  # A again after B: a new version
    assert len(model_push.model_versions(str(base))) == 3 and third not in (first, second)
