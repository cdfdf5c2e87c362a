"""Atomic writes: complete files under their final names, with ordinary permissions."""

import pytest


def test_written_files_honour_the_umask(tmp_path):
    import os

    from posedeploy.files import atomic_path, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # shareable, not private
        os.umask(0o077)
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"1")
        assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_json_reports_are_strict(tmp_path):
    import json

    from posedeploy.files import write_json

    write_json(tmp_path / "r.json", {"r": float("nan"), "x": [1.5, float("inf")], "n": {"ok": 2}})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"r": None, "x": [1.5, None], "n": {"ok": 2}}


def test_a_full_disk_is_a_one_line_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno
    import os as os_module

    from posedeploy import files
    from posedeploy.errors import WriteError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os_module.strerror(errno.ENOSPC), str(tmp_path / "r.json"))

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(WriteError, match="cannot write .*r.json: No space left on device"):
        files.write_json(tmp_path / "r.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []
