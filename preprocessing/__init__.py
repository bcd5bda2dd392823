"""THINGS-EEG2 raw-to-preprocessed pipeline and EDF/BrainVision pretraining corpora. Builds on :mod:`ttdnet`."""
