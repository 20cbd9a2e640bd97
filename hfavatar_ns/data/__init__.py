"""Data plumbing between the dataparser and the model."""
