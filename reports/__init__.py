"""Tables and figures from finished runs' metrics CSVs: a sweep's learning curves (curves,
`run_sac.py --summarize`), POGO's offline report (offline, with its runs and figures), the
offline-to-online report (finetune), and the statistics they share (statistics, aggregate)."""
