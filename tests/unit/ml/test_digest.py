"""A model folder's digest (what a scorer checks before it trusts a version's compiled form):
the same files give the same digest wherever they are; a changed byte, a missing file or a
renamed one change it."""

from __future__ import annotations

import shutil
from pathlib import Path

from lakehouse.ml.registry import artifact_digest


def model_folder(root: Path) -> Path:
    (root / "sparkml" / "stages" / "0_gbt" / "data").mkdir(parents=True)
    (root / "sparkml" / "metadata").mkdir(parents=True)
    (root / "sparkml" / "metadata" / "part-00000").write_text('{"class": "PipelineModel"}')
    (root / "sparkml" / "stages" / "0_gbt" / "data" / "part-00000.parquet").write_bytes(bytes(range(256)) * 9)
    (root / "MLmodel").write_text("flavors: {}\n")
    return root


def test_the_same_files_anywhere_give_the_same_digest(tmp_path: Path) -> None:
    assert artifact_digest(model_folder(tmp_path / "a")) == artifact_digest(model_folder(tmp_path / "b"))


def test_a_changed_byte_a_missing_file_or_a_renamed_one_change_the_digest(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model")
    registered = artifact_digest(folder)
    data = folder / "sparkml" / "stages" / "0_gbt" / "data" / "part-00000.parquet"

    content = data.read_bytes()
    data.write_bytes(content[:-1] + b"\x00")
    assert artifact_digest(folder) != registered
    data.write_bytes(content)
    assert artifact_digest(folder) == registered

    data.rename(data.with_name("part-00001.parquet"))
    assert artifact_digest(folder) != registered
    shutil.rmtree(folder / "sparkml" / "stages")
    assert artifact_digest(folder) != registered
