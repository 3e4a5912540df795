"""Low-level file and network I/O shared by :mod:`ssformer.models` and :mod:`ssformer.data`.

- :mod:`~ssformer.io.atomic`: atomic writes (temporary file + ``os.replace``);
- :mod:`~ssformer.io.sniff`: what a file's first bytes say it is (HTML page, zip, safetensors);
- :mod:`~ssformer.io.checkpoint_file`: reading a checkpoint file safely (``weights_only=True``);
- :mod:`~ssformer.io.http`: HTTP(S) downloads with ``Range`` resume and retries;
- :mod:`~ssformer.io.drive`: Google Drive through ``gdown``;
- :mod:`~ssformer.io.kaggle`: Kaggle data sets through the ``kaggle`` package;
- :mod:`~ssformer.io.messages`: progress notes on standard error;
- :mod:`~ssformer.io.digest`: SHA-256 of a file.

Nothing here knows a model or a data set.
"""
