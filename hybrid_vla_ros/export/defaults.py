"""Export defaults, importable without torch (the CLI's help shows them)."""

# Lowest opset whose operators every deployed part uses (LayerNorm, attention).
DEFAULT_OPSET = 17
# Largest |onnxruntime - torch| accepted per output when a part is parity-checked.
PARITY_TOLERANCE = 1e-4
