"""The pieces of benchmarks/relations_diagnosis.py (the command-line entry point), one job per module:
measures (pure helpers), judged (the judge's verdict on an image), prior (section 1), runs (the instrumented
distillation runs, sections 2-4), renders (section 3b), stats (aggregation over runs) and report (tables and
the runs' report)."""
