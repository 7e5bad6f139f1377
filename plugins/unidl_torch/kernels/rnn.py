"""PyTorch recurrent kernels: ``lstm`` through torch's fused LSTM (``torch.lstm``).

torch orders the gates ``i, f, g, o`` like Keras and keeps its weights transposed
(``(4u, features)``); it has two biases, so the second one is zeros. torch's autograd
differentiates the fused op.
"""

import torch


def lstm(x, h0, c0, kernel, recurrent_kernel, bias=None):
    params = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    # ``train`` only matters with dropout (none here) and for cuDNN, whose backward needs the
    # buffers of a training-mode forward
    train = torch.is_grad_enabled()
    outputs, h, c = torch.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), params, bias is not None,
                               1, 0.0, train, False, True)
    return outputs, h.squeeze(0), c.squeeze(0)


KERNELS = {
    "lstm": lstm,
}
