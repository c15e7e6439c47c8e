"""Data: datasets, transforms, heatmap targets."""
