"""The pieces of scripts/bench_scale.py, the full-size benchmark of the 2D engine (the script is the
command line: its docstring is the usage text). `common` holds the prompt and presets every phase shares;
`build` builds SD-2.1-base and CLIP shapes from configuration and saves them in diffusers' layout;
`measure` times calls and reads peak memory; `methods` is what is timed (our loop and the official code's
call pattern, and their expected U-Net calls); `phases` are the engine, vsd and generate measurements;
`isolation` runs them (and the build) in child processes; `report` turns the figures into targets,
verdicts and text; `environment` records the machine."""
