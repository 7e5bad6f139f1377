"""Pictures (unidl.utils): training curves, model graphs (graphviz or the pure-Python
layered layout), confusion matrices; valid PNG/SVG files of a sensible size, atomic writes,
clear errors, and matplotlib never imported by ``import unidl``. One backend (NumPy)."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import unidl
from tests.conftest import ROOT, run_python
from unidl import layers
from unidl.utils import MissingDependencyError, PlotError, plot_history, plot_model
from unidl.utils.layout import assign_ranks, count_crossings, layered_layout
from unidl.utils.model_graph import SUBCLASSED_NOTE, model_graph
from unidl.utils.png import decode_png, encode_png, png_info

SVG = "{http://www.w3.org/2000/svg}"
needs_matplotlib = pytest.mark.skipif(
    not unidl.utils._common.matplotlib_available(), reason="matplotlib is not installed")


@pytest.fixture(autouse=True)
def numpy_backend():
    with unidl.use_backend("numpy"):
        yield


# -- the models the issue names ---------------------------------------------------------------
def mlp():
    """The seed's MLP on 28x28 images."""
    return unidl.Sequential([
        layers.Flatten(input_shape=(28, 28), name="flatten"),
        layers.Dense(128, activation="relu", name="hidden"),
        layers.Dropout(0.2, name="dropout"),
        layers.Dense(10, activation="softmax", name="probabilities"),
    ], name="mlp")


def cnn():
    return unidl.Sequential([
        layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1), name="conv"),
        layers.BatchNormalization(name="batch_norm"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, activation="softmax", name="probabilities"),
    ], name="cnn")


def two_inputs():
    """Two inputs, a merge, a nested model and two outputs."""
    a = unidl.Input((8,), name="features")
    b = unidl.Input((4,), name="extra")
    projected = layers.Dense(8, name="proj")(b)
    merged = layers.Concatenate(name="merge")([a, projected])
    block = unidl.Sequential([layers.Dense(6, input_shape=(16,)), layers.Dense(6)],
                             name="block")
    score = layers.Dense(1, name="score")(block(merged))
    kind = layers.Dense(3, activation="softmax", name="kind")(merged)
    return unidl.Model([a, b], [score, kind], name="two_inputs")


# -- checking files ----------------------------------------------------------------------------
def check_png(path, min_side=60, max_side=4000):
    """A valid PNG of a sensible size with real content; returns (width, height)."""
    data = open(path, "rb").read()
    info = png_info(data)
    assert min_side <= info.width <= max_side and min_side <= info.height <= max_side, info
    try:
        pixels = decode_png(data)
    except ValueError:  # a PNG kind decode_png does not read (16-bit, interlaced): graphviz's
        from matplotlib.image import imread

        pixels = (imread(path) * 255).round().astype(np.uint8)
    rgb = pixels[..., :3].reshape(-1, 3) if pixels.ndim == 3 else pixels.reshape(-1, 1)
    assert len(np.unique(rgb, axis=0)) > 8, "a single colour (or nearly)"
    ink = np.mean(rgb.min(axis=1) < 200)  # not white
    assert 0.005 < ink < 0.8, ink
    return info.width, info.height


def check_svg(path, names):
    root = ET.parse(path).getroot()  # well-formed XML
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) > 50 and float(root.get("height")) > 50
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for name in names:
        assert name in text, (name, text)
    return root


def no_leftovers(directory):
    assert not [f for f in os.listdir(directory) if f.startswith(".unidl-tmp-")]


# -- plot_model ---------------------------------------------------------------------------------
@needs_matplotlib
@pytest.mark.parametrize("make, names", [
    (mlp, ["flatten", "hidden", "dropout", "probabilities"]),
    (cnn, ["conv", "batch_norm", "pool", "flatten", "probabilities"]),
])
def test_plot_model_png_and_svg_python_layout(make, names, tmp_path):
    model = make()
    png = plot_model(model, tmp_path / "model.png", engine="python")
    width, height = check_png(png)
    assert height > width  # a chain, top to bottom
    svg = plot_model(model, tmp_path / "model.svg", engine="python")
    root = check_svg(svg, names + ["(None, 10)", "InputLayer"])
    assert len(list(root.iter(f"{SVG}polygon"))) == len(names)  # one arrow per layer
    no_leftovers(tmp_path)


