import pytest

from autofab.errors import ConfigError
from autofab.plan import CpSatScheduler, Downtime, write_gantt
from autofab.testing.scheduler import small_problem


def test_gantt_html_and_png(tmp_path):
    p = small_problem().model_copy(
        update={"downtimes": (Downtime(machine=1, start=0, end=3, reason="maint"),)}
    )
    s = CpSatScheduler().solve(p, time_limit=2, workers=1)
    html = write_gantt(p, s, tmp_path / "g.html").read_text()
    assert (
        html.count("<rect") >= p.n_ops + 1 and "maint" in html and f"makespan {s.makespan}" in html
    )
    with pytest.raises(ConfigError, match=r"allowed: \.html, \.png"):
        write_gantt(p, s, tmp_path / "g.pdf")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="matplotlib"):
            write_gantt(p, s, tmp_path / "g.png")
    else:
        png = write_gantt(p, s, tmp_path / "g.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
