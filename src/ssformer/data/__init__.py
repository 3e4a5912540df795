"""Data: download, layout, split, datasets, transforms, cache and synthetic data."""
