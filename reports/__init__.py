"""Tables and figures from finished runs' metrics CSVs: a sweep's learning curves (curves,
`run_sac.py --summarize`) and POGO's offline report (offline, with its figures)."""
