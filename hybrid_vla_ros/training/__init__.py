"""Training: e2e, staged and hybrid strategies over rosbag2 datasets, checkpoints, DDP.

``hybrid-vla train --config config/train/NAME.yaml --data DIR... --out DIR``; see
`trainer.train` and docs/training.md.
"""
