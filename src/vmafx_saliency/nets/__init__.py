"""PyTorch architectures (the ``export``/``train`` extras): torch is imported here."""
