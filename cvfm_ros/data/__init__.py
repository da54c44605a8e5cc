"""Data: bags, drive simulation pieces and dataset loaders."""
