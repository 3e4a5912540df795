"""Backbone weights in the two Hugging Face Hub layouts, built from the original layout the way
the publishers built them (transformers' SegFormer conversion rules; timm's own key layout)."""

from __future__ import annotations

import re

import torch


def original_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An original-layout MiT (``patch_embed1``, ``block1.0``, ``attn.kv``, ``head``) as
    transformers' ``SegformerForImageClassification`` stores it (``nvidia/mit-b*``)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("head."):
            out["classifier." + key[len("head.") :]] = value
            continue
        key = re.sub(r"^patch_embed(\d)", lambda m: f"patch_embeddings.{int(m[1]) - 1}", key)
        key = re.sub(r"^norm(\d)\.", lambda m: f"layer_norm.{int(m[1]) - 1}.", key)
        key = re.sub(r"^block(\d)\.", lambda m: f"block.{int(m[1]) - 1}.", key)
        key = key.replace("norm1.", "layer_norm_1.").replace("norm2.", "layer_norm_2.")
        key = key.replace("attn.q.", "attention.self.query.")
        key = key.replace("attn.proj.", "attention.output.dense.")
        key = key.replace("attn.norm.", "attention.self.layer_norm.")
        key = key.replace("attn.sr.", "attention.self.sr.")
        key = re.sub(r"^(patch_embeddings\.\d)\.norm\.", r"\1.layer_norm.", key)
        key = key.replace("mlp.fc1.", "mlp.dense1.").replace("mlp.fc2.", "mlp.dense2.")
        if ".attn.kv." in key:
            half = value.shape[0] // 2
            base, kind = key.split(".attn.kv.")
            out[f"segformer.encoder.{base}.attention.self.key.{kind}"] = value[:half]
            out[f"segformer.encoder.{base}.attention.self.value.{kind}"] = value[half:]
            continue
        out["segformer.encoder." + key] = value
    return out
