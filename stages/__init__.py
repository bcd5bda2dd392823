"""Training stages (encoder pretraining, retrieval, SDXL bridge). Builds on :mod:`ttdnet`."""
