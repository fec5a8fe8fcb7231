"""Where the recogniser is cut for training: a frozen front part and a trainable tail.

The converted PP-OCR recogniser is one fx graph: PP-HGNet backbone (a stem, then stages that
halve the height with a stride-(2, 1) depthwise convolution and keep the horizontal resolution
CTC needs), its final average pooling, the SVTR neck and the CTC head. Training cuts it where a
single tensor flows from one part into the next: at the pooling (`trainable_stages=0`: neck and
head train), or at the input of the backbone's last N stages (`trainable_stages=N`: those stages
train too). In PP-OCRv6 small there are two such stages: the last (384 channels at 1/16 of the
line height, ~1.49 M weights) and the one before it (192 channels at 1/8, ~1.01 M).

On a CPU the frozen front part runs in onnxruntime (`OnnxBackbone`), about three times faster
than the converted PyTorch graph, and only the tail runs in PyTorch (`tail_module`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from manuscribe.training.recognizer import LineRecognizer


def _pool_node(body: torch.fx.GraphModule) -> torch.fx.Node:
    """The backbone's last node: its final average pooling (PP-HGNet), before the SVTR neck."""
    for node in body.graph.nodes:
        if node.op == "call_module" and isinstance(body.get_submodule(node.target), nn.AvgPool2d):
            return node
    raise ValueError("no average pooling in the recogniser: not a PP-OCR rec graph")


