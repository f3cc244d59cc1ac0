"""metasplice: meta-models on top of splice predictors, evaluated on SpliceVarDB."""

__version__ = "0.1.0"
