"""The harness both training scripts share: flags, paths and resume rules (run_setup), a run's
outputs and checkpoints (experiment), evaluation episodes (evaluation) and the Trainer
skeleton (trainer). Importing this package imports no torch."""
