"""Training: the one loop for every task, its jitted steps, the optimizer, checkpoints, metrics
and plots, device meshes, and run configs."""
