import json
from pathlib import Path

import pytest

from autofab.errors import ConfigError
from autofab.plan import (
    CpSatScheduler,
    detect_format,
    parse_fjs,
    parse_jobshop,
    problem_to_json,
    read_problem,
    schedule_from_json,
    schedule_to_json,
)
from service_support import shared_data

FT06 = (Path(__file__).parent / "data" / "ft06.txt").read_text()

FJS = """3 2 1.5
2 2 1 3 2 4 1 2 2
1 1 1 5
2 1 2 2 2 1 3 2 4
"""


def test_jobshop_text_is_read_with_zero_based_machines():
    p = parse_jobshop(FT06, "ft06.txt")
    assert len(p.jobs) == 6 and len(p.machines) == 6
    assert p.jobs[0].operations[0].modes[0].machine == 2
    assert p.jobs[0].operations[0].modes[0].duration == 1
    assert sum(m.duration for op in p.jobs[0].operations for m in op.modes) == 1 + 3 + 6 + 7 + 3 + 6


def test_fjs_is_read_with_one_based_machines_and_alternatives():
    p = parse_fjs(FJS, "x.fjs")
    assert [len(j.operations) for j in p.jobs] == [2, 1, 2]
    first = p.jobs[0].operations[0]
    assert [(m.machine, m.duration) for m in first.modes] == [(0, 3), (1, 4)]
    assert [(m.machine, m.duration) for m in p.jobs[2].operations[1].modes] == [(0, 3), (1, 4)]


def test_format_is_detected_from_content():
    assert detect_format(FT06) == "jobshop"
    assert detect_format(FJS) == "fjs"
    assert detect_format('{"machines": ["a"]}') == "json"
    # An .fjs file without the average column is still told apart (machine 6 of 6 is out of 0..5).
    assert detect_format("2 6\n1 1 6 5\n1 1 6 4\n") == "fjs"


def test_shared_instances_are_read_and_detected():
    ta = read_problem(shared_data("scheduling/jobshop/instances/Taillard1993/ta01js.txt"))
    assert (len(ta.jobs), len(ta.machines), ta.n_ops) == (15, 15, 225)
    mk = read_problem(shared_data("scheduling/fjsp/instances/Brandimarte1993/mk01.txt"))
    assert (len(mk.jobs), len(mk.machines)) == (10, 6)
    assert any(len(op.modes) > 1 for j in mk.jobs for op in j.operations)


def test_forced_format_and_bad_format(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text(FT06)
    with pytest.raises(ConfigError, match="allowed: jobshop, fjs, json"):
        read_problem(f, format="xml")
    # Forcing fjs on a job-shop file fails with the file and line in the message.
    with pytest.raises(ConfigError, match=r"p\.txt:\d+"):
        read_problem(f, format="fjs")


@pytest.mark.parametrize(
    ("text", "fmt", "needle"),
    [
        ("2 2\n0 5 1 x\n1 2 0 3\n", "jobshop", r":2: .*integer"),
        ("2 2\n0 5 3 4\n1 2 0 3\n", "jobshop", r":2: .*allowed 0\.\.1"),
        ("2 2\n0 5 1\n1 2 0 3\n", "jobshop", r":2: .*pairs"),
        ("3 2\n0 5 1 4\n", "jobshop", r"expected 3 job lines"),
        ("1 2\n1 1 3 5\n", "fjs", r":2: .*allowed 1\.\.2"),
        ("1 2\n2 1 1 5\n", "fjs", r":2: .*ends early"),
        ("", "jobshop", r"empty file"),
    ],
)
def test_malformed_files_name_file_line_and_what_is_allowed(tmp_path, text, fmt, needle):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle) as info:
        read_problem(f, format=fmt)
    assert "bad.txt" in str(info.value)


def test_json_problem_round_trip_and_errors(tmp_path):
    p = parse_jobshop(FT06, name="ft06")
    f = tmp_path / "ft06.json"
    f.write_text(problem_to_json(p))
    q = read_problem(f)
    assert q == p
    bad = json.loads(f.read_text())
    bad["jobs"][0]["operations"][0]["modes"][0]["machine"] = 9
    f.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="machine 9 does not exist"):
        read_problem(f)
    f.write_text("{not json")
    with pytest.raises(ConfigError, match=r"ft06\.json:1"):
        read_problem(f)


def test_schedule_json_round_trip():
    p = parse_jobshop(FT06, name="ft06")
    s = CpSatScheduler().solve(p, time_limit=2, workers=1)
    text = schedule_to_json(s, p)
    assert json.loads(text)["assignments"][0]["machine_name"].startswith("M")
    assert schedule_from_json(text) == s
