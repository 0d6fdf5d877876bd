import numpy as np
import pytest

import tfkit.datasets as d
from tfkit.datasets import DataError, partition


def test_mnist_from_data_dir(data_dir):
    ds = d.load("mnist", data_dir=data_dir)
    assert ds.train.x.shape == (60000, 28, 28) and ds.test.x.shape == (10000, 28, 28)
    assert ds.train.x.dtype == np.uint8 and set(np.unique(ds.test.y)) == set(range(10))


def test_femnist_has_writers(data_dir):
    ds = d.load("femnist", data_dir=data_dir)
    assert ds.num_classes == 62 and ds.train.groups is not None
    assert len(np.unique(ds.train.groups)) == 105


def test_cifar10_env_var(data_dir, monkeypatch):
    monkeypatch.setenv("TFKIT_DATA_DIR", str(data_dir))
    ds = d.load("cifar10")
    assert ds.train.x.shape[1:] == (32, 32, 3) and ds.train.y.ndim == 1


def test_tinyshakespeare(data_dir):
    text = d.load("tinyshakespeare", data_dir=data_dir)
    assert len(text.train) + len(text.test) == 1_115_394 and len(text.vocabulary) == 65


def test_embedded_defaults_need_no_files():
    digits = d.load("digits")
    assert digits.train.x.shape[1:] == (8, 8) and digits.train.x.max() == 255
    assert len(digits.train) + len(digits.test) == 1797
    assert len(d.load("embedded-text").train) > 30_000


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match="mnist.npz"):
        d.load("mnist", data_dir=tmp_path, download=False)


def test_truncated_file_is_a_clear_error(tmp_path, data_dir):
    (tmp_path / "mnist.npz").write_bytes((data_dir / "mnist.npz").read_bytes()[:5000])
    with pytest.raises(DataError, match="not a readable .npz"):
        d.load("mnist", data_dir=tmp_path)


def test_wrong_shape_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 27, 28), np.uint8),
             y_train=np.zeros(2, np.uint8), x_test=np.zeros((2, 28, 28), np.uint8),
             y_test=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="x_train.*expected"):
        d.load("mnist", data_dir=tmp_path)


def test_bad_labels_are_a_clear_error(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8),
             y_train=np.array([0, 12], np.uint8), x_test=np.zeros((2, 28, 28), np.uint8),
             y_test=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="labels"):
        d.load("mnist", data_dir=tmp_path)


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError, match="cifar10"):
        d.load("imagenet")


def test_partitioners():
    y = np.repeat(np.arange(6), 40)
    parts = partition.by_class(y, 10, classes=range(6), samples_per_class=3)
    assert len(parts) == 10 and all(len(p) == 18 for p in parts)
    assert len(set(np.concatenate(parts))) == 180
    shards = partition.iid(100, 3)
    assert sorted(np.concatenate(shards)) == list(range(100))
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    by_writer = partition.by_group(groups, 2)
    assert sum(map(len, by_writer)) == 6
    for p in by_writer:  # no writer split across clients
        assert all(set(groups[p]).isdisjoint(groups[q]) for q in by_writer if q is not p)


def test_sample_is_seeded_and_not_the_first_rows():
    y = np.repeat(np.arange(10), 100)  # class-sorted, like the shared CIFAR-10 copy
    split = d.Split(np.zeros((1000, 2, 2), np.uint8), y)
    a, b = split.sample(200, seed=1), split.sample(200, seed=1)
    assert (a.y == b.y).all() and len(np.unique(a.y)) == 10
    assert split.sample(5000) is split


def test_text_encoding_and_next_token_windows():
    text = d.load_embedded_text()
    ids = text.encode(text.train)
    assert ids.dtype == np.int32 and ids.min() >= 1 and ids.max() < text.vocab_size  # 0 = pad
    assert "".join(text.vocabulary[i - 1] for i in ids[:50]) == text.train[:50]
    x, y = d.next_token_windows(ids, count=5, length=16, seed=3)
    assert x.shape == y.shape == (5, 16)
    assert (x[:, 1:] == y[:, :-1]).all()  # targets are the inputs shifted by one
    again, _ = d.next_token_windows(ids, count=5, length=16, seed=3)
    assert (again == x).all()
    with pytest.raises(DataError, match="too short"):
        d.next_token_windows(ids[:10], count=1, length=16, seed=0)