@needs_matplotlib
def test_plot_model_default_engine_writes_the_mlp_and_cnn(tmp_path):
    """The must-show: with whichever engine is available, PNGs of both models."""
    for name, make in (("mlp", mlp), ("cnn", cnn)):
        check_png(plot_model(make(), tmp_path / f"{name}.png"))


@needs_matplotlib
def test_plot_model_dpi_scales_the_png(tmp_path):
    model = mlp()
    w1, h1 = check_png(plot_model(model, tmp_path / "a.png", engine="python"))
    w2, h2 = check_png(plot_model(model, tmp_path / "b.png", engine="python", dpi=192))
    assert abs(w2 - 2 * w1) <= 2 and abs(h2 - 2 * h1) <= 2


def test_functional_graph_with_two_inputs_a_merge_and_a_nested_model(tmp_path):
    model = two_inputs()
    graph = model_graph(model)
    names = [n.name for n in graph.nodes]
    assert names == ["features", "extra", "proj", "merge", "block", "score", "kind"]
    index = {n: i for i, n in enumerate(names)}
    assert sorted(graph.edges) == sorted([
        (index["extra"], index["proj"]), (index["features"], index["merge"]),
        (index["proj"], index["merge"]), (index["merge"], index["block"]),
        (index["block"], index["score"]), (index["merge"], index["kind"])])
    merge = graph.nodes[index["merge"]]
    assert merge.input_shapes == [(None, 8), (None, 8)] and merge.output_shapes == [(None, 16)]
    assert graph.nodes[index["block"]].kind == "model"

    svg = plot_model(model, tmp_path / "graph.svg", engine="python", show_dtype=True)
    root = check_svg(svg, names + ["(None, 16)", "float32", "2 layers"])
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert len(list(root.iter(f"{SVG}path"))) == len(graph.edges)

    def box(name):
        rect = groups[f"node-{name}"].find(f"{SVG}rect")
        return {k: float(rect.get(k)) for k in ("x", "y", "width", "height")}

    for u, v in graph.edges:  # top to bottom: every edge points down
        assert box(names[u])["y"] + box(names[u])["height"] < box(names[v])["y"]
    # the nested model is one double-bordered box
    assert len(groups["node-block"].findall(f"{SVG}rect")) == 2


