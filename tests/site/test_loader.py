import pytest

from autofab.errors import ConfigError
from autofab.site import load_site, parse_duration, parse_site

MINIMAL = """\
site: {name: acme}
connectors:
  - name: twin
    kind: twin
    options: {plant: cure_oven}
"""


def test_minimal_site_has_defaults():
    cfg = parse_site(MINIMAL)
    assert cfg.site.prefix == "acme/area1/line1"
    assert cfg.run.duration == 8 * 3600
    assert cfg.historian.backend == "duckdb"


@pytest.mark.parametrize(
    ("text", "seconds"), [("8h", 28800), ("30m", 1800), ("90", 90), (2.5, 2.5)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration_says_what_is_allowed():
    with pytest.raises(ValueError, match="ms, s, m, h or d"):
        parse_duration("eight hours")


def test_error_names_file_line_and_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        MINIMAL
        + """\
loops:
  - name: zone1
    cv: oven/zone1/temperature
    mv: oven/zone1/heater
    sp: 120
    period_s: -1
"""
    )
    with pytest.raises(ConfigError) as ei:
        load_site(p)
    msg = str(ei.value)
    assert str(p) in msg and ":11:" in msg and "loops.0.period_s" in msg and "greater than 0" in msg


def test_unknown_field_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown field"):
        parse_site(MINIMAL + "colour: blue\n", "s.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_site("site: [unclosed\n", "s.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_site(tmp_path / "missing.yaml")


def test_loop_needs_setpoint_per_cv():
    with pytest.raises(ConfigError, match="expected one per cv"):
        parse_site(MINIMAL + "loops:\n  - {name: l, cv: [a/b, a/c], mv: a/d, sp: 1}\n")
