"""rewardsds.threads: parsing, idle-core counting from /proc/stat snapshots, clamping, env precedence.

No timing assertions; /proc/stat and affinity are faked so the results do not depend on the machine."""

from __future__ import annotations

import os

import pytest

from rewardsds import threads as th

ENV_KEYS = ("REWARDSDS_THREADS", "REWARDSDS_THREADS_CHOSEN", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "RAYON_NUM_THREADS",
            "REWARDSDS_WAIT_POLICY")


def stat(*cpus: tuple[int, int]) -> str:
    """A /proc/stat text whose cpuN lines have (busy user ticks, idle ticks)."""
    tot_busy, tot_idle = sum(c[0] for c in cpus), sum(c[1] for c in cpus)
    lines = [f"cpu  {tot_busy} 0 0 {tot_idle} 0 0 0 0 0 0"]
    lines += [f"cpu{i} {busy} 0 0 {idle} 0 0 0 0 0 0" for i, (busy, idle) in enumerate(cpus)]
    lines += ["intr 12345 0 0", "ctxt 999", "btime 1700000000"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setattr(th, "_measured", None)  # a fresh process
    for k in ENV_KEYS:  # set then delete, so that whatever the code under test sets is undone
        monkeypatch.setenv(k, "x")
        monkeypatch.delenv(k)
    return monkeypatch


def fake_machine(monkeypatch, before: str, after: str, affinity=None, quota=None):
    snaps = iter([th.parse_proc_stat(before), th.parse_proc_stat(after)])
    monkeypatch.setattr(th, "_read_proc_stat", lambda: next(snaps))
    monkeypatch.setattr(th.time, "sleep", lambda s: None)
    monkeypatch.setattr(th, "_affinity", lambda: affinity)
    monkeypatch.setattr(th, "_cgroup_cpus", lambda: quota)


# ------------------------------------------------------------------ parsing / validation

@pytest.mark.parametrize("value", [None, 0, "0", "", "auto", " AUTO "])
def test_auto_values(value):
    assert th.parse_threads(value) is None


@pytest.mark.parametrize("value,want", [(1, 1), ("2", 2), (" 16 ", 16), (1024, 1024)])
def test_explicit_values(value, want):
    assert th.parse_threads(value) == want


@pytest.mark.parametrize("value", [-1, 1025, "1025", "two", "1.5", 1.5, True, "-3", [2]])
def test_bad_values_raise_one_sentence(value):
    with pytest.raises(ValueError, match=r"^--threads must be 'auto' or an integer from 1 to 1024, got "):
        th.parse_threads(value)


def test_configure_rejects_bad_spec(env):
    with pytest.raises(ValueError):
        th.configure_threads(-5)


def test_threads_from_argv():
    assert th.threads_from_argv(["generate", "a cat", "--threads", "3"]) == "3"
    assert th.threads_from_argv(["generate", "--threads=auto", "x"]) == "auto"
    assert th.threads_from_argv(["generate", "a cat"]) is None
    assert th.threads_from_argv(["generate", "--threads"]) is None
    assert th.threads_from_argv(["generate", "--", "--threads", "3"]) is None


# ------------------------------------------------------------------ /proc/stat

def test_parse_proc_stat_skips_aggregate_and_other_lines():
    snap = th.parse_proc_stat(stat((10, 90), (50, 50)))
    assert snap == {0: (90, 100), 1: (50, 100)}


def test_parse_proc_stat_counts_iowait_as_idle_and_ignores_guest():
    # user nice system idle iowait irq softirq steal guest guest_nice
    snap = th.parse_proc_stat("cpu3 10 1 2 30 5 1 1 0 7 7\n")
    assert snap == {3: (35, 50)}


def test_idle_fractions_and_count():
    before = th.parse_proc_stat(stat((0, 0), (0, 0)))
    after = th.parse_proc_stat(stat((1, 14), (15, 0)))  # cpu0 ~93% idle, cpu1 fully busy
    fr = th.idle_fractions(before, after)
    assert fr[0] == pytest.approx(14 / 15) and fr[1] == 0.0
    assert th.count_idle(fr) == 1


@pytest.mark.parametrize("fracs,want", [
    ([1.0, 1.0], 2), ([1.0, 0.0], 1), ([0.0, 0.0], 0), ([1.0, 0.75], 2), ([1.0, 0.7], 1),
    ([0.5, 0.5], 1), ([0.9, 0.9, 0.9, 0.9], 3), ([0.95] * 4, 4),
])
def test_count_idle_is_conservative(fracs, want):
    assert th.count_idle(dict(enumerate(fracs))) == want


def test_idle_fractions_limited_to_cpus_and_still_counters():
    before = th.parse_proc_stat(stat((0, 0), (0, 0), (5, 5)))
    after = th.parse_proc_stat(stat((0, 10), (10, 0), (5, 5)))
    assert th.idle_fractions(before, after, {0, 2}) == {0: 1.0, 2: 1.0}  # cpu2 did not tick: idle


# ------------------------------------------------------------------ measuring + clamping

def test_measure_both_idle(env):
    fake_machine(env, stat((0, 0), (0, 0)), stat((0, 15), (0, 15)), affinity={0, 1})
    assert th.measure_idle_cores() == (2, pytest.approx(2.0))


def test_measure_one_core_busy(env):
    fake_machine(env, stat((0, 0), (0, 0)), stat((0, 15), (15, 0)), affinity={0, 1})
    assert th.measure_idle_cores()[0] == 1


def test_measure_all_busy_gives_one(env):
    fake_machine(env, stat((0, 0), (0, 0)), stat((15, 0), (15, 0)), affinity={0, 1})
    assert th.measure_idle_cores()[0] == 1


def test_measure_clamped_to_affinity(env):
    idle8 = stat(*[(0, 0)] * 8), stat(*[(0, 15)] * 8)
    fake_machine(env, *idle8, affinity={2, 5})
    assert th.measure_idle_cores()[0] == 2


def test_affinity_chooses_which_cpus_count(env):
    # cpus 0,1 idle but not ours; cpu 2 busy and ours; cpu 3 idle and ours
    fake_machine(env, stat(*[(0, 0)] * 4), stat((0, 15), (0, 15), (15, 0), (0, 15)), affinity={2, 3})
    assert th.measure_idle_cores()[0] == 1


def test_measure_clamped_to_cgroup_quota(env):
    idle8 = stat(*[(0, 0)] * 8), stat(*[(0, 15)] * 8)
    fake_machine(env, *idle8, affinity=set(range(8)), quota=2.5)
    assert th.measure_idle_cores()[0] == 3


def test_measure_falls_back_to_loadavg(env):
    def no_proc():
        raise OSError("no /proc")
    env.setattr(th, "_read_proc_stat", no_proc)
    env.setattr(th.time, "sleep", lambda s: None)
    env.setattr(th, "_affinity", lambda: {0, 1, 2, 3})
    env.setattr(th, "_cgroup_cpus", lambda: None)
    env.setattr(th.os, "cpu_count", lambda: 4)
    env.setattr(th.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert th.measure_idle_cores()[0] == 2  # 2.5 idle cores: the half-idle one does not count
    env.setattr(th.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert th.measure_idle_cores()[0] == 3


# ------------------------------------------------------------------ configure_threads

def test_configure_explicit_sets_env(env):
    assert th.configure_threads(3) == 3
    assert os.environ["OMP_NUM_THREADS"] == "3" and os.environ["MKL_NUM_THREADS"] == "3"
    assert th.last_choice["source"] == "flag" and th.last_choice["threads"] == 3


def test_configure_sets_torch_threads_when_imported(env):
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    try:
        assert th.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_env_precedence(env):
    fake_machine(env, stat((0, 0), (0, 0)), stat((0, 15), (0, 15)), affinity={0, 1})
    env.setenv("OMP_NUM_THREADS", "5")
    env.setenv("REWARDSDS_THREADS", "4")
    assert th.configure_threads(7) == 7  # the flag wins
    env.setenv("OMP_NUM_THREADS", "5")
    env.delenv("REWARDSDS_THREADS_CHOSEN")
    assert th.configure_threads(None) == 4 and th.last_choice["source"] == "REWARDSDS_THREADS"


def test_user_omp_num_threads_respected(env):
    env.setattr(th, "measure_idle_cores", lambda: pytest.fail("must not measure"))
    env.setenv("OMP_NUM_THREADS", "3")
    assert th.configure_threads("auto") == 3 and th.last_choice["source"] == "OMP_NUM_THREADS"
    env.setenv("MKL_NUM_THREADS", "6")
    env.delenv("OMP_NUM_THREADS")
    assert "REWARDSDS_THREADS_CHOSEN" not in os.environ  # the user's count is not marked
    assert th.configure_threads(None) == 6 and th.last_choice["source"] == "MKL_NUM_THREADS"


def test_rewardsds_threads_auto_measures(env):
    env.setattr(th, "measure_idle_cores", lambda: (2, 1.9))
    env.setenv("REWARDSDS_THREADS", "auto")
    assert th.configure_threads(None) == 2 and th.last_choice["source"] == "auto"


def test_own_choice_is_not_taken_for_the_users(env):
    """A child inheriting OMP_NUM_THREADS from a parent's auto choice measures again."""
    env.setattr(th, "measure_idle_cores", lambda: (2, 2.0))
    assert th.configure_threads(None) == 2
    env.setattr(th, "_measured", None)  # the child process
    env.setattr(th, "measure_idle_cores", lambda: (1, 1.0))
    assert th.configure_threads(None) == 1 and th.last_choice["source"] == "auto"


def test_auto_measures_once_per_process(env):
    """The CLI calls it before importing torch and the command again after: one measurement."""
    calls = []
    env.setattr(th, "measure_idle_cores", lambda: calls.append(1) or (2, 1.9))
    assert th.configure_threads(None) == 2
    assert th.configure_threads(None) == 2 and th.last_choice == {
        "threads": 2, "source": "auto", "idle": 1.9, "wait_policy": th.last_choice["wait_policy"]}
    assert len(calls) == 1
    assert th.configure_threads(1) == 1  # an explicit count in between ...
    assert th.configure_threads(None) == 2 and len(calls) == 2  # ... and auto measures afresh


def test_garbage_env_is_ignored(env):
    env.setattr(th, "measure_idle_cores", lambda: (1, 0.8))
    env.setenv("OMP_NUM_THREADS", "lots")
    env.setenv("REWARDSDS_THREADS", "-2")
    assert th.configure_threads(None) == 1 and th.last_choice["source"] == "auto"


def test_never_fails(env):
    def boom():
        raise RuntimeError("weird platform")
    env.setattr(th, "measure_idle_cores", boom)
    assert th.configure_threads(None) == 1 and th.last_choice["source"] == "fallback"


def test_wait_policy_passive_unless_user_or_loaded(env):
    env.setattr(th, "_openmp_loaded", lambda: False)
    assert th._wait_policy() == "passive" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    env.delenv("OMP_WAIT_POLICY")
    env.delenv("KMP_BLOCKTIME")
    env.setenv("GOMP_SPINCOUNT", "1000")
    assert th._wait_policy().startswith("user: GOMP_SPINCOUNT=1000") and "OMP_WAIT_POLICY" not in os.environ
    env.delenv("GOMP_SPINCOUNT")
    env.setattr(th, "_openmp_loaded", lambda: True)
    assert th._wait_policy().startswith("default") and "OMP_WAIT_POLICY" not in os.environ


def test_wait_policy_inherited_from_own_choice_is_not_the_users(env):
    env.setattr(th, "_openmp_loaded", lambda: False)
    env.setattr(th, "measure_idle_cores", lambda: (2, 2.0))
    assert th.configure_threads(None) == 2 and th.last_choice["wait_policy"] == "passive"
    assert th.configure_threads(None) == 2 and th.last_choice["wait_policy"] == "passive"


def test_users_omp_num_threads_survives_repeated_calls(env):
    """In one process (tests calling cli.main twice), the user's OMP_NUM_THREADS=1 stays the user's."""
    env.setattr(th, "measure_idle_cores", lambda: pytest.fail("must not measure"))
    env.setenv("OMP_NUM_THREADS", "1")
    assert th.configure_threads(None) == 1
    assert th.configure_threads(None) == 1 and th.last_choice["source"] == "OMP_NUM_THREADS"
    assert th.configure_threads(2) == 2  # the flag still wins ...
    env.setattr(th, "measure_idle_cores", lambda: (1, 0.5))
    assert th.configure_threads(None) == 1 and th.last_choice["source"] == "auto"  # ... and is ours
