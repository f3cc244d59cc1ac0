"""SpliceAI / OpenSpliceAI base models in PyTorch and CLI-identical delta scoring."""