def _single_tensor_cuts(body: torch.fx.GraphModule) -> set[torch.fx.Node]:
    """Nodes after which their own output is the only value still needed (constants aside)."""
    nodes = list(body.graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    last_use = {node: max((position[u] for u in node.users), default=-1) for node in nodes}
    cuts, live = set(), set()
    for i, node in enumerate(nodes):
        if node.op != "get_attr":
            live.add(node)
        live = {n for n in live if last_use[n] > i}
        if live == {node}:
            cuts.add(node)
    return cuts


def stage_inputs(body: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """The single tensors entering the backbone's downsampling stages, first to last: the input
    of each stride-(2, 1) convolution before the pooling (the stem's stride-2 ones halve the
    width too and are not stage boundaries)."""
    pool, cuts, inputs = _pool_node(body), _single_tensor_cuts(body), []
    for node in body.graph.nodes:
        if node is pool:
            break
        module = body.get_submodule(node.target) if node.op == "call_module" else None
        downsamples = isinstance(module, nn.Conv2d) and tuple(module.stride[:2]) == (2, 1)
        if downsamples and node.args[0] in cuts:
            inputs.append(node.args[0])
    return inputs


def split_node(body: torch.fx.GraphModule, trainable_stages: int = 0) -> torch.fx.Node:
    """The last frozen node: the pooling, or the input of the last `trainable_stages` stages."""
    if trainable_stages <= 0:
        return _pool_node(body)
    stages = stage_inputs(body)
    if trainable_stages > len(stages):
        message = f"trainable_stages={trainable_stages}: the backbone has {len(stages)} stages"
        raise ValueError(message + " to split off (freeze='none' trains all of it)")
    return stages[-trainable_stages]


def _front_nodes(body: torch.fx.GraphModule, trainable_stages: int) -> list[torch.fx.Node]:
    split, nodes = split_node(body, trainable_stages), []
    for node in body.graph.nodes:
        nodes.append(node)
        if node is split:
            return nodes
    raise AssertionError("split node not in the graph")


def front_modules(recognizer: LineRecognizer, trainable_stages: int = 0) -> list[str]:
    """Names of the modules of the frozen front part (up to and including the split node)."""
    nodes = _front_nodes(recognizer.body, trainable_stages)
    return [str(node.target) for node in nodes if node.op == "call_module"]


def backbone_modules(recognizer: LineRecognizer) -> list[str]:
    """Names of the modules up to and including the backbone's final pooling."""
    return front_modules(recognizer, 0)


def freeze_front(recognizer: LineRecognizer, trainable_stages: int = 0) -> list[str]:
    """Freeze the front part: its modules and the graph constants only it reads (the backbone's
    biases are such constants: its BatchNorms are folded into Conv + Add). Returns the frozen
    module names."""
    body = recognizer.body
    front = _front_nodes(body, trainable_stages)
    inside = set(front)
    names = [str(node.target) for node in front if node.op == "call_module"]
    for name in names:
        for param in body.get_submodule(name).parameters():
            param.requires_grad_(False)
    params = dict(body.named_parameters())
    for node in body.graph.nodes:
        only_front = node.users and all(user in inside for user in node.users)
        if node.op == "get_attr" and only_front and node.target in params:
            params[node.target].requires_grad_(False)
    return names


def _subgraph(body: torch.fx.GraphModule, nodes, start=None) -> tuple[torch.fx.Graph, dict]:
    """A graph of `nodes` (in order); `start`, if given, becomes its input `features`. Constants
    the nodes read are copied over as they are needed."""
    graph, env = torch.fx.Graph(), {}

    def copied(node: torch.fx.Node) -> torch.fx.Node:
        if node not in env:
            if node.op == "placeholder" and start is not None:
                raise ValueError("the recogniser's tail reads its input image directly")
            env[node] = graph.node_copy(node, copied)
        return env[node]

    if start is not None:
        env[start] = graph.placeholder("features")
    for node in nodes:
        copied(node)
    return graph, env


def tail_module(recognizer: LineRecognizer, trainable_stages: int = 0) -> torch.fx.GraphModule:
    """The part after the split as its own module, sharing parameters with `recognizer`: input
    the split node's output (pooled features [N, C, 1, T] for `trainable_stages=0`), output
    logits [N, T, classes]."""
    body = recognizer.body
    split = split_node(body, trainable_stages)
    nodes = list(body.graph.nodes)
    graph, _ = _subgraph(body, nodes[nodes.index(split) + 1 :], start=split)
    return torch.fx.GraphModule(body, graph)


def neck_and_head(recognizer: LineRecognizer) -> torch.fx.GraphModule:
    """The part after the backbone: input the pooled features, output logits."""
    return tail_module(recognizer, 0)


class FrontModule(nn.Module):
    """Stretch -> the body up to the split node; sharing parameters with the recogniser."""

    def __init__(self, recognizer: LineRecognizer, trainable_stages: int = 0):
        super().__init__()
        body = recognizer.body
        front = _front_nodes(body, trainable_stages)
        graph, env = _subgraph(body, front)
        graph.output(env[front[-1]])
        self.body = torch.fx.GraphModule(body, graph)
        self.stretch = recognizer.stretch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stretch != 1.0:  # as LineRecognizer.forward
            x = F.interpolate(x, scale_factor=(1.0, self.stretch), mode="bilinear")
        return self.body(x)


class OnnxBackbone:
    """The frozen front part (stretch included) run by onnxruntime: on a CPU about three times
    faster than the converted PyTorch graph, which is what makes CPU fine-tuning practical. It is
    a snapshot: build it again when the front's weights change (a checkpoint loaded)."""

    def __init__(self, recognizer: LineRecognizer, threads: int = 0, trainable_stages: int = 0):
        import onnxruntime as ort

        front, was_training = FrontModule(recognizer, trainable_stages).eval(), recognizer.training
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "front.onnx"
            torch.onnx.export(
                front,
                (torch.zeros(1, 3, 48, 320),),
                str(path),
                input_names=["x"],
                output_names=["features"],
                dynamic_axes={"x": {0: "batch", 3: "width"}, "features": {0: "batch", 3: "width"}},
                opset_version=17,
                dynamo=False,
            )
            options = ort.SessionOptions()
            if threads > 0:
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        recognizer.train(was_training)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"x": batch.numpy()})[0])
