"""Sweeps: the cross product prompts x methods x seeds, run in parallel and resumably.

    rewardsds sweep benchmarks/world_prompts.txt --methods sds reward-sds --seeds 0 1 2 --out out/t1

`config.SweepConfig` is the CLI, `store.Store` the SQLite bookkeeping, `runner.run_sweep` the driver,
`backends` the local or Ray workers it runs on.
"""
