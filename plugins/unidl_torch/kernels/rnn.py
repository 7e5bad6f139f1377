"""PyTorch recurrent kernels: ``lstm`` and ``gru`` through torch's fused ops (``torch.lstm``,
``torch.gru``, the kernels behind ``nn.LSTM`` and ``nn.GRU``).

torch orders the LSTM gates ``i, f, g, o`` like Keras and keeps its weights transposed
(``(4u, features)``); it has two biases, so the second one is zeros. torch's GRU is Keras's
``reset_after=True`` GRU with the gates in the order ``r, z, n`` (Keras: ``z, r, h``), so the
kernel reorders the weights' gate blocks; its two biases are Keras's two rows. A
``reset_after=False`` GRU has no torch kernel and runs the spec's composite. torch's autograd
differentiates all of them.

Inside ``torch.compile`` (``compile(jit_compile=True)``) both run the spec's composite: torch
2.13's inductor cannot compile the CPU LSTM it decomposes ``torch.lstm`` into ("expected
Tensor() for op: aten.mkldnn_rnn_layer"), and the composite compiles into the same loop.
"""

import torch

from unidl.spec.gru import gru_composite


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _packed(params, x):
    """The weights as torch's fused RNN takes them: contiguous off the CPU, where cuDNN
    packs them into one buffer and rejects the transposed views the CPU kernel takes."""
    return params if x.device.type == "cpu" else [p.contiguous() for p in params]


def lstm(x, h0, c0, kernel, recurrent_kernel, bias=None):
    if _compiling():
        from unidl.spec.core import get_spec

        return get_spec("lstm").impl(x, h0, c0, kernel, recurrent_kernel, bias)
    params = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    # ``train`` only matters with dropout (none here) and for cuDNN, whose backward needs the
    # buffers of a training-mode forward
    train = torch.is_grad_enabled()
    outputs, h, c = torch.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), _packed(params, x),
                               bias is not None, 1, 0.0, train, False, True)
    return outputs, h.squeeze(0), c.squeeze(0)


def _torch_gate_order(w, units):
    """Keras's gate blocks ``z, r, h`` along the last axis in torch's order ``r, z, n``."""
    return torch.cat((w[..., units:2 * units], w[..., :units], w[..., 2 * units:]), dim=-1)


def gru(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    if not reset_after or _compiling():
        return gru_composite(x, h0, kernel, recurrent_kernel, bias, reset_after)
    units = recurrent_kernel.shape[0]
    params = [_torch_gate_order(kernel, units).t(), _torch_gate_order(recurrent_kernel, units).t()]
    if bias is not None:
        params += list(_torch_gate_order(bias, units).unbind(0))
    # as for lstm: ``train`` matters only for cuDNN, whose backward needs a training forward
    train = torch.is_grad_enabled()
    outputs, h = torch.gru(x, h0.unsqueeze(0), _packed(params, x), bias is not None, 1, 0.0,
                           train, False, True)
    return outputs, h.squeeze(0)


KERNELS = {
    "lstm": lstm,
    "gru": gru,
}
