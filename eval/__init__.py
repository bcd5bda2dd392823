"""Evaluation metrics and reports for reconstructions and retrieval. Builds on :mod:`ttdnet`."""
