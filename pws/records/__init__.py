"""What every run (classification or detection) leaves behind: metrics.json, checkpoints, wandb logs."""
