"""langgraph.json points `langgraph dev` / LangGraph Studio at compiled graphs that exist."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from langgraph.graph.state import CompiledStateGraph

ROOT = Path(__file__).resolve().parents[2]


def test_every_graph_in_langgraph_json_loads_as_a_compiled_graph():
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert config["dependencies"] == ["."]
    assert set(config["graphs"]) >= {"storyboard", "assistant"}
    for name, reference in config["graphs"].items():
        path, attribute = reference.split(":")
        spec = importlib.util.spec_from_file_location(f"langgraph_json_{name}", ROOT / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # as `langgraph dev` does: loaded by path, under its own name
        spec.loader.exec_module(module)
        assert isinstance(getattr(module, attribute), CompiledStateGraph), name
