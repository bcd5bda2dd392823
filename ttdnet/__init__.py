"""ttdnet: EEG-to-image toolkit for THINGS-EEG2.

The core package holds the models, the data layer, configuration and the command line.
``ttdnet.stages``, ``ttdnet.eval`` and ``ttdnet.preprocessing`` build on it; the core imports none of them.
"""

__version__ = "0.1.0"
