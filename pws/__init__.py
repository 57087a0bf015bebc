"""pws-repro: Parametric Weights Standardization (Liu et al., AAAI 2021) and the experiments of the paper."""

__version__ = "0.1.0"
