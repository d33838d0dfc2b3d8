"""Fuzzing the file readers: site files and scheduling instances.

Every input either loads or raises :class:`~autofab.errors.ConfigError`
naming the source and the line or the field; nothing else escapes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autofab.errors import ConfigError
from autofab.plan.io import parse_fjs, parse_jobshop, parse_json, read_problem
from autofab.runtime import RunSettings, Runtime
from autofab.site import parse_site
from autofab.site.base import SiteConfig

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "examples" / "welding_cell.yaml").read_text())

weird = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
    st.sampled_from(["温度/ゾーン", "a/b/c", "", "1e999", "-inf", "${NOPE}", "x" * 300]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)[1:]


def _mutate(doc: dict, path: tuple, how: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "replace":
        parent[key] = value
    elif how == "delete":
        del parent[key]
    elif isinstance(parent, dict):  # add an unknown sibling field
        parent[f"unknown_{len(parent)}"] = value
    return doc


def _check_site_error(exc: ConfigError) -> None:
    assert exc.source == "fuzz.yaml"
    assert exc.field or exc.line, str(exc)
    assert exc.message and len(str(exc)) < 5000


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["replace", "delete", "add"]), weird),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_site_file_loads_or_names_the_field(mutations):
    doc = BASE
    for path, how, value in mutations:
        try:
            doc = _mutate(doc, path, how, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the parent
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        site = parse_site(text, "fuzz.yaml")
    except ConfigError as exc:
        _check_site_error(exc)
        return
    assert isinstance(site, SiteConfig)


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_as_site_file(text):
    try:
        parse_site(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.source == "fuzz.yaml" and exc.message


tokens = st.one_of(
    st.integers(min_value=-3, max_value=6).map(str),
    st.integers(min_value=10**6, max_value=10**40).map(str),
    st.sampled_from(["x", "1.5", "#", "٣", "-0", "9" * 5000, "\u00a0", "1e3"]),
)
lines = st.lists(tokens, min_size=0, max_size=8).map(" ".join)
instances = st.lists(lines, min_size=0, max_size=6).map("\n".join)


@FUZZ
@given(st.one_of(instances, st.text(max_size=120)))
def test_jobshop_and_fjs_text_load_or_name_the_line(text):
    for parse in (parse_jobshop, parse_fjs):
        try:
            problem = parse(text, "fuzz.txt")
        except ConfigError as exc:
            assert exc.source == "fuzz.txt" and exc.message
            assert exc.line is not None or "empty" in exc.message, str(exc)
            continue
        assert problem.jobs and problem.machines


json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8)
    ),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=10,
)
problems = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "machines": st.one_of(st.lists(st.text(max_size=4), max_size=3), json_values),
        "jobs": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(max_size=4)},
                    optional={
                        "operations": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "modes": st.lists(
                                        st.fixed_dictionaries(
                                            {"machine": json_values, "duration": json_values}
                                        ),
                                        max_size=2,
                                    )
                                }
                            ),
                            max_size=2,
                        ),
                        "due": json_values,
                    },
                ),
                max_size=3,
            ),
            json_values,
        ),
    },
)


@FUZZ
@given(st.one_of(problems.map(lambda d: __import__("json").dumps(d)), st.text(max_size=80)))
def test_json_problem_loads_or_names_the_field(text):
    try:
        parse_json(text, "fuzz.json")
    except ConfigError as exc:
        assert exc.source == "fuzz.json" and exc.message


def test_deep_and_huge_json_problems_are_config_errors():
    for text in ("[" * 100_000 + "]" * 100_000, '{"jobs": ' + "9" * 5000 + "}"):
        try:
            parse_json(text, "deep.json")
        except ConfigError as exc:
            assert exc.source == "deep.json"
        else:  # pragma: no cover - would be a bug
            raise AssertionError("accepted")


def test_problem_file_not_utf8_is_a_config_error(tmp_path):
    p = tmp_path / "bad.fjs"
    p.write_bytes(b"\xff\xfe2 2\n\x80\x81")
    try:
        read_problem(p)
    except ConfigError as exc:
        assert exc.source == str(p) and "UTF-8" in exc.message
    else:  # pragma: no cover - would be a bug
        raise AssertionError("accepted")


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["replace", "delete", "add"]), weird),
        min_size=1,
        max_size=2,
    )
)
def test_mutated_site_builds_a_runtime_or_names_the_field(tmp_path, mutations):
    """Sections validated when the runtime is built (twin options, loops, KPIs) too."""
    doc = BASE
    for path, how, value in mutations:
        try:
            doc = _mutate(doc, path, how, value)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        site = parse_site(yaml.safe_dump(doc, allow_unicode=True), "fuzz.yaml")
        Runtime(
            site,
            RunSettings(duration_s=60, historian_path=str(tmp_path / "h.duckdb")),
            source="fuzz.yaml",
        ).historian.close()
    except ConfigError as exc:
        assert exc.message and (exc.source == "fuzz.yaml" or exc.field), str(exc)
