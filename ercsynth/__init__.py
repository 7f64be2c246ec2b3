"""ercsynth: synthesize ERC datasets with an LLM and measure whether they help."""

__version__ = "0.1.0"