def test_a_data_dir_without_the_file_is_named_in_the_error(tmp_path):
    with pytest.raises(DataError, match=f"no mnist.npz in '{tmp_path}'"):
        d.load("mnist", data_dir=tmp_path, download=False)
    np.savez(tmp_path / "cifar10_train.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8),
             y_train=np.zeros((2, 1), np.uint8))
    with pytest.raises(DataError, match=f"'{tmp_path}' has cifar10_train.npz but not "
                                        "cifar10_test.npz"):
        d.load("cifar10", data_dir=tmp_path, download=False)


def test_image_dataset_gives_float_grayscale_images_a_channel_axis_too():
    from tfkit.datasets.pipeline import image_dataset

    x = np.zeros((4, 8, 8), np.uint8)
    y = np.zeros(4, np.int64)
    for images in (x, x.astype(np.float32) / 255.0):
        batch, _ = next(iter(image_dataset(images, y, batch_size=2)))
        assert batch.shape == (2, 8, 8, 1) and batch.dtype == "float32"


@pytest.mark.parametrize("name", sorted(d.IMAGE_SIDES))
def test_image_sides_are_what_the_loaders_give(name, request):
    data_dir = None if name == "digits" else request.getfixturevalue("data_dir")
    try:
        ds = d.load(name, data_dir=data_dir, download=False)
    except DataError as e:  # a data folder without this dataset: nothing to compare
        pytest.skip(str(e))
    assert isinstance(ds, d.ImageDataset)
    assert ds.test.x.shape[1:3] == (d.IMAGE_SIDES[name],) * 2


def test_every_image_loader_is_in_image_sides():
    from tfkit.datasets import images

    loaders = {**d._LOADERS, **d._EMBEDDED}
    assert {n for n, f in loaders.items() if f.__module__ == images.__name__} \
        == set(d.IMAGE_SIDES)


@pytest.mark.parametrize("name,have,lack", [
    ("cifar10", "cifar10_train.npz", "cifar10_test.npz"),
    ("cifar10", "cifar10_test.npz", "cifar10_train.npz"),
    ("femnist", "femnist_train.npz", "femnist_test.npz"),
    ("femnist", "femnist_test.npz", "femnist_train.npz")])
def test_half_a_train_test_pair_names_the_missing_file(tmp_path, name, have, lack):
    """Not "the download failed": no download is tried when one file of the pair is there."""
    np.savez(tmp_path / have, x=np.zeros(1))
    with pytest.raises(DataError, match=f"has {have} but not {lack}") as e:
        d.load(name, data_dir=tmp_path)
    assert "download" not in str(e.value)


def test_an_empty_split_prints_and_sample_refuses_negative_sizes():
    split = d.load("digits").test
    empty = split.sample(0)
    assert len(empty) == 0 and "Split(x=(0, 8, 8) uint8" in repr(empty)
    with pytest.raises(ValueError, match="n must be >= 0"):
        split.sample(-1)


def test_wrong_dtypes_and_misaligned_writers_are_data_errors_naming_the_file(tmp_path):
    # string labels were a numpy UFuncTypeError (a CLI traceback); dtype errors did not name
    # the file; FEMNIST writer ids of another length were accepted and misaligned
    arrays = {"x_train": np.zeros((2, 28, 28), np.uint8), "y_train": np.zeros(2, np.uint8),
              "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}
    for key, bad in (("y_train", np.array(["0", "1"])), ("x_test", np.zeros((2, 28, 28)))):
        np.savez(tmp_path / "mnist.npz", **{**arrays, key: bad})
        with pytest.raises(DataError, match=f"{tmp_path / 'mnist.npz'}.*{key}.*expected integers"):
            d.load("mnist", data_dir=tmp_path, download=False)
    for split in ("train", "test"):
        np.savez(tmp_path / f"femnist_{split}.npz", x=np.zeros((2, 28, 28), np.uint8),
                 y=np.array([0, 61]), user=np.array(["a", "b", "c"][:3 if split == "test" else 2]))
    with pytest.raises(DataError, match=f"{tmp_path / 'femnist_test.npz'}.*2 images but 3 user"):
        d.load("femnist", data_dir=tmp_path, download=False)
