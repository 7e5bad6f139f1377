"""The reference a PyTorch user writes by hand: ``torch.nn.Module`` + ``torch.optim.Adam``.

The CNN takes NCHW input (torch's own layout; the data is transposed once, outside the
timing), the LSTM is ``torch.nn.LSTM``. The modules are given the unidl model's initial
weights (Keras layouts converted to torch's) so that both compute the same function; the
harness checks their inference outputs agree before timing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from common import EPSILON, LEARNING_RATE
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))

    def load_keras(self, w):
        _linear(self.fc1, w[0], w[1])
        _linear(self.fc2, w[2], w[3])


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.fc = nn.Linear(32 * 5 * 5, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))

    def load_keras(self, w):
        _conv(self.conv1, w[0], w[1])
        _conv(self.conv2, w[2], w[3])
        # Keras flattens (h, w, c); torch flattens (c, h, w)
        k = w[4].reshape(5, 5, 32, 10).transpose(2, 0, 1, 3).reshape(800, 10)
        _linear(self.fc, k, w[5])


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[0])

    def load_keras(self, w):
        with torch.no_grad():  # Keras gate order i, f, c, o is torch's i, f, g, o
            self.lstm.weight_ih_l0.copy_(torch.from_numpy(w[0].T.copy()))
            self.lstm.weight_hh_l0.copy_(torch.from_numpy(w[1].T.copy()))
            self.lstm.bias_ih_l0.copy_(torch.from_numpy(w[2]))
            self.lstm.bias_hh_l0.zero_()
        _linear(self.fc, w[3], w[4])


def _linear(layer, kernel, bias):
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        layer.bias.copy_(torch.from_numpy(bias))


def _conv(layer, kernel, bias):
    with torch.no_grad():  # (kh, kw, in, out) -> (out, in, kh, kw)
        layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        layer.bias.copy_(torch.from_numpy(bias))


MODELS = {"mlp": MLP, "cnn": CNN, "lstm": LSTMClassifier}


def build(name: str, weights, device: str = "cpu"):
    """The hand-written module with the unidl model's weights, on ``device``, and its
    ``torch.optim.Adam``."""
    model = MODELS[name]()
    model.load_keras(weights)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=EPSILON)
    return model, opt


def host_layout(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` (Keras layout) in the layout a torch user keeps the data in: NCHW for the CNN
    (transposed once, outside any timing), contiguous."""
    if name == "cnn":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def _host(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()  # (no copy on the CPU)


def steps(name: str, weights, x: np.ndarray, y: np.ndarray, device: str = "cpu"):
    """``(train, infer)`` callables of the hand-written torch model (see ``models.unidl_steps``),
    the batch already on ``device``."""
    model, opt = build(name, weights, device)
    xb = torch.from_numpy(host_layout(name, x)).to(device)
    yb = torch.from_numpy(y).to(device)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        model.eval()
        with torch.no_grad():
            return _host(model(xb))

    return train, infer


def loops(name: str, weights, fit_batches, train_batch, eval_batches, device: str = "cpu"):
    """The loops a torch user writes for what ``fit``, ``train_on_batch``, ``evaluate`` and
    ``predict`` do (see ``loop.py``), over pre-made NumPy batches (in :func:`host_layout`)
    converted with ``torch.from_numpy`` each step (then ``.to(device)`` off the CPU). ``fit``
    and ``evaluate`` read the loss and the number of correct predictions every step
    (``.item()``, as a progress display does);
    ``train_on_batch`` is :func:`steps`' train step on a NumPy batch; ``predict``
    concatenates the outputs (``torch.cat``) and returns one NumPy array.

    Returns ``{call: zero-argument callable}``; ``fit`` and ``evaluate`` return ``(mean
    loss, accuracy)``.
    """
    model, opt = build(name, weights, device)
    tob_model, tob_opt = build(name, weights, device)

    def on_device(a):
        t = torch.from_numpy(a)
        return t if device == "cpu" else t.to(device)

    def tensors(xb, yb):
        return on_device(xb), on_device(yb)

    def train_step(module, optimizer, x, y):
        optimizer.zero_grad(set_to_none=True)
        logits = module(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss, logits

    def fit():
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in fit_batches:
            x, y = tensors(xb, yb)
            loss, logits = train_step(model, opt, x, y)
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(yb)
        return loss_sum / seen, correct / seen

    def train_on_batch():
        tob_model.train()
        xb, yb = train_batch
        loss, _ = train_step(tob_model, tob_opt, *tensors(xb, yb))
        return loss.item()

    def evaluate():
        model.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        with torch.no_grad():
            for xb, yb in eval_batches:
                x, y = tensors(xb, yb)
                logits = model(x)
                loss_sum += F.cross_entropy(logits, y).item() * len(yb)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(yb)
        return loss_sum / seen, correct / seen

    def predict():
        model.eval()
        with torch.no_grad():
            outs = [model(on_device(xb)) for xb, _ in eval_batches]
            return _host(torch.cat(outs))

    return {"fit": fit, "train_on_batch": train_on_batch, "evaluate": evaluate,
            "predict": predict}


def dispatch_pair(device: str = "cpu"):
    """A tiny op through unidl and straight through torch (same inputs, on ``device``)."""
    from unidl import ops

    a, b = torch.ones(4, device=device), torch.ones(4, device=device)
    return (lambda: ops.add(a, b)), (lambda: torch.add(a, b))
