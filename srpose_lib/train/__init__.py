"""Training: losses, loops, checkpoint cache, configs."""
