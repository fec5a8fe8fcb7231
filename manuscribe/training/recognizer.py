"""The trainable recogniser: rapidocr's PP-OCR line recogniser (ONNX) as a PyTorch module, and back.

The shipped ONNX graph is converted with onnx2torch, with three repairs the conversion needs:
`SAME_UPPER` padding (three stem nodes, all stride 1 with 2x2 kernels, so an explicit end pad of one
pixel is exact), the final softmax removed (CTC wants logits), and weights that come through as
buffers turned into parameters. The output layer is cut to the characters a collection uses, plus
any it lacks, so training and inference skip the 18,710-way softmax of the Chinese base model.

A horizontal stretch is part of the model: handwriting gives the base model only about one output
frame per character, too few for CTC, so the line image is widened inside the network. The exported
ONNX file carries the stretch, the softmax and its character list (rapidocr's `character` metadata),
so stock rapidocr reads it as it reads its own model, and no caller needs to know.
"""

from __future__ import annotations

import sys
import types
import unicodedata
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn
from torch.nn import functional as F

BLANK = 0  # CTC blank, as rapidocr decodes it; the last class is the space


def import_onnx2torch():
    """onnx2torch imports torchvision for two detection ops this graph does not have; PyPI's
    torchvision does not load beside the CPU torch build, so stand in for it when it is absent."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to load means: not usable here
        stub = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")

        def _missing(*_args, **_kwargs):
            raise NotImplementedError("torchvision is not installed (needed for NMS/RoiAlign)")

        ops.nms = ops.box_convert = ops.roi_align = _missing
        stub.ops = ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
    from onnx2torch import convert
    from onnx2torch.utils import common

    # onnx2torch asks `torch.onnx.symbolic_helper` for the export's opset; once torchvision has
    # imported torch's backward-compatibility module of that name (torch 2.14), the name lacks
    # GLOBALS and exporting a converted Shape fails: point it at the exporter's own module
    if not hasattr(common.symbolic_helper, "GLOBALS"):
        try:
            from torch.onnx._internal.torchscript_exporter import symbolic_helper
        except ImportError:  # an older torch: nothing to repair
            pass
        else:
            common.symbolic_helper = symbolic_helper
    return convert


def base_model_path() -> Path:
    """The recogniser rapidocr ships (PP-OCRv6 small, Apache-2.0)."""
    import rapidocr

    return Path(rapidocr.__file__).parent / "models" / "PP-OCRv6_rec_small.onnx"


def onnx_charset(model: onnx.ModelProto) -> list[str]:
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise ValueError("the ONNX model has no `character` metadata (not a PP-OCR recogniser?)")
    return meta["character"].splitlines()


def onnx_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def text_units(text: str) -> list[str]:
    """Characters as the recogniser emits them: NFC code points."""
    return list(unicodedata.normalize("NFC", text))


def _head(graph: onnx.GraphProto) -> tuple[onnx.TensorProto, onnx.TensorProto]:
    """The output layer's weight [hidden, classes] and bias [classes] (the last MatMul and Add)."""
    inits = {t.name: t for t in graph.initializer}
    matmul = next(n for n in reversed(graph.node) if n.op_type == "MatMul")
    add = next(n for n in reversed(graph.node) if n.op_type == "Add")
    weight = next(inits[name] for name in matmul.input if name in inits)
    bias = next(inits[name] for name in add.input if name in inits)
    return weight, bias


def _seed_row(char: str, old_index: dict[str, int]) -> int | None:
    """For a character the model lacks, the class of its base letter (é -> e), if it has one."""
    base = unicodedata.normalize("NFD", char)[0]
    return old_index.get(base) if base != char else None