@needs_matplotlib
@pytest.mark.parametrize("rankdir", ["LR", "BT", "RL"])
def test_plot_model_directions(rankdir, tmp_path):
    model = two_inputs()
    width, height = check_png(plot_model(model, tmp_path / "g.png", rankdir=rankdir,
                                         engine="python"))
    assert (width > height) == (rankdir in ("LR", "RL"))
    root = check_svg(plot_model(model, tmp_path / "g.svg", rankdir=rankdir, engine="python"),
                     ["merge"])
    boxes = {g.get("id")[5:]: g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")}
    x = {k: float(r.get("x")) for k, r in boxes.items()}
    y = {k: float(r.get("y")) for k, r in boxes.items()}
    axis, sign = {"LR": (x, 1), "RL": (x, -1), "BT": (y, -1)}[rankdir]
    assert sign * (axis["merge"] - axis["proj"]) > 0 and sign * (axis["score"] - axis["block"]) > 0


def test_subclassed_model_shows_its_layers_in_order_with_a_note(tmp_path):
    class Net(unidl.Model):
        def __init__(self):
            super().__init__(name="net")
            self.encoder = layers.Dense(8, activation="relu", name="encoder")
            self.head = layers.Dense(2, name="head")

        def call(self, x, training=None):
            return self.head(self.encoder(x))

    model = Net()
    with pytest.raises(PlotError, match="call it on a batch"):
        plot_model(model, tmp_path / "net.svg")
    model(np.zeros((2, 5), "float32"))
    graph = model_graph(model)
    assert [n.name for n in graph.nodes] == ["encoder", "head"] and graph.dashed
    root = check_svg(plot_model(model, tmp_path / "net.svg", engine="python"),
                     ["encoder (Dense)", "head (Dense)", SUBCLASSED_NOTE])
    assert all(p.get("stroke-dasharray") for p in root.iter(f"{SVG}path"))


def test_unbuilt_sequential_says_to_call_it_on_a_batch(tmp_path):
    model = unidl.Sequential([layers.Dense(4), layers.Dense(1)], name="later")
    with pytest.raises(PlotError, match=r"'later'.*not built.*call it on a batch"):
        plot_model(model, tmp_path / "m.svg")
    assert not os.listdir(tmp_path)


def test_plot_model_rejects_unknown_extensions_and_options(tmp_path):
    model = mlp()
    with pytest.raises(PlotError, match=r"'\.jpg'.*\.png or \.svg"):
        plot_model(model, tmp_path / "m.jpg")
    with pytest.raises(PlotError, match="no extension"):
        plot_model(model, tmp_path / "m")
    with pytest.raises(PlotError, match="rankdir must be one of TB, LR, BT, RL"):
        plot_model(model, tmp_path / "m.svg", rankdir="XY")
    with pytest.raises(PlotError, match="engine must be one of"):
        plot_model(model, tmp_path / "m.svg", engine="cairo")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_model(model, tmp_path / "missing" / "m.svg")
    with pytest.raises(PlotError, match="takes a unidl model"):
        plot_model("model", tmp_path / "m.svg")


def test_plot_model_options_change_the_labels(tmp_path):
    svg = plot_model(mlp(), tmp_path / "m.svg", engine="python", show_shapes=False,
                     show_layer_names=False, show_dtype=True)
    root = ET.parse(svg).getroot()
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "hidden" not in text and "(None, 128)" not in text
    assert "Dense" in text and "dtype: float32" in text


def test_svg_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "m.svg"
    path.write_text("old")
    plot_model(mlp(), path, engine="python")
    assert path.read_text().startswith("<?xml")
    with pytest.raises(PlotError):  # fails before writing: the file is left whole
        plot_model(unidl.Sequential([layers.Dense(1)]), path, engine="python")
    assert path.read_text().startswith("<?xml")
    no_leftovers(tmp_path)


# -- the graphviz path (a stand-in dot program: graphviz itself may be absent) ----------------
def fake_dot(tmp_path, fail=False):
    """A ``dot`` program on PATH that records its arguments and input, and writes a PNG."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dot"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from unidl.utils.png import encode_png
        source = sys.stdin.read()
        open({str(tmp_path / "dot-input.txt")!r}, "w").write(" ".join(sys.argv[1:]) + "\\n"
                                                             + source)
        if {fail!r}:
            sys.stderr.write("Error: syntax error in line 1")
            sys.exit(1)
        if "-Tsvg" in sys.argv:
            sys.stdout.write('<svg xmlns="http://www.w3.org/2000/svg"/>')
        else:
            pixels = np.full((80, 120, 3), 255, np.uint8)
            pixels[20:60, 30:90] = (30, 90, 200)
            sys.stdout.buffer.write(encode_png(pixels))
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_graphviz_engine_hands_the_graph_to_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path)) + os.pathsep + os.environ["PATH"])
    path = plot_model(two_inputs(), tmp_path / "g.png", rankdir="LR", dpi=120)  # auto
    assert png_info(open(path, "rb").read())[:2] == (120, 80)
    args, source = (tmp_path / "dot-input.txt").read_text().split("\n", 1)
    assert args == "-Tpng"
    assert source.startswith('digraph "two_inputs"') and "rankdir=LR" in source
    assert "dpi=120" in source and "peripheries=2" in source  # the nested model
    assert source.count("->") == 6 and '"merge (Concatenate)\\nin:' in source
    plot_model(two_inputs(), tmp_path / "g.svg", engine="graphviz")
    assert (tmp_path / "dot-input.txt").read_text().startswith("-Tsvg")
    # forcing the Python layout leaves dot alone
    (tmp_path / "dot-input.txt").unlink()
    plot_model(mlp(), tmp_path / "p.svg", engine="python")
    assert not (tmp_path / "dot-input.txt").exists()


def test_a_failing_dot_falls_back_to_python_unless_graphviz_was_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path, fail=True)) + os.pathsep
                       + os.environ["PATH"])
    with pytest.warns(RuntimeWarning, match="syntax error.*drawing the graph in Python"):
        check_svg(plot_model(mlp(), tmp_path / "m.svg"), ["hidden"])
    with pytest.raises(PlotError, match="exit status 1: Error: syntax error"):
        plot_model(mlp(), tmp_path / "m.svg", engine="graphviz")


def test_graphviz_engine_without_dot_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlotError, match="dot program is not on PATH.*engine='python'"):
        plot_model(mlp(), tmp_path / "m.png", engine="graphviz")


# -- the layout ---------------------------------------------------------------------------------
def test_longest_path_layering_pulls_late_sources_down():
    # 0 -> 1 -> 2 -> 3, and source 4 joins at 3
    assert assign_ranks(5, [(0, 1), (1, 2), (2, 3), (4, 3)]) == [0, 1, 2, 3, 2]
    with pytest.raises(ValueError, match="cycle"):
        assign_ranks(2, [(0, 1), (1, 0)])


def test_barycenter_ordering_removes_avoidable_crossings():
    # given in an order with crossings: 0->5, 1->4, 2->3
    sizes = [(40, 20)] * 6
    edges = [(0, 5), (1, 4), (2, 3)]
    assert count_crossings([[0, 1, 2], [3, 4, 5]], edges) == 3
    lay = layered_layout(sizes, edges)
    assert lay.crossings == 0
    xs = [b[0] for b in lay.boxes]
    assert (xs[3] > xs[4] > xs[5]) == (xs[2] > xs[1] > xs[0])


def test_layout_boxes_never_overlap_and_long_edges_bend_around_boxes():
    sizes = [(120, 40), (90, 30), (150, 30), (60, 30), (100, 40), (80, 30)]
    edges = [(0, 1), (1, 2), (2, 3), (0, 3), (0, 4), (4, 3), (3, 5), (1, 5)]
    lay = layered_layout(sizes, edges)
    boxes = lay.boxes
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, (i, j)
    assert all(0 <= x and x + w <= lay.width and 0 <= y and y + h <= lay.height
               for x, y, w, h in boxes)
    for (u, v), points in zip(edges, lay.edges):
        assert points[0][1] == pytest.approx(boxes[u][1] + boxes[u][3])  # leaves the bottom
        assert points[-1][1] == pytest.approx(boxes[v][1])  # enters the top
        # a long edge passes its intermediate ranks vertically, beside the boxes there
        for (xa, ya), (xb, yb) in zip(points[1:-1], points[2:-1]):
            if xa == xb:
                for k, (x, y, w, h) in enumerate(boxes):
                    if k not in (u, v) and y <= (ya + yb) / 2 <= y + h:
                        assert not x <= xa <= x + w


# -- plot_history -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def history():
    """A History from a real short fit, with training and validation values."""
    with unidl.use_backend("numpy"):
        unidl.random.set_seed(0)
        (x, y), _ = unidl.datasets.digits.load_data()
        model = unidl.Sequential([layers.Flatten(input_shape=(8, 8)),
                                  layers.Dense(16, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model.fit(x[:300] / 16.0, y[:300], epochs=3, validation_split=0.2, verbose=0)


@needs_matplotlib
def test_plot_history_from_a_real_fit(history, tmp_path):
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    width, height = check_png(plot_history(history, tmp_path / "curves.png"))
    assert width > height  # two subplots side by side
    root = ET.parse(plot_history(history, tmp_path / "curves.svg")).getroot()
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for word in ("loss", "accuracy", "epoch", "train", "validation"):
        assert word in text
    no_leftovers(tmp_path)


@needs_matplotlib
def test_plot_history_takes_a_dict_and_a_choice_of_metrics(history, tmp_path):
    w2, _ = check_png(plot_history(history.history, tmp_path / "all.png"))
    w1, _ = check_png(plot_history(history, tmp_path / "loss.png", metrics=["loss"]))
    assert w1 < w2  # one subplot
    logs = {"loss": [1.0, 0.5, 0.4, 0.3], "lr": np.array([0.1, 0.1, 0.05, 0.05]),
            "note": "text"}
    check_png(plot_history(logs, tmp_path / "dict.png"))
    with pytest.raises(PlotError, match=r"no 'auc'; it has 'loss', 'accuracy'"):
        plot_history(history, tmp_path / "x.png", metrics=["auc"])


def test_plot_history_errors(tmp_path):
    with pytest.raises(PlotError, match="no values per epoch"):
        plot_history({}, tmp_path / "x.png")
    with pytest.raises(PlotError, match="takes the History"):
        plot_history([1, 2], tmp_path / "x.png")
    with pytest.raises(PlotError, match=r"'\.pdf'.*\.png or \.svg"):
        plot_history({"loss": [1.0]}, tmp_path / "x.pdf")


# -- plot_confusion_matrix ----------------------------------------------------------------------
@needs_matplotlib
def test_plot_confusion_matrix_from_labels_and_from_a_matrix(tmp_path):
    from unidl.utils import confusion_matrix, plot_confusion_matrix

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    scores = rng.random((200, 4)) + np.eye(4)[y_true]  # mostly right
    matrix = confusion_matrix(y_true, scores)
    assert matrix.sum() == 200 and np.trace(matrix) > 150
    check_png(plot_confusion_matrix(y_true, scores, tmp_path / "cm.png", normalize="true"))
    root = ET.parse(plot_confusion_matrix(matrix, path=tmp_path / "cm.svg",
                                          labels=["a", "b", "c", "d"])).getroot()
    text = [t.text for t in root.iter(f"{SVG}text")]
    assert str(matrix[0, 0]) in text and "a" in text and "predicted" in text

    try:  # the metric, where unidl.metrics has it; else anything whose result() is the matrix
        from unidl.metrics import ConfusionMatrix

        metric = ConfusionMatrix(4)
        metric.update_state(y_true, scores)
    except ImportError:
        class Metric:
            def result(self):
                return matrix

        metric = Metric()
    assert np.array_equal(np.asarray(metric.result()), matrix)
    check_png(plot_confusion_matrix(metric, path=tmp_path / "metric.png", normalize="all"))
    with pytest.raises(PlotError, match="normalize must be one of"):
        plot_confusion_matrix(matrix, path=tmp_path / "x.png", normalize="rows")
    with pytest.raises(PlotError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)), path=tmp_path / "x.png")
    with pytest.raises(PlotError, match="200 labels and y_pred 3"):
        plot_confusion_matrix(y_true, [0, 1, 2], tmp_path / "x.png")
    with pytest.raises(PlotError, match="give the file"):
        plot_confusion_matrix(matrix)


# -- matplotlib: lazy, optional -----------------------------------------------------------------
def test_import_unidl_does_not_import_matplotlib():
    proc = run_python("""
        import sys
        import unidl, unidl.utils
        from unidl.utils import plot_model, plot_history, plot_confusion_matrix
        assert "matplotlib" not in sys.modules, "matplotlib imported"
        print("ok")
    """, path=[str(ROOT)])
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_without_matplotlib_a_clear_error_and_svg_graphs_still_work(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no graphviz either
    with pytest.raises(MissingDependencyError, match=r'pip install "unidl\[plot\]"'):
        plot_history({"loss": [1.0, 0.5]}, tmp_path / "h.png")
    with pytest.raises(ImportError, match=r'unidl\[plot\]'):
        plot_model(mlp(), tmp_path / "m.png")
    check_svg(plot_model(mlp(), tmp_path / "m.svg"), ["hidden"])  # SVG needs nothing
    assert unidl.utils.save_training_pictures("x", {"loss": [1.0]}, out=tmp_path,
                                              print_fn=lambda line: None) == []


def test_png_reader_and_writer_round_trip():
    rng = np.random.default_rng(1)
    for shape in [(5, 7), (5, 7, 3), (4, 9, 4)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        data = encode_png(pixels)
        assert png_info(data)[:2] == (shape[1], shape[0])
        assert np.array_equal(decode_png(data), pixels)
    with pytest.raises(ValueError, match="not a PNG"):
        png_info(b"GIF89a" + bytes(40))
    with pytest.raises(ValueError, match="truncated|corrupt"):
        decode_png(encode_png(np.zeros((3, 3), np.uint8))[:-20])


def test_the_docstring_examples_run():
    import doctest
    import importlib

    for name in ("_common", "png", "layout", "scene", "svg", "raster", "dot", "model_graph",
                 "model_plot", "history", "confusion", "pictures"):
        module = importlib.import_module(f"unidl.utils.{name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__
    result = doctest.testmod(unidl.utils)
    assert result.failed == 0 and result.attempted > 0
