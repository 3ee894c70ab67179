"""The fsspec filesystem the way notebooks use it: pandas and pyarrow reading and writing
`storage-broker://` paths through signed URLs, with range reads."""

from __future__ import annotations

import fsspec
import pandas as pd
import pytest

from conftest import BROKER, token, unique


@pytest.fixture(scope="module")
def options() -> dict[str, str]:
    return {"base_url": BROKER, "token": token("py-notebook")}


@pytest.fixture(scope="module")
def root(options: dict[str, str]) -> str:
    import storage_broker

    bucket = storage_broker.Client(BROKER, token=options["token"]).me()["personal_bucket"]
    return f"storage-broker://{bucket}/{unique('notebook')}"


def test_pandas_reads_and_writes_csv(options: dict[str, str], root: str) -> None:
    frame = pd.DataFrame({"city": ["Ottawa", "Montréal", "Québec"], "people": [1_017_449, 1_762_949, 549_459]})
    frame.to_csv(f"{root}/cities.csv", index=False, storage_options=options)
    back = pd.read_csv(f"{root}/cities.csv", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)


def test_pyarrow_parquet_through_range_reads(options: dict[str, str], root: str) -> None:
    frame = pd.DataFrame({"n": range(50_000), "square": [i * i for i in range(50_000)]})
    frame.to_parquet(f"{root}/squares.parquet", storage_options=options)
    fs = fsspec.filesystem("storage-broker", **options)
    path = f"{root}/squares.parquet"
    # Parquet's footer is read from the end: a range read, not the whole file.
    assert fs.cat_file(path, start=-4) == b"PAR1"
    back = pd.read_parquet(path, columns=["square"], storage_options=options)
    assert back["square"].iloc[-1] == 49_999**2


def test_listing_info_and_removal(options: dict[str, str], root: str) -> None:
    fs = fsspec.filesystem("storage-broker", **options)
    base = root.removeprefix("storage-broker://") + "/tree"
    fs.pipe({f"{base}/a.txt": b"a", f"{base}/sub/b.txt": b"bb", f"{base}/sub/deeper/c.txt": b"ccc"})
    assert sorted(fs.ls(base, detail=False)) == [f"{base}/a.txt", f"{base}/sub"]
    assert fs.info(f"{base}/sub/b.txt")["size"] == 2
    assert fs.info(f"{base}/sub")["type"] == "directory"
    assert sorted(fs.find(base)) == [f"{base}/a.txt", f"{base}/sub/b.txt", f"{base}/sub/deeper/c.txt"]
    with fs.open(f"{base}/sub/deeper/c.txt", "rb") as f:
        f.seek(1)
        assert f.read(1) == b"c"
    fs.rm(f"{base}/a.txt")
    assert not fs.exists(f"{base}/a.txt")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{base}/nothing.txt")