def remap_head(
    weight: np.ndarray, bias: np.ndarray, old_classes: list[str], new_classes: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An output layer ([hidden, classes] and [classes]) for `new_classes`: known columns kept,
    new ones seeded from their base letter (é from e) or small noise with the lowest bias.
    Returns the weight, the bias and the classes that were new."""
    old_index = {c: i for i, c in enumerate(old_classes)}
    rng = np.random.default_rng(0)
    columns, biases, added = [], [], []
    for char in new_classes:
        row = old_index.get(char)
        if row is None:
            added.append(char)
            row = _seed_row(char, old_index)
        if row is None:
            columns.append(rng.normal(0, 0.02, weight.shape[0]).astype(weight.dtype))
            biases.append(bias.min())
        else:
            columns.append(weight[:, row])
            biases.append(bias[row])
    return np.stack(columns, axis=1), np.asarray(biases, dtype=bias.dtype), added


def prepare_graph(
    model: onnx.ModelProto, charset: list[str]
) -> tuple[onnx.ModelProto, dict[str, list[str]]]:
    """A copy of a PP-OCR recogniser ready to convert: explicit pads, logits out, and an output
    layer for `charset` (kept rows copied, new rows seeded from their base letter or small noise).
    Returns the model and what happened to the characters ({"kept", "added", "dropped"})."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for node in graph.node:
        for attr in list(node.attribute):
            if attr.name == "auto_pad" and attr.s == b"SAME_UPPER":
                kernel = next(a.ints for a in node.attribute if a.name == "kernel_shape")
                strides = next((a.ints for a in node.attribute if a.name == "strides"), [1, 1])
                if list(strides) != [1, 1] or list(kernel) != [2, 2]:
                    raise ValueError(f"{node.name}: SAME_UPPER with {kernel}/{strides} unsupported")
                node.attribute.remove(attr)
                node.attribute.append(helper.make_attribute("pads", [0, 0, 1, 1]))
    if graph.node[-1].op_type == "Softmax":
        softmax = graph.node[-1]
        graph.node.remove(softmax)
        for node in graph.node:
            node.output[:] = [
                softmax.output[0] if o == softmax.input[0] else o for o in node.output
            ]
    old = onnx_charset(model)
    old_classes = ["<blank>", *old, " "]
    old_index = {c: i for i, c in enumerate(old_classes)}
    weight_t, bias_t = _head(graph)
    weight, bias = numpy_helper.to_array(weight_t), numpy_helper.to_array(bias_t)
    if weight.shape[1] != len(old_classes):
        raise ValueError(f"head has {weight.shape[1]} classes, charset {len(old_classes)}")
    new_classes = ["<blank>", *charset, " "]
    new_weight, new_bias, added = remap_head(weight, bias, old_classes, new_classes)
    weight_t.CopyFrom(numpy_helper.from_array(new_weight, weight_t.name))
    bias_t.CopyFrom(numpy_helper.from_array(new_bias, bias_t.name))
    del graph.value_info[:]
    out = graph.output[0].type.tensor_type.shape.dim
    out[-1].Clear()
    out[-1].dim_value = len(new_classes)
    set_metadata(model, {"character": "\n".join(charset)})
    kept = [c for c in charset if c in old_index]
    dropped = sorted(set(old) - set(charset))
    return model, {"kept": kept, "added": added, "dropped": dropped}


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        if key in existing:
            existing[key].value = value
        else:
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


class LineRecognizer(nn.Module):
    """Stretch -> PP-OCR body -> logits [N, T, classes]; `probabilities` adds the softmax."""

    def __init__(self, body: nn.Module, charset: list[str], stretch: float, meta: dict[str, str]):
        super().__init__()
        self.body = body
        self.charset = charset
        self.stretch = stretch
        self.meta = meta
        self.probabilities = False

    @property
    def classes(self) -> list[str]:
        return ["<blank>", *self.charset, " "]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stretch != 1.0:
            x = F.interpolate(x, scale_factor=(1.0, self.stretch), mode="bilinear")
        logits = self.body(x)
        return logits.softmax(-1) if self.probabilities else logits


def _buffers_to_parameters(module: nn.Module) -> None:
    """onnx2torch stores some weights (the MatMul ones, the head too) as buffers: make them
    trainable. BatchNorm statistics stay buffers."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            continue
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.numel() > 1:
                delattr(sub, name)
                sub.register_parameter(name, nn.Parameter(buffer.detach().clone()))


def load_recognizer(
    path: Path | None = None, charset: list[str] | None = None, stretch: float | None = None
) -> tuple[LineRecognizer, dict[str, list[str]]]:
    """A trainable recogniser from a PP-OCR ONNX file: rapidocr's, or one of ours. `charset`
    resizes its output layer; `stretch` defaults to the one the model carries (1.0 for rapidocr's).

    One of our models is rebuilt on rapidocr's graph and its weights are loaded by name: converting
    our exported graph again would bake the example's sequence length into its reshapes."""
    model = onnx.load(str(path or base_model_path()))
    meta = onnx_metadata(model)
    if "manuscribe_stretch" in meta:
        own = onnx_charset(model)
        recognizer, _ = load_recognizer(None, own, float(meta["manuscribe_stretch"]))
        _load_weights(recognizer, model, path)
        recognizer.meta = meta
        report = {"kept": own, "added": [], "dropped": []}
        if charset is not None and charset != own:
            report = _resize_head(recognizer, charset)
        if stretch:
            recognizer.stretch = stretch
        return recognizer, report
    charset = charset if charset is not None else onnx_charset(model)
    prepared, report = prepare_graph(model, charset)
    body = import_onnx2torch()(prepared)
    _buffers_to_parameters(body)
    recognizer = LineRecognizer(body, charset, stretch or 1.0, meta)
    return recognizer.train(), report


def _load_weights(recognizer: LineRecognizer, model: onnx.ModelProto, path: Path | None) -> None:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    state = recognizer.state_dict()
    # every weight and normalisation statistic must be there; shape constants are the base's
    weights = {name for name, _ in recognizer.named_parameters()}
    missing = [k for k in state if k not in values and (k in weights or "running_" in k)]
    if missing:
        raise ValueError(f"{path}: not a model this version can train on ({len(missing)} weights "
                         f"missing, e.g. {missing[0]})")  # fmt: skip
    loaded = {k: torch.from_numpy(values[k].copy()).to(v.dtype) if k in values else v
              for k, v in state.items()}  # fmt: skip
    recognizer.load_state_dict(loaded)


def _resize_head(recognizer: LineRecognizer, charset: list[str]) -> dict[str, list[str]]:
    """Give the output layer one row per class of `charset`: known rows kept, new ones seeded
    from their base letter (or small noise, with a low bias)."""
    old = set(recognizer.classes)
    new_classes = ["<blank>", *charset, " "]
    count = len(recognizer.classes)
    # the head is the graph's last MatMul and Add: the last parameters of these shapes
    weight = [p for p in recognizer.parameters() if p.dim() == 2 and p.shape[1] == count][-1]
    bias = [p for p in recognizer.parameters() if p.dim() == 1 and p.shape[0] == count][-1]
    new_weight, new_bias, added = remap_head(
        weight.detach().numpy(), bias.detach().numpy(), recognizer.classes, new_classes
    )
    weight.data, bias.data = torch.from_numpy(new_weight), torch.from_numpy(new_bias)
    recognizer.charset = list(charset)
    kept = [c for c in charset if c in old]
    return {"kept": kept, "added": added, "dropped": sorted(set(old) - set(new_classes))}


def export_onnx(recognizer: LineRecognizer, path: Path, metadata: dict[str, str]) -> Path:
    """Write an ONNX file stock rapidocr loads: stretch and softmax inside, charset in metadata."""
    recognizer = recognizer.eval()
    recognizer.probabilities = True
    example = torch.zeros(1, 3, 48, 320)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.onnx.export(
            recognizer,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["fetch_name_0"],
            dynamic_axes={"x": {0: "batch", 3: "width"}, "fetch_name_0": {0: "batch", 1: "time"}},
            opset_version=17,
            dynamo=False,
            # no constant folding: every weight keeps its parameter's name (Conv+BN stay
            # separate), which is how a model of ours is loaded again for more training
            do_constant_folding=False,
        )
    finally:
        recognizer.probabilities = False
    model = onnx.load(str(path))
    values = {
        "character": "\n".join(recognizer.charset),
        "manuscribe_stretch": f"{recognizer.stretch:g}",
        **metadata,
    }
    set_metadata(model, values)
    onnx.save(model, str(path))
    return path
