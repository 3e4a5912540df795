"""Exported CPU inference: ONNX (torch's dynamo exporter) run by ONNX Runtime or OpenVINO.

- :mod:`~ssformer.deploy.optional`: the optional packages (``pip install 'ssformer[deploy]'``);
- :mod:`~ssformer.deploy.sidecar`: the JSON file beside every export (model, input, output
  convention, precision, check, versions, checksums); torch-free;
- :mod:`~ssformer.deploy.convert`: torch -> ONNX, ONNX -> OpenVINO IR, int8 with NNCF;
- :mod:`~ssformer.deploy.check`: the comparison with torch that every export passes;
- :mod:`~ssformer.deploy.sessions`: :class:`~ssformer.deploy.sessions.ExportedModel`, an export
  run by ONNX Runtime or OpenVINO as a model (normalised float32 batch in, logits out);
- :mod:`~ssformer.deploy.runtimes`: ``--runtime torch|onnxruntime|openvino`` for predict, val
  and bench.

It builds on :mod:`ssformer.models` and :mod:`ssformer.io`; the engine (predict, evaluate) and
the ``export`` command use it. ``ssformer export`` itself is :mod:`ssformer.engine.export`.
"""
