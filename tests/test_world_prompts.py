"""The committed world benchmark: its prompt list is the generator's output, and every prompt is judgeable."""

import shutil
import subprocess
from pathlib import Path

import pytest
from _scripts import load_script

from rewardsds.world.judge import parse_prompt
from rewardsds.world.scenes import HELD_OUT

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _generator():
    return load_script("benchmarks/make_world_prompts.py")


def test_committed_prompts_are_the_generators_output():
    gen = _generator()
    assert (BENCH / "world_prompts.txt").read_text() == gen.render(gen.make_prompts(0), 0)
    assert gen.make_prompts(0) == gen.make_prompts(0) and gen.make_prompts(1) != gen.make_prompts(0)


def test_prompts_cover_singles_relations_and_held_out_pairs():
    from rewardsds.sweep.runner import read_prompts

    prompts = read_prompts(BENCH / "world_prompts.txt")
    assert len(prompts) >= 60
    parsed = [parse_prompt(p) for p in prompts]  # every prompt is one the judge can grade
    assert sum(len(p.objects) == 1 for p in parsed) >= 20
    relations = {p.relation for p in parsed if len(p.objects) == 2}
    assert {"left of", "right of", "above", "below"} <= relations
    seen = {(o.colour, o.shape) for p in parsed for o in p.objects}
    assert set(HELD_OUT) <= seen


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_tables_script_parses_and_calls_sweep_eval_report(tmp_path):
    assert subprocess.run(["bash", "-n", str(BENCH / "world_tables.sh")]).returncode == 0
    r = subprocess.run(["bash", str(BENCH / "world_tables.sh"), "--workers", "3"], capture_output=True, text=True,
                       env={"RS": "echo", "PY": "echo", "OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    cmds = [ln.split()[0] for ln in r.stdout.splitlines() if ln and not ln.startswith("reports:")]
    assert cmds.count("eval") == cmds.count("report") == 7 and cmds.count("sweep") >= 15
    assert all("--workers 3" in ln for ln in r.stdout.splitlines() if ln.startswith("sweep"))
    # every table's runs live in one shared folder; the ablations run on every 5th prompt
    assert (tmp_path / "out" / "table5" / "runs").resolve() == (tmp_path / "out" / "runs").resolve()
    n_prompts = len((tmp_path / "out" / "prompts.txt").read_text().splitlines())
    assert n_prompts == 65 and len((tmp_path / "out" / "prompts_ablation.txt").read_text().splitlines()) == 13


def test_categories_follow_the_section_comments():
    cat = load_script("benchmarks/world_by_category.py").categories(BENCH / "world_prompts.txt")
    counts = {c: list(cat.values()).count(c) for c in dict.fromkeys(cat.values())}
    assert counts == {"single objects": 21, "two objects, spatial relations": 32, "held-out colour-shape pairs": 12}
    assert cat["a red circle"] == "single objects"
