"""The package's shape: its public API, what importing it costs, and the habits the code keeps."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import have

PACKAGE = Path(__file__).resolve().parents[1] / "posedeploy"
MAX_FUNCTION_LINES = 60


def test_the_public_api_is_importable_from_the_package_without_torch():
    code = (
        "import sys, posedeploy\n"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules\n"
        "from posedeploy import MultiHypothesisLifter, LiftResult, PoseDeployError, read_manifest\n"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules\n"
        "public = {'MultiHypothesisLifter', 'export_checkpoint', 'ExportSettings', 'load_checkpoint'}\n"
        "assert set(posedeploy.__all__) >= public\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (PACKAGE / "py.typed").is_file()


@pytest.mark.skipif(not have("torch", "onnx"), reason="export and load_checkpoint need PyTorch and onnx")
def test_export_and_load_checkpoint_from_the_package(tmp_path):
    import posedeploy
    from posedeploy.assets import default_checkpoint

    ckpt = posedeploy.load_checkpoint(default_checkpoint())
    import posedeploy.export.command  # the package 'posedeploy.export' loaded first must not hide the function

    manifest = posedeploy.export_checkpoint(posedeploy.ExportSettings(out=tmp_path / "a"))
    assert manifest.config.lifter == ckpt.config.lifter
    with posedeploy.MultiHypothesisLifter(tmp_path / "a", backend="onnxruntime", hypotheses=4) as lifter:
        assert lifter(__import__("numpy").zeros((1, 17, 2), "float32"), seed=0).pose.shape == (1, 17, 3)
    with pytest.raises(AttributeError):
        posedeploy.no_such_thing  # noqa: B018


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_import_runs_in_a_circle():
    """Module imports (at the top of a module or inside a function) form no cycle within the package."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("posedeploy"):
                graph[module].add(node.module)
            elif isinstance(node, ast.Import):
                graph[module] |= {a.name for a in node.names if a.name.startswith("posedeploy")}
    # The package's own __init__ is imported by everything; it imports nothing back at import time.
    graph = {m: {d for d in deps if d in graph and d != "posedeploy"} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(module: str, trail: list[str]) -> bool:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle.extend([*trail, module, dep])
                return True
            if state.get(dep) is None and visit(dep, [*trail, module]):
                return True
        state[module] = 2
        return False

    assert not any(visit(m, []) for m in sorted(graph) if state.get(m) is None), " -> ".join(cycle)
