"""`make data` (pipelines/source.py): the packaged datasets are a catalogue, not code."""
from __future__ import annotations

import pandas as pd
import pytest

from pipelines import source


def _catalogue(tmp_path, text: str):
    path = tmp_path / "packaged.yaml"
    path.write_text(text)
    return path


def test_a_dataset_added_to_the_catalogue_is_written_without_code(tmp_path, capsys):
    catalogue = _catalogue(tmp_path, """
default: [iris.csv]
datasets:
  iris.csv:
    sklearn: {loader: load_iris, rename: {target: species}, class_names: true}
""")
    out = tmp_path / "data"
    assert source.main(["--dir", str(out), "--catalogue", str(catalogue), "iris.csv"]) == 0
    frame = pd.read_csv(out / "iris.csv")
    assert frame.shape == (150, 5)
    assert sorted(frame["species"].unique()) == ["setosa", "versicolor", "virginica"]
    assert capsys.readouterr().out == f"{out / 'iris.csv'}: written\n"
    # A file already in place is left alone.
    (out / "iris.csv").write_text("mine\n")
    assert source.main(["--dir", str(out), "--catalogue", str(catalogue), "iris.csv"]) == 0
    assert (out / "iris.csv").read_text() == "mine\n"
    assert capsys.readouterr().out.endswith("iris.csv: already in place\n")


def test_the_repositorys_catalogue_holds_the_churn_source_inside_its_package():
    catalogue = source.load_catalogue()
    assert catalogue.default == ["telco_churn.csv", "diabetes.csv"]
    telco = source.packaged_file("telco_churn.csv", catalogue)
    assert telco.name == "Customer_Churn.csv"
    assert source.dataset_bytes("telco_churn.csv", catalogue) == telco.read_bytes()


@pytest.mark.parametrize("text, words", [
    ("datasets:\n  a.csv: {}\n", ["datasets.a.csv", "exactly one of package_file and sklearn"]),
    ("datasets:\n  a.csv: {sklearn: {loader: os.system}}\n",
     ["datasets.a.csv.sklearn.loader", "load_"]),
    ("default: [b.csv]\ndatasets:\n  a.csv: {sklearn: {loader: load_iris}}\n",
     ["b.csv not under datasets"]),
    ("datasets:\n  a.csv: {sklearn: {loader: load_iris, shuffle: true}}\n",
     ["datasets.a.csv.sklearn.shuffle", "Extra inputs"]),
    ("datasets: [\n", ["not valid YAML"]),
])
def test_a_broken_catalogue_is_refused_naming_file_key_and_problem(tmp_path, capsys, text,
                                                                   words):
    catalogue = _catalogue(tmp_path, text)
    assert source.main(["--dir", str(tmp_path / "data"), "--catalogue", str(catalogue)]) == 1
    err = capsys.readouterr().err
    assert str(catalogue) in err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "data").exists()  # nothing half-written


def test_an_unknown_dataset_is_named_with_the_known_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        source.main(["--dir", str(tmp_path), "nope.csv"])
    assert "unknown dataset(s) nope.csv: one of telco_churn.csv, diabetes.csv, wine.csv" \
        in capsys.readouterr().err
