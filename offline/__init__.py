"""Offline data: dataset files read without pickle (readers), transitions normalised and
sampled (data), the episodes make_dataset.py writes (sources) and how it publishes them
(writing), and train_sac.py's offline side: --dataset, --init-from, --offline-data
(to_online)."""
