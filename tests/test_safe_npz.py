"""Keypoint and Human3.6M archives are read without running code from them."""

import io
import pickle
import re
import zipfile

import numpy as np
import pytest

from posedeploy import safe_npz
from posedeploy.data.h36m import load_keypoints_2d
from posedeploy.errors import DataError, InputError
from posedeploy.keypoint_io import read_keypoints
from posedeploy.safe_npz import load_npz

MARKER = "/tmp/posedeploy-pwned"


class Payload:
    """Unpickling this runs a shell command (what a crafted archive would do)."""

    def __reduce__(self):
        import os

        return (os.system, (f"touch {MARKER}",))


def _npz_with_member(path, members: dict):
    """An .npz whose members are raw .npy bytes (so a hostile pickle can be planted)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, payload in members.items():
            z.writestr(f"{name}.npy", payload)
    return path


def _object_npy(obj) -> bytes:
    """The .npy bytes numpy writes for a 0-d object array, with ``obj`` pickled inside."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(obj, dtype=object), allow_pickle=True)
    return buf.getvalue()


def _hostile_npy() -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    return header.getvalue() + pickle.dumps(Payload(), protocol=3)


@pytest.fixture(autouse=True)
def no_marker():
    import os

    if os.path.exists(MARKER):
        os.remove(MARKER)
    yield
    assert not os.path.exists(MARKER), "a file's pickle ran code"


def test_videopose3d_dicts_load(tmp_path):
    videos = {"S1": {"Walking 1": [np.random.default_rng(0).normal(size=(5, 17, 2)).astype(np.float32)]}}
    meta = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6], [1, 2, 3]],
        "scale": np.float64(2),
    }
    np.savez(tmp_path / "k.npz", positions_2d=np.array(videos, dtype=object), metadata=np.array(meta, dtype=object))
    loaded = load_npz(tmp_path / "k.npz")
    np.testing.assert_array_equal(loaded["positions_2d"].item()["S1"]["Walking 1"][0], videos["S1"]["Walking 1"][0])
    assert loaded["metadata"].item() == meta
    (seq,) = read_keypoints(tmp_path / "k.npz")
    assert seq.keypoints.shape == (5, 17, 2)


@pytest.mark.parametrize("layout", ["payload_as_positions", "payload_beside_keypoints", "payload_as_metadata"])
def test_hostile_pickles_are_refused_without_running(tmp_path, layout):
    plain = io.BytesIO()
    np.lib.format.write_array(plain, np.zeros((3, 17, 2), np.float32))
    members = {
        "payload_as_positions": {"positions_2d": _hostile_npy()},
        "payload_beside_keypoints": {"keypoints": plain.getvalue(), "positions_2d": _hostile_npy()},
        "payload_as_metadata": {
            "positions_2d": _object_npy({"S1": {"a": [np.zeros((2, 17, 2))]}}),
            "metadata": _hostile_npy(),
        },
    }[layout]
    path = _npz_with_member(tmp_path / "evil.npz", members)
    with pytest.raises(
        InputError, match="refusing to load 'posix.system'|refusing to load 'os.system'|more than numpy"
    ):
        read_keypoints(path)
    with pytest.raises(DataError, match="more than numpy"):
        load_keypoints_2d(path)


def test_a_pickled_non_array_and_garbage_are_refused(tmp_path):
    not_array = np.lib.format.write_array_header_1_0
    header = io.BytesIO()
    not_array(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    path = _npz_with_member(
        tmp_path / "odd.npz", {"positions_2d": header.getvalue() + pickle.dumps({"a": 1}, protocol=3)}
    )
    with pytest.raises(InputError, match="not an array"):
        load_npz(path)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError, match="not a valid npz"):
        load_npz(tmp_path / "junk.npz")


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '|O', 'fortran_order': False, 'shape': (), |",  # numpy's tokenizer fails: EOF in a statement
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ]}",  # the parser fails: SyntaxError
    ],
)
def test_an_unparsable_array_header_is_refused(tmp_path, header):
    header = header.ljust(63) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + bytes(8)
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("positions_2d.npy", member)
    with pytest.raises(InputError, match="not a valid npz archive .*unparsable array header"):
        load_npz(path)
    (tmp_path / "bad.npy").write_bytes(member)
    with pytest.raises(InputError, match="not a valid .npy array .*unparsable array header"):
        safe_npz.load_npy(tmp_path / "bad.npy")


def test_declared_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 17, 2)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + b"\0" * 64)  # a 200-byte file claiming 136 TiB
    with pytest.raises(
        InputError,
        match="declares a 1099511627776x17x2 float32 array (\\(136.0 TiB|.* the limit is 1.0 GiB)",
    ):
        read_keypoints(tmp_path / "huge.npy")
    # An archive member whose header promises more than it holds.
    small = io.BytesIO()
    np.lib.format.write_array_header_1_0(small, {"descr": "<f4", "fortran_order": False, "shape": (1000, 17, 2)})
    path = _npz_with_member(tmp_path / "forged.npz", {"keypoints": small.getvalue() + b"\0" * 100})
    with pytest.raises(InputError, match="declares 136,000 bytes of array data but holds 100"):
        read_keypoints(path)
    # A small archive that would inflate past the limit (deflated zeros) is refused from its header.
    monkeypatch.setattr(safe_npz, "MAX_ARRAY_BYTES", 8 << 20)
    np.savez_compressed(tmp_path / "bomb.npz", keypoints=np.zeros((40_000, 17, 2), np.float64))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000  # 10.9 MB of zeros
    with pytest.raises(InputError, match="declares a 40000x17x2 float64 array \\(10.4 MiB\\); the limit is 8.0 MiB"):
        read_keypoints(tmp_path / "bomb.npz")


@pytest.mark.parametrize("dtype", ["complex64", "datetime64[s]", "timedelta64[s]", "bool"])
def test_keypoint_files_of_non_real_dtypes_are_refused(tmp_path, dtype):
    np.save(tmp_path / "k.npy", np.zeros((3, 17, 2), dtype=dtype))
    with pytest.raises(InputError, match=re.escape(f"keypoints must be real numbers, got dtype {np.dtype(dtype)}")):
        read_keypoints(tmp_path / "k.npy")
