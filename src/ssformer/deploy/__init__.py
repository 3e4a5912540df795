"""Exported CPU inference: ONNX (torch's dynamo exporter) run by ONNX Runtime or OpenVINO.

- :mod:`~ssformer.deploy.optional`: the optional packages (``pip install 'ssformer[deploy]'``);
- :mod:`~ssformer.deploy.sidecar`: the JSON file beside every export (model, input, output
  convention, precision, check, versions, checksums); torch-free;
- :mod:`~ssformer.deploy.convert`: torch -> ONNX, ONNX -> OpenVINO IR, int8 with NNCF;
- :mod:`~ssformer.deploy.check`: the comparison with torch that every export passes;
- :mod:`~ssformer.deploy.sessions`: :class:`~ssformer.deploy.sessions.ExportedModel`, an export
  run by ONNX Runtime or OpenVINO as a model (normalised float32 batch in, logits out);
- :mod:`~ssformer.deploy.runtimes`: ``--runtime torch|onnxruntime|openvino`` for predict, val
  and bench;
- :mod:`~ssformer.deploy.formats`: the export formats, runtimes and precisions, named once;
  torch-free;
- :mod:`~ssformer.deploy.export`: ``ssformer export`` (convert, check, int8, sidecar), with
  :mod:`~ssformer.deploy.calibration` (the int8 calibration images, mask Dice against fp32).

It builds on :mod:`ssformer.models` and :mod:`ssformer.io`; the engine (predict, evaluate) and
the ``export`` command use it; calibration scores masks with the engine's
:func:`~ssformer.engine.evaluate.polyp_probability`.
"""
