"""The sweep store and driver: resume after a killed worker or driver, retries, never half-done."""

import json
import subprocess
import sys
from pathlib import Path

import _sweep_helpers as h
import pytest

from rewardsds.errors import UserError
from rewardsds.sweep.config import SweepConfig
from rewardsds.sweep.runner import canonical_config, plan, read_prompts, run_sweep
from rewardsds.sweep.store import RunSpec, Store, config_hash, new_owner


def _prompts(tmp_path: Path, *prompts: str) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("# world prompts\n" + "\n".join(prompts) + "\n\n")
    return p


def _cfg(tmp_path, **kw) -> SweepConfig:
    base = dict(prompts_file=_prompts(tmp_path, *h.WORLD_PROMPTS), methods=("sds", "reward-sds"), seeds=(0,),
                out=tmp_path / "sweep", steps=2, workers=1, retries=0, progress=False, prior="unused")
    return SweepConfig(**{**base, **kw})


def _status(out: Path) -> dict[tuple[str, str], str]:
    with Store(out / "sweep.db") as s:
        return {(r.prompt, r.method): r.status for r in s.runs()}


def _spec(prompt="a red circle", method="sds", seed=0) -> RunSpec:
    conf = {"prompt": prompt, "method": method, "seed": seed, "steps": 2}
    return RunSpec(prompt, method, seed, conf, f"runs/{config_hash(conf)[:16]}")


# --- the store alone ------------------------------------------------------------------------------


def test_add_runs_is_idempotent_and_keyed(tmp_path):
    with Store(tmp_path / "s.db") as s:
        a = s.add_runs([_spec(), _spec(seed=1)])
        b = s.add_runs([_spec(seed=1), _spec(), _spec(method="reward-sds")])
        assert b[:2] == [a[1], a[0]] and b[2] not in a
        assert s.counts() == {"pending": 3, "running": 0, "done": 0, "failed": 0}


def test_claim_fail_retry_then_failed(tmp_path):
    with Store(tmp_path / "s.db") as s:
        (i,) = s.add_runs([_spec()])
        me = new_owner()
        assert s.claim([i], me, 60).attempts == 1
        assert s.claim([i], me, 60) is None  # running: nobody else gets it
        assert s.fail(i, "boom 1", retries=1) == "pending"
        assert s.claim([i], me, 60).attempts == 2
        assert s.fail(i, "boom 2", retries=1) == "failed"
        r = s.get(i)
        assert r.status == "failed" and r.error == "boom 2" and r.attempts == 2
        s.rearm([i])  # a new sweep invocation: a fresh budget
        assert s.get(i).status == "pending" and s.get(i).attempts == 0


def test_recover_dead_owner_and_expired_lease_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    me = new_owner()
    host = me.split(":")[0]
    with Store(tmp_path / "s.db") as s:
        ids = s.add_runs([_spec(seed=k) for k in range(4)])
        for i in ids:
            s.claim([i], me, 3600)
        rows = [(f"{host}:{dead}:x", 1e12), (me, 0.0), (me, 1e12), ("otherhost:1:x", 1e12)]
        for i, (owner, lease) in zip(ids, rows):
            s.db.execute("UPDATE runs SET owner=?, lease_until=? WHERE id=?", (owner, lease, i))
        assert s.recover(me) == 2  # the dead local pid and the expired lease
        assert [s.get(i).status for i in ids] == ["pending", "pending", "running", "running"]


def test_metrics_roundtrip(tmp_path):
    with Store(tmp_path / "s.db") as s:
        (i,) = s.add_runs([_spec()])
        s.set_metrics([(i, "judge", 50.0), (i, "world-clip", 27.5)])
        s.set_metrics([(i, "judge", 100.0)])
        assert s.metrics() == {i: {"judge": 100.0, "world-clip": 27.5}}


# --- planning -------------------------------------------------------------------------------------


