"""One self-contained HTML page about a sweep: `html.run_report` (charts in `svg`).

    rewardsds report out/sweep --out report.html
"""
