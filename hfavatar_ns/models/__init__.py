"""The HF-Avatar model."""
