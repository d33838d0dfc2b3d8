import pandas as pd
import typer
from typer.testing import CliRunner

from autofab.cli.monitor import register
from autofab.testing.detector import normal_data


def app():
    a = typer.Typer()
    register(a)

    @a.callback()
    def _main() -> None:
        pass

    return a


def test_fit_and_score_csv_and_parquet(tmp_path):
    cols = [f"s{i}" for i in range(6)]
    pd.DataFrame(normal_data(800, 0), columns=cols).assign(note="x").to_csv(
        tmp_path / "n.csv", index=False
    )
    bad = normal_data(300, 1)
    bad[150:, 2] += 8
    pd.DataFrame(bad, columns=cols).to_parquet(tmp_path / "b.parquet")
    r = CliRunner().invoke(
        app(), ["monitor", "fit", str(tmp_path / "n.csv"), "--out", str(tmp_path / "m.json")]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        app(),
        [
            "monitor",
            "score",
            str(tmp_path / "b.parquet"),
            "--model",
            str(tmp_path / "m.json"),
            "--out",
            str(tmp_path / "f.csv"),
        ],
    )
    assert r.exit_code == 0, r.output
    f = pd.read_csv(tmp_path / "f.csv")["flag"].to_numpy()
    assert f[170:].mean() > 0.9 and f[:150].mean() < 0.1
    assert "pickle" not in (tmp_path / "m.json").read_text()[:20]


def test_bad_column_named(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10}).to_csv(tmp_path / "n.csv", index=False)
    r = CliRunner().invoke(
        app(),
        [
            "monitor",
            "fit",
            str(tmp_path / "n.csv"),
            "--out",
            str(tmp_path / "m.json"),
            "--columns",
            "a,zz",
        ],
    )
    assert r.exit_code == 2
    assert "zz" in r.output and "n.csv" in r.output
    r = CliRunner().invoke(
        app(), ["monitor", "score", str(tmp_path / "n.csv"), "--model", str(tmp_path / "none.json")]
    )
    assert r.exit_code == 2 and "none.json" in r.output
