"""exgan: open closed eyes in photos with Exemplar GANs (Dolhansky & Canton Ferrer, CVPR 2018)."""

__version__ = "0.1.0"
