"""LightningDataModules over Hugging Face ``datasets`` for the flow benchmarks."""
