"""run_sac.py's rooms: the sweep file checked and expanded (config), the training script as a
black box (script), starting and following its processes (launch), this machine's GPUs
(gpus), and what the sweep shows (view). Torch-free: `python run_sac.py --help` imports no torch."""