def test_read_prompts_comments_blank_and_repeats(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("# header\na red circle  # trailing comment\n\n  a blue square \na red circle\n")
    assert read_prompts(p) == ["a red circle", "a blue square"]
    p.write_text("# nothing\n\n")
    with pytest.raises(UserError, match="no prompts"):
        read_prompts(p)
    with pytest.raises(UserError, match="does not exist"):
        read_prompts(tmp_path / "missing.txt")


def test_hash_ignores_out_progress_and_unused_reward_fields(tmp_path):
    from rewardsds.config import GenerateConfig

    a = GenerateConfig(prompt="a red circle", method="sds", steps=300, out=Path("x"), reward="world-clip")
    b = GenerateConfig(prompt="a red circle", method="sds", out=Path("y"), progress=False, reward="aesthetic@h",
                       n_noises=9)
    assert config_hash(canonical_config(a)) == config_hash(canonical_config(b))  # steps 300 is the default
    ra = GenerateConfig(prompt="a red circle", method="reward-sds", reward="world-clip")
    rb = GenerateConfig(prompt="a red circle", method="reward-sds", reward="world-aesthetic")
    assert config_hash(canonical_config(ra)) != config_hash(canonical_config(rb))


def test_plan_is_the_cross_product_and_validates(tmp_path):
    specs = plan(_cfg(tmp_path, seeds=(0, 1)), list(h.WORLD_PROMPTS))
    assert len(specs) == 2 * 2 * 2 and len({s.run_dir for s in specs}) == 8
    with pytest.raises(UserError, match="n.noises"):
        plan(_cfg(tmp_path, n_noises=0), ["a red circle"])
    with pytest.raises(UserError, match="edits an image"):
        plan(_cfg(tmp_path, methods=("dds",)), ["a red circle"])


# --- the driver -----------------------------------------------------------------------------------


def test_rerun_skips_done_runs(tmp_path):
    cfg = _cfg(tmp_path)
    r1 = run_sweep(cfg, h.fake_execute)
    assert (r1["done"], r1["ran"], r1["failed"]) == (4, 4, 0)
    r2 = run_sweep(cfg, h.fake_execute)
    assert (r2["done"], r2["ran"], r2["skipped"]) == (4, 0, 4)
    assert sorted(h.calls_per_run(cfg.out).values()) == [1, 1, 1, 1]
    with Store(cfg.out / "sweep.db") as s:
        for r in s.runs():
            assert (cfg.out / r.run_dir / "summary.json").exists() and r.seconds == 0.01 and r.prior_calls == 2


def test_killed_worker_keeps_completed_runs_and_reruns_only_the_missing(tmp_path):
    cfg = _cfg(tmp_path, workers=2)
    r1 = run_sweep(cfg, h.crash_on_blue)  # both 'blue' runs kill their worker process
    assert (r1["done"], r1["failed"]) == (2, 2)
    st = _status(cfg.out)
    assert {k: v for k, v in st.items() if "blue" in k[0]} == {(h.WORLD_PROMPTS[1], m): "failed"
                                                              for m in ("sds", "reward-sds")}
    with Store(cfg.out / "sweep.db") as s:
        assert all("worker process died" in r.error for r in s.runs("failed"))
    before = h.calls_per_run(cfg.out)
    r2 = run_sweep(cfg, h.fake_execute)
    assert (r2["done"], r2["ran"], r2["skipped"]) == (4, 2, 2)
    after = h.calls_per_run(cfg.out)
    # crashed runs wrote nothing; a healthy run that was in flight when the pool broke may have run
    # twice in the first sweep (the runner re-runs in-flight runs one at a time), never in the second
    assert len(before) == 2 and set(before) < set(after) and len(after) == 4
    assert all(after[k] == before[k] for k in before)  # completed runs were kept, not re-run
    assert all(after[k] == 1 for k in set(after) - set(before))  # only the two missing runs ran again


def test_run_left_running_by_a_killed_driver_is_rerun(tmp_path):
    cfg = _cfg(tmp_path)
    run_sweep(cfg, h.fake_execute)
    with Store(cfg.out / "sweep.db") as s:  # pretend a driver (pid 2**22+1, never alive) died mid-run
        victim = s.runs()[0]
        (cfg.out / victim.run_dir / "summary.json").unlink()  # it never finished
        s.db.execute("UPDATE runs SET status='running', owner=? WHERE id=?",
                     (f"{new_owner().split(':')[0]}:{2**22 + 1}:dead", victim.id))
    r = run_sweep(cfg, h.fake_execute)
    assert (r["done"], r["ran"]) == (4, 1)
    assert h.calls_per_run(cfg.out)[Path(victim.run_dir).name] == 2


def test_summary_written_but_not_recorded_is_adopted_not_rerun(tmp_path):
    cfg = _cfg(tmp_path)
    run_sweep(cfg, h.fake_execute)
    with Store(cfg.out / "sweep.db") as s:  # killed between summary.json and the commit
        victim = s.runs()[0]
        s.db.execute("UPDATE runs SET status='pending' WHERE id=?", (victim.id,))
    from rewardsds.sweep.runner import execute

    assert execute({"run_id": victim.id, "config": victim.config, "run_dir": str(cfg.out / victim.run_dir)}) == \
        {"ok": True, "seconds": 0.01, "prior_calls": 2}


def test_execute_resumes_its_own_checkpoint_and_restarts_over_anything_else(tmp_path, monkeypatch):
    import rewardsds.run2d as run2d
    from rewardsds.checkpoints import CHECKPOINT_NAME
    from rewardsds.sweep.runner import execute

    seen = []

    def fake_run_generate(cfg):
        seen.append((cfg.resume, cfg.overwrite, cfg.threads, cfg.progress, cfg.out))
        return {"seconds": 1.0, "prior_calls": 2}

    monkeypatch.setattr(run2d, "run_generate", fake_run_generate)
    spec = plan(_cfg(tmp_path, methods=("sds",)), ["a red circle"])[0]
    run_dir = tmp_path / "sweep" / spec.run_dir
    run_dir.mkdir(parents=True)
    task = {"run_id": 1, "config": spec.config, "run_dir": str(run_dir)}
    (run_dir / "checkpoint.pt").write_bytes(b"a pickle of an earlier version: never loaded")
    assert execute(task) == {"ok": True, "seconds": 1.0, "prior_calls": 2}
    assert seen[-1] == (False, True, 1, False, run_dir)  # a fresh start over whatever was there
    (run_dir / CHECKPOINT_NAME).write_bytes(b"")
    execute(task)
    assert seen[-1] == (True, False, 1, False, run_dir)  # a killed attempt continues


def test_hash_leaves_out_options_that_do_not_change_the_run(tmp_path):
    from rewardsds.config import GenerateConfig

    base = canonical_config(GenerateConfig(prompt="a red circle", method="sds"))
    other = GenerateConfig(prompt="a red circle", method="sds", overwrite=True, threads=3, allow_unknown_words=True,
                           resume=True, progress=False, out=Path("elsewhere"))
    assert canonical_config(other) == base
    assert not {"threads", "overwrite", "allow_unknown_words", "resume", "out"} & set(base)


def test_done_run_without_summary_is_reopened(tmp_path):
    cfg = _cfg(tmp_path)
    run_sweep(cfg, h.fake_execute)
    with Store(cfg.out / "sweep.db") as s:
        (cfg.out / s.runs()[1].run_dir / "summary.json").unlink()  # someone deleted the result
    assert run_sweep(cfg, h.fake_execute)["ran"] == 1


def test_failed_runs_are_retried_then_recorded_with_the_error(tmp_path):
    cfg = _cfg(tmp_path, retries=2)
    r = run_sweep(cfg, h.fail_on_blue)
    assert (r["done"], r["failed"]) == (2, 2)
    calls = h.calls_per_run(cfg.out)
    with Store(cfg.out / "sweep.db") as s:
        for run in s.runs("failed"):
            assert run.attempts == 3 and "boom: the blue run broke" in run.error
            assert Path(run.run_dir).name not in calls  # fail_on_blue raises before writing anything
        assert {json.dumps(r.config["seed"]) for r in s.runs()} == {"0"}


def test_missing_world_prior_and_bad_workers_are_user_errors(tmp_path, monkeypatch):
    import rewardsds.world.paths as paths

    monkeypatch.setattr(paths, "prior_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(UserError, match="world prior"):
        run_sweep(_cfg(tmp_path, prior="world"))
    with pytest.raises(UserError, match="workers"):
        run_sweep(_cfg(tmp_path, workers=-1), h.fake_execute)


def test_hash_covers_the_content_of_local_weight_folders(tmp_path):
    prior = tmp_path / "my_prior"
    (prior / "unet").mkdir(parents=True)
    weights = prior / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"old weights")

    def hashes():
        return [s.config_hash for s in plan(_cfg(tmp_path, prior=str(prior), methods=("sds",)), ["a red circle"])]

    before = hashes()
    (prior / "training_record.json").write_text("{}")  # bookkeeping beside the weights: same model
    assert hashes() == before
    weights.write_bytes(b"new weights")  # retrained in place: the old runs must not be reused
    assert hashes() != before
    # a hub id (not a local folder) is its own identity
    hub = plan(_cfg(tmp_path, prior="someone/some-model", methods=("sds",)), ["a red circle"])[0]
    assert hub.config["weights"] == ""  # sds loads no reward, and the prior is not local


def test_reward_folders_follow_the_reward_spec(tmp_path):
    from rewardsds.sweep.fingerprint import reward_folders
    from rewardsds.world.paths import aesthetic_dir, clip_dir

    head = tmp_path / "head.pth"
    head.write_bytes(b"x")
    assert reward_folders("world-clip") == [clip_dir()]
    assert reward_folders("0.5*world-clip + 0.5*world-aesthetic") == [clip_dir(), aesthetic_dir()]
    assert reward_folders(f"aesthetic@{head}") == [head]
    assert reward_folders("pickscore") == [] and reward_folders("mod.ule:fn") == []


def test_cli_sweep_exits_nonzero_when_runs_failed(tmp_path, monkeypatch, capsys):
    import rewardsds.sweep.runner as runner
    from rewardsds.cli import main

    real = runner.run_sweep
    monkeypatch.setattr(runner, "run_sweep", lambda cfg: real(cfg, h.fail_on_blue))
    argv = ["sweep", str(_prompts(tmp_path, *h.WORLD_PROMPTS)), "--methods", "sds", "--prior", "unused",
            "--steps", "2", "--workers", "1", "--retries", "0", "--out", str(tmp_path / "sweep"), "--no-progress"]
    assert main(argv) == 1
    assert "1 of 2 runs failed" in capsys.readouterr().err
