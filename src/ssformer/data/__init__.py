"""Data: datasets and the protocol-to-datasets map (:mod:`~ssformer.data.protocols`),
transforms, cache, split, checks, synthetic data, archives and downloads of the data sets.

This package never imports :mod:`ssformer.models`.
"""
