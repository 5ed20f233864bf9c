"""Tests of tune_sd.engine.data: the default points, every file format, every split source, refusals."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from tune_sd.engine.data import DATA_SUFFIXES, SPLITS, InputData, load_data
from tune_sd.errors import DataError, UserError


def _check_partition(data: InputData, sizes=None):
    n = data.n_points
    parts = [data.splits[s] for s in SPLITS]
    for p in parts:
        assert p.dtype == np.int64
        assert p.ndim == 1
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx), "splits overlap or repeat"
    assert allidx.min() >= 0 and allidx.max() < n
    if sizes is not None:
        assert tuple(len(p) for p in parts) == tuple(sizes)


# ------------------------------------------------------------------------------------------
# Default data
# ------------------------------------------------------------------------------------------


def test_default_shape_and_splits():
    d = load_data()
    assert d.var == "X10"
    assert d.X.shape == (1000, 2)
    assert d.X.dtype == torch.float32
    assert d.source == "default (seed 0)"
    _check_partition(d, (700, 200, 100))
    assert len(np.concatenate([d.splits[s] for s in SPLITS])) == 1000  # covers every point
    assert d.points("train", [0]).shape == (700, 1)
    assert d.points("val").shape == (200, 2)
    assert d.points("test", [1, 0]).shape == (100, 2)
    # the rows are the ones the split names
    idx = d.splits["train"]
    assert torch.equal(d.points("train", [1]), d.X[torch.as_tensor(idx), 1:2])


def test_default_is_standard_normal():
    x = load_data().X
    assert abs(float(x.mean())) < 0.1
    assert abs(float(x.std()) - 1.0) < 0.1
    assert abs(float(x[:, 0].mean())) < 0.15 and abs(float(x[:, 1].mean())) < 0.15
    assert abs(float(np.corrcoef(x.numpy().T)[0, 1])) < 0.15


def test_default_determinism():
    a, b = load_data(seed=0), load_data(seed=0)
    assert torch.equal(a.X, b.X)
    for s in SPLITS:
        assert np.array_equal(a.splits[s], b.splits[s])
    c = load_data(seed=1)
    assert not torch.equal(a.X, c.X)
    assert not np.array_equal(a.splits["train"], c.splits["train"])
    assert c.source == "default (seed 1)"
    # matches an explicit torch.Generator draw (reproducible across machines)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(a.X, torch.randn(1000, 2, generator=g, dtype=torch.float32))


def test_default_custom_sizes():
    d = load_data(n_points=50, n_features=3, split_sizes=(20, 10, 5), var="X1")
    assert d.X.shape == (50, 3) and d.var == "X1"
    _check_partition(d, (20, 10, 5))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(split_sizes=(700, 200, 200)), ["data.split_sizes", "1000"]),
        (dict(split_sizes=(0, 200, 100)), ["data.split_sizes", "train"]),
        (dict(split_sizes=(10, -1, 1)), ["data.split_sizes", "val"]),
        (dict(split_sizes=(10, 1)), ["data.split_sizes"]),
        (dict(n_points=0), ["data.n_points"]),
        (dict(n_features=0), ["data.n_features"]),
        (dict(n_points=2.5), ["data.n_points"]),
        (dict(var="X 10"), ["data.var"]),
        (dict(var="../X10"), ["data.var"]),
    ],
)
def test_default_refusals(kwargs, words):
    with pytest.raises(DataError) as e:
        load_data(**kwargs)
    for w in words:
        assert w in str(e.value)


def test_points_refusals():
    d = load_data()
    with pytest.raises(DataError, match=r"data.split.*'bogus'.*train, val, test"):
        d.points("bogus")
    with pytest.raises(DataError, match=r"data.features: column 3 out of range \(the data has 2 columns"):
        d.points("train", [0, 3])
    with pytest.raises(DataError, match="data.features"):
        d.points("train", [-1])
    with pytest.raises(DataError, match="data.features"):
        d.points("train", [])
    with pytest.raises(DataError, match="data.features"):
        d.points("train", ["0"])
    assert issubclass(DataError, UserError)


def test_points_device_dtype():
    d = load_data(n_points=10, split_sizes=(5, 3, 2))
    p = d.points("train", [0], dtype=torch.float64, device="cpu")
    assert p.dtype == torch.float64 and p.shape == (5, 1)
    p[0, 0] = 1e6  # a copy: X is untouched
    assert float(d.X.abs().max()) < 1e6
    assert d.points("train", 1).shape == (5, 1)


# ------------------------------------------------------------------------------------------
# User files: formats
# ------------------------------------------------------------------------------------------


def _arr(n=20, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_npy(tmp_path):
    a = _arr()
    f = tmp_path / "x.npy"
    np.save(f, a)
    d = load_data(str(f))
    assert d.X.dtype == torch.float32 and d.X.shape == (20, 3)
    assert np.allclose(d.X.numpy(), a.astype(np.float32))
    assert d.source == str(f)
    _check_partition(d, (14, 4, 2))  # 70/20/10 of 20
    # seeded: same seed same split, other seed another
    assert np.array_equal(load_data(f).splits["train"], d.splits["train"])
    assert not np.array_equal(load_data(f, seed=3).splits["train"], d.splits["train"])


def test_npy_one_dim_and_int(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.arange(10))
    d = load_data(f)
    assert d.X.shape == (10, 1) and d.X.dtype == torch.float32
    _check_partition(d, (7, 2, 1))


def test_tiny_file_split(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.ones((1, 2)))
    d = load_data(f)
    _check_partition(d, (1, 0, 0))


def test_npz_without_split(tmp_path):
    f = tmp_path / "d.npz"
    a = _arr(30, 2)
    np.savez(f, points=a)  # the only array
    d = load_data(f)
    assert d.X.shape == (30, 2)
    _check_partition(d, (21, 6, 3))


def test_npz_var_and_key(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, X10=_arr(10, 2), other=_arr(12, 4))
    assert load_data(f).X.shape == (10, 2)  # by var
    assert load_data(f, key="other").X.shape == (12, 4)
    with pytest.raises(DataError, match=r"data.key.*'missing'.*X10.*other"):
        load_data(f, key="missing")
    g = tmp_path / "e.npz"
    np.savez(g, a=_arr(10, 2), b=_arr(10, 2))
    with pytest.raises(DataError, match=r"data.key.*e\.npz.*several arrays"):
        load_data(g)


def test_npz_with_split(tmp_path):
    f = tmp_path / "d.npz"
    a = _arr(10, 2)
    np.savez(f, X10=a, train=np.array([0, 1, 2, 3, 4]), val=np.array([5, 6]), test=np.array([9]))
    d = load_data(f)
    assert d.splits["train"].tolist() == [0, 1, 2, 3, 4]
    assert d.splits["val"].tolist() == [5, 6]
    assert d.splits["test"].tolist() == [9]
    assert np.allclose(d.points("test").numpy(), a[[9]].astype(np.float32))
    # boolean masks work too; a missing val/test is empty
    g = tmp_path / "m.npz"
    mask = np.zeros(10, bool)
    mask[[1, 3]] = True
    np.savez(g, X10=a, train=mask)
    d = load_data(g)
    assert d.splits["train"].tolist() == [1, 3] and len(d.splits["val"]) == 0
    # out of range index names the file and the split
    h = tmp_path / "bad.npz"
    np.savez(h, X10=a, train=np.array([0, 10]))
    with pytest.raises(DataError, match=r"bad\.npz.*'train'.*out of range"):
        load_data(h)


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    f = tmp_path / "d.parquet"
    df = pd.DataFrame({"b": np.arange(8, dtype=np.int64), "a": np.linspace(0, 1, 8)})
    df.to_parquet(f)
    d = load_data(f)
    assert d.X.shape == (8, 2)
    assert d.columns == ["b", "a"]  # column order kept
    assert np.allclose(d.X[:, 0].numpy(), np.arange(8))
    g = tmp_path / "s.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "name": ["p", "q"], "tag": ["u", "v"]}).to_parquet(g)
    with pytest.raises(DataError, match=r"s\.parquet.*non-numeric.*'name', 'tag'"):
        load_data(g)
    h = tmp_path / "na.parquet"
    pd.DataFrame({"x": [1.0, None, 3.0]}).to_parquet(h)
    with pytest.raises(DataError, match=r"na\.parquet.*1 non-finite.*row 1"):
        load_data(h)


def test_text_gz_file_and_folder_with_plain_split(tmp_path):
    a = _arr(10, 2)
    folder = tmp_path / "data_1k"
    folder.mkdir()
    np.savetxt(folder / "X10.gz", a)
    d = load_data(folder / "X10.gz")
    assert d.X.shape == (10, 2)
    assert np.allclose(d.X.numpy(), a.astype(np.float32), atol=1e-6)
    d2 = load_data(folder)  # the folder: <var>.gz
    assert torch.equal(d.X, d2.X)
    assert d2.source == str(folder / "X10.gz")
    _check_partition(d2, (7, 2, 1))
    # plain split index files
    splits = tmp_path / "split"
    splits.mkdir()
    (splits / "train.txt").write_text("0\n1\n2\n3\n4\n5\n")
    (splits / "val.txt").write_text("6 7\n")
    np.save(splits / "test.npy", np.array([8, 9]))
    d3 = load_data(folder, split_path=splits)
    assert d3.splits["train"].tolist() == [0, 1, 2, 3, 4, 5]
    assert d3.splits["val"].tolist() == [6, 7]
    assert d3.splits["test"].tolist() == [8, 9]
    assert d3.points("val", [1]).shape == (2, 1)
    # savetxt-style floats are read as indices too
    np.savetxt(splits / "val.txt", np.array([6, 7]))
    assert load_data(folder, split_path=splits).splits["val"].tolist() == [6, 7]


def test_text_one_row_and_one_column(tmp_path):
    np.savetxt(tmp_path / "X10.gz", np.array([[1.0, 2.0, 3.0]]))
    assert load_data(tmp_path).X.shape == (1, 3)
    np.savetxt(tmp_path / "X10.gz", np.arange(5.0))
    assert load_data(tmp_path).X.shape == (5, 1)
    np.savetxt(tmp_path / "p.txt", _arr(4, 2))
    assert load_data(tmp_path / "p.txt").X.shape == (4, 2)


def test_split_json_yaml_npz(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, _arr(10, 2))
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"train": [0, 1, 2], "val": [3], "test": [4, 5]}))
    d = load_data(f, split_path=j)
    assert d.splits["train"].tolist() == [0, 1, 2] and d.splits["test"].tolist() == [4, 5]
    assert d.split_source == str(j)
    y = tmp_path / "s.yaml"
    y.write_text("train: [9, 8]\nval: [7]\ntest: []\n")
    d = load_data(f, split_path=y)
    assert d.splits["train"].tolist() == [9, 8] and len(d.splits["test"]) == 0
    z = tmp_path / "s.npz"
    np.savez(z, train=np.array([1, 2]), val=np.array([3]), test=np.array([4]))
    assert load_data(f, split_path=z).splits["val"].tolist() == [3]
    # a boolean mask list of length N
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"train": [True] * 5 + [False] * 5}))
    assert load_data(f, split_path=m).splits["train"].tolist() == [0, 1, 2, 3, 4]
    # split_path overrides the npz's own split arrays
    g = tmp_path / "d.npz"
    np.savez(g, X10=_arr(10, 2), train=np.array([0]))
    assert load_data(g, split_path=j).splits["train"].tolist() == [0, 1, 2]
    # and works for the default data too
    d = load_data(n_points=10, split_sizes=(5, 3, 2), split_path=j)
    assert d.splits["train"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "content, pattern",
    [
        ({"train": [0, 10]}, r"s\.json.*'train'.*out of range"),
        ({"train": [0, -1]}, r"s\.json.*'train'.*out of range"),
        ({"train": [0, 1.5]}, r"s\.json.*'train'.*integer"),
        ({"train": [0], "val": ["a"]}, r"s\.json.*'val'.*integer"),
        ({"train": [0], "valid": [1]}, r"s\.json.*unknown split.*'valid'"),
        ({"val": [1]}, r"s\.json.*'train'"),
        ({"train": []}, r"s\.json.*'train' split is empty"),
        ({"train": [True, False]}, r"s\.json.*'train'.*boolean mask.*10"),
        ({"train": [1, 1, 2]}, r"s\.json.*'train'.*more than once"),
        ([0, 1, 2], r"s\.json.*must map"),
    ],
)
def test_split_refusals(tmp_path, content, pattern):
    f = tmp_path / "x.npy"
    np.save(f, _arr(10, 2))
    j = tmp_path / "s.json"
    j.write_text(json.dumps(content))
    with pytest.raises(DataError, match=pattern):
        load_data(f, split_path=j)


def test_split_text_refusals(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, _arr(10, 2))
    s = tmp_path / "split"
    s.mkdir()
    with pytest.raises(DataError, match=r"data.split_path.*split.*no split files"):
        load_data(f, split_path=s)
    (s / "train.txt").write_text("0 1 x\n")
    with pytest.raises(DataError, match=r"train\.txt.*'x'.*not an integer"):
        load_data(f, split_path=s)
    (s / "train.txt").write_text("0 1 12\n")
    with pytest.raises(DataError, match=r"train\.txt.*'train'.*out of range"):
        load_data(f, split_path=s)
    with pytest.raises(DataError, match=r"data.split_path: file '.*nope' not found"):
        load_data(f, split_path=tmp_path / "nope")
    (tmp_path / "s.csv").write_text("0,1\n")
    with pytest.raises(DataError, match=r"data.split_path.*s\.csv.*supported"):
        load_data(f, split_path=tmp_path / "s.csv")


# ------------------------------------------------------------------------------------------
# The original project's pickled mask
# ------------------------------------------------------------------------------------------


def _write_legacy(folder, n=10):
    a = _arr(n, 2)
    np.savetxt(folder / "X10.gz", a)
    train = np.zeros(n, bool)
    train[:6] = True
    val = np.zeros(n, bool)
    val[6:8] = True
    test = np.zeros(n, bool)
    test[8:] = True
    with open(folder / "X10.mask", "wb") as fh:
        pickle.dump({"train": train, "val": val, "test": test}, fh)
    return a


def test_pickle_mask_refused_without_opt_in(tmp_path):
    _write_legacy(tmp_path)
    with pytest.raises(DataError) as e:
        load_data(tmp_path)
    msg = str(e.value)
    assert "--allow-pickle" in msg and "X10.mask" in msg and "pickle" in msg
    assert "plain index files" in msg
    # the same via split_path
    with pytest.raises(DataError, match="--allow-pickle"):
        load_data(tmp_path / "X10.gz", split_path=tmp_path / "X10.mask")


def test_pickle_mask_read_with_opt_in(tmp_path):
    _write_legacy(tmp_path)
    d = load_data(tmp_path, allow_pickle=True)
    assert d.splits["train"].tolist() == [0, 1, 2, 3, 4, 5]
    assert d.splits["val"].tolist() == [6, 7]
    assert d.splits["test"].tolist() == [8, 9]
    assert d.split_source == str(tmp_path / "X10.mask")
    d = load_data(tmp_path / "X10.gz", split_path=tmp_path / "X10.mask", allow_pickle=True)
    assert d.splits["test"].tolist() == [8, 9]


def test_pickle_mask_not_needed_with_plain_split(tmp_path):
    _write_legacy(tmp_path)
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"train": [0, 1], "val": [2], "test": [3]}))
    assert load_data(tmp_path, split_path=j).splits["train"].tolist() == [0, 1]


def test_pickle_mask_with_bad_content(tmp_path):
    _write_legacy(tmp_path)
    with open(tmp_path / "X10.mask", "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    with pytest.raises(DataError, match=r"X10\.mask.*expected a dict"):
        load_data(tmp_path, allow_pickle=True)


# ------------------------------------------------------------------------------------------
# Refusals of the points
# ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    p = tmp_path / "x.npy"
    with pytest.raises(DataError, match=r"data.path: file '.*x\.npy' not found"):
        load_data(p)
    with pytest.raises(DataError, match=r"data.path: folder '.*' holds no data file.*X10\.gz"):
        load_data(tmp_path)
    with pytest.raises(DataError, match="data.path"):
        load_data("")


def test_unknown_extension(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("1,2\n")
    with pytest.raises(DataError) as e:
        load_data(p)
    msg = str(e.value)
    assert "x.csv" in msg and "data.path" in msg
    for suf in DATA_SUFFIXES:
        assert suf in msg


def test_non_finite(tmp_path):
    a = _arr(10, 2)
    a[3, 1] = np.nan
    a[7, 0] = np.inf
    f = tmp_path / "x.npy"
    np.save(f, a)
    with pytest.raises(DataError, match=r"x\.npy.*2 non-finite.*row 3, column 1"):
        load_data(f)
    np.savetxt(tmp_path / "X10.gz", a)
    with pytest.raises(DataError, match=r"X10\.gz.*2 non-finite.*row 3"):
        load_data(tmp_path)
    big = np.full((3, 1), 1e300)
    np.save(f, big)
    with pytest.raises(DataError, match=r"x\.npy.*non-finite.*float32"):
        load_data(f)


def test_empty_and_shape(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((0, 2)))
    with pytest.raises(DataError, match=r"x\.npy.*empty"):
        load_data(f)
    np.save(f, np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=r"x\.npy.*shape \(2, 3, 4\).*2-D"):
        load_data(f)
    np.save(f, np.float64(3.0))
    with pytest.raises(DataError, match=r"x\.npy.*2-D"):
        load_data(f)
    (tmp_path / "X10.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"X10\.gz"):
        load_data(tmp_path)
    t = tmp_path / "e.txt"
    t.write_text("")
    with pytest.raises(DataError, match=r"e\.txt.*empty"):
        load_data(t)


def test_object_and_string_arrays(tmp_path):
    f = tmp_path / "o.npy"
    np.save(f, np.array([[1, "a"], [2, None]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o\.npy.*object"):
        load_data(f)
    g = tmp_path / "o.npz"
    np.savez(g, X10=np.array([[1, None]], dtype=object))
    with pytest.raises(DataError, match=r"o\.npz.*'X10'.*object"):
        load_data(g)
    h = tmp_path / "s.npy"
    np.save(h, np.array([["a", "b"]]))
    with pytest.raises(DataError, match=r"s\.npy.*not numbers"):
        load_data(h)


def test_corrupt_files(tmp_path):
    for name in ("x.npy", "x.npz", "x.parquet"):
        p = tmp_path / name
        p.write_bytes(b"not really")
        with pytest.raises(DataError, match=rf"data.path.*{name.replace('.', '[.]')}"):
            load_data(p)
    g = tmp_path / "X10.gz"
    g.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"X10\.gz"):
        load_data(g)
    np.savetxt(tmp_path / "r.txt", [[1.0, 2.0]])
    with open(tmp_path / "r.txt", "a") as fh:
        fh.write("3.0\n")
    with pytest.raises(DataError, match=r"r\.txt"):
        load_data(tmp_path / "r.txt")
