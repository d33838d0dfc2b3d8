import pytest

from autofab.errors import ConfigError
from autofab.monitor.alarms import AlarmManager, LimitAlarm
from autofab.monitor.base import AlarmState, Priority


def test_isa_18_2_state_machine():
    m = AlarmManager()
    m.define("a", "site/x", Priority.HIGH)
    assert m.process("a", True, 0.0)[0].state is AlarmState.UNACK
    assert m.acknowledge("a", "ann").state is AlarmState.ACKED
    assert m.process("a", False, 10.0)[0].state is AlarmState.NORMAL
    m.process("a", True, 20.0)
    assert m.process("a", False, 30.0)[0].state is AlarmState.RTN_UNACK
    assert m.process("a", True, 40.0)[0].state is AlarmState.UNACK
    m.process("a", False, 50.0)
    assert m.acknowledge("a", "ann", 55.0).state is AlarmState.NORMAL
    assert m.report()["by_priority"]["high"] == 3


def test_shelve_and_suppress():
    m = AlarmManager()
    m.define("a", "site/x", Priority.LOW)
    m.process("a", True, 0.0)
    assert m.shelve("a", 60.0, "bob", 1.0).state is AlarmState.SHELVED
    assert m.process("a", False, 5.0) == [] and m.process("a", True, 6.0) == []
    ev = m.tick(61.0)
    assert ev and ev[0].state is AlarmState.UNACK
    assert m.suppress("a", True).state is AlarmState.SUPPRESSED
    assert m.active()[0]["state"] == "suppressed"
    with pytest.raises(ConfigError):
        m.shelve("a", 0.0, "bob")
    with pytest.raises(ConfigError):
        m.acknowledge("nope", "bob")


def test_flood_and_rate():
    m = AlarmManager(flood_count=10, flood_window=600.0)
    for i in range(12):
        m.define(f"a{i}", f"site/x{i}", Priority.MEDIUM)
    for i in range(12):
        m.process(f"a{i}", True, 10.0 * i)
    assert m.in_flood()
    m.tick(3600.0)
    r = m.report()
    assert not m.in_flood() and len(r["floods"]) == 1
    assert r["floods"][0]["alarms"] == 12
    assert r["rate_per_operator_hour"] == pytest.approx(12.0, rel=1e-6)


def test_limit_deadband():
    lim = LimitAlarm("x:hi", "site/x", 100.0, True, deadband=2.0)
    assert [lim.evaluate(v) for v in (99, 101, 99, 97.9, 99)] == [False, True, True, False, False]
