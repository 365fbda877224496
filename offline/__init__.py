"""Offline data: dataset files read without pickle (readers), transitions normalised and
sampled for train_pogo.py (data), and the episodes make_dataset.py writes (sources)."""
