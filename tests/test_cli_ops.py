"""``unidl ops``: every op of the spec with its signature, kind and export name."""

from __future__ import annotations

from unidl.cli import main
from unidl.spec import all_specs


def test_ops_lists_every_op_with_its_onnx_name(capsys):
    assert main(["ops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    specs = all_specs()
    assert len(lines) == len(specs)
    by_name = {line.split("(", 1)[0]: line for line in lines}
    for spec in specs:
        onnx = spec.export.get("onnx")
        assert (f"onnx: {onnx}]" in by_name[spec.name]) == bool(onnx), by_name[spec.name]
    assert "onnx: MatMul" in by_name["matmul"]
