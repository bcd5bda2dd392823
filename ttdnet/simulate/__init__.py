"""Synthetic THINGS-EEG2 datasets in the official on-disk formats (``ttdnet simulate``).

Modules, one idea each:

* :mod:`~ttdnet.simulate.names`: seeded pseudo-word concept names;
* :mod:`~ttdnet.simulate.layout`: folder and file naming, ``image_metadata.npy``;
* :mod:`~ttdnet.simulate.images`: procedural stimuli and their JPEG bytes;
* :mod:`~ttdnet.simulate.features`: pixel features that drive the simulated responses;
* :mod:`~ttdnet.simulate.head`: ``standard_1005`` electrodes, spherical head model, dipole gains;
* :mod:`~ttdnet.simulate.spectral`: Gaussian noise with a prescribed spectrum;
* :mod:`~ttdnet.simulate.eeg_model`: the generative EEG model (evoked responses and noise, any rate);
* :mod:`~ttdnet.simulate.epochs`: whitened single trials in the official epoch layout;
* :mod:`~ttdnet.simulate.staging`: build in a hidden folder, move into place, never delete user files;
* :mod:`~ttdnet.simulate.writer`: :func:`~ttdnet.simulate.writer.simulate_dataset`, the command's entry point.

See ``docs/synthetic-data.md``.
"""
