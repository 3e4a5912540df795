"""Where the published data sets live: one typed table, no logic (the weights are in
:mod:`ssformer.models.zoo`)."""

from __future__ import annotations

#: Kvasir-SEG (Jha et al., MMM 2020) from Simula; overridable for mirrors and tests.
KVASIR_URL = "https://datasets.simula.no/downloads/kvasir-seg.zip"
KVASIR_URL_ENV = "SSFORMER_KVASIR_URL"
KVASIR_ARCHIVE = "kvasir-seg.zip"

#: CVC-ClinicDB (Bernal et al., 2015) as mirrored on Kaggle; needs Kaggle credentials.
CVC_KAGGLE_DATASET = "balraj98/cvcclinicdb"
CVC_KAGGLE_PAGE = "https://www.kaggle.com/datasets/balraj98/cvcclinicdb"
CVC_ARCHIVE = "cvcclinicdb.zip"

#: The PraNet benchmark (Fan et al., MICCAI 2020) as linked by the SSFormer repository.
PRANET_DRIVE_ID = "1z48bsJftdp4akAlWOziqt6032huYYN9k"
PRANET_URL_ENV = "SSFORMER_PRANET_URL"
PRANET_ARCHIVE = "pranet-benchmark.zip"
