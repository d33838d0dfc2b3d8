import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from autofab.cli.learn import register
from autofab.learn.registry import ModelRegistry


def test_identify_and_list(tmp_path):
    rng = np.random.default_rng(0)
    u = np.repeat(rng.uniform(0, 1, 60), 10)
    y = np.zeros_like(u)
    for k in range(1, len(u)):
        y[k] = 0.8 * y[k - 1] + 0.4 * u[k - 1]
    pd.DataFrame({"power": u, "temp": y + 20}).to_csv(tmp_path / "d.csv", index=False)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    reg = tmp_path / "models"
    res = runner.invoke(
        app,
        [
            "learn",
            "identify",
            str(tmp_path / "d.csv"),
            "--u",
            "power",
            "--y",
            "temp",
            "--registry",
            str(reg),
            "--name",
            "zone1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "zone1 v1" in res.output and "passed=True" in res.output
    model = ModelRegistry(reg).load("zone1")
    a, b, c, _ = model.state_space()
    gain = float((c @ np.linalg.solve(np.eye(a.shape[0]) - a, b))[0, 0])
    assert abs(gain - 2.0) < 0.05  # 0.4 / (1 - 0.8)
    res = runner.invoke(app, ["learn", "models", str(reg)])
    assert res.exit_code == 0 and "zone1 v1" in res.output
    bad = runner.invoke(
        app, ["learn", "identify", str(tmp_path / "d.csv"), "--u", "nope", "--y", "temp"]
    )
    assert bad.exit_code != 0
