"""conf/base/catalog.yml as Kedro-Viz draws it: every entry (dataset factories included) sits in a
layer of the data-engineering convention, layers only ever flow downward through the registered
pipelines (a cycle would make Kedro-Viz drop the layer bands altogether), and tables and figures
show a preview."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog

from avshared.pipeline_registry import register_pipelines
from avshared.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Kedro's data-engineering convention, in the order data moves through them.
LAYERS: tuple[str, ...] = (
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
)
TABLE_TYPES = ("pandas.CSVDataset", "pandas.ParquetDataset")
#: A name for the ``{phase}`` of the dataset factories.
PHASE = "bimodal"


@pytest.fixture(scope="module")
def catalog_config() -> dict[str, Any]:
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    return loader["catalog"]


@pytest.fixture(scope="module")
def catalog(catalog_config) -> DataCatalog:
    return DataCatalog.from_config(catalog_config)


def _viz(entry: dict[str, Any]) -> dict[str, Any]:
    return (entry.get("metadata") or {}).get("kedro-viz") or {}


def _entries(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The catalog's entries (anchors such as ``_report`` are not entries)."""
    return {name: entry for name, entry in config.items() if not name.startswith("_")}


def test_every_entry_has_a_layer_of_the_convention(catalog_config, catalog) -> None:
    for name, entry in _entries(catalog_config).items():
        layer = _viz(entry).get("layer")
        assert layer in LAYERS, f"{name}: metadata: kedro-viz: layer: one of {LAYERS}, got {layer}"
        # The dataset keeps it where Kedro-Viz reads it (wrappers such as the MLflow ones too).
        dataset = catalog.get(name.replace("{phase}", PHASE))
        assert dataset.metadata["kedro-viz"]["layer"] == layer, name


def test_tables_and_figures_show_a_preview(catalog_config) -> None:
    for name, entry in _entries(catalog_config).items():
        if entry.get("type") == "partitions.PartitionedDataset":
            continue  # one file per cell: Kedro-Viz has no preview for a folder of partitions
        dataset = entry.get("dataset") or entry
        kind = dataset["type"] if isinstance(dataset, dict) else dataset
        viz = _viz(entry)
        if kind in TABLE_TYPES:
            assert viz.get("preview_args", {}).get("nrows") == 10, name
        elif kind == "matplotlib.MatplotlibDataset":
            # A folder of images (a dict of figures) has no single image to preview.
            single = dataset["filepath"].endswith(".png")
            assert viz.get("preview") is single, name


def test_layers_only_flow_downward_through_the_pipelines(catalog) -> None:
    """From each dataset with a layer, through the nodes and the in-memory datasets between them,
    every dataset downstream with a layer is in the same layer or a later one."""
    registered = register_pipelines()
    # Every node of the project: `comparison` holds all but the two pipelines that run only alone.
    pipeline = registered["comparison"] + registered["demo_data"] + registered["predict"]
    downstream: dict[str, set[str]] = {}
    for node in pipeline.nodes:
        for name in node.inputs:
            downstream.setdefault(name, set()).update(node.outputs)

    def layer_of(name: str) -> str | None:
        dataset = catalog.get(name)
        return None if dataset is None else _viz({"metadata": dataset.metadata}).get("layer")

    # Parameters are not datasets (in a run's catalog they are, by name, before any factory).
    layers = {n: layer_of(n) for n in pipeline.datasets() if not n.startswith("params:")}
    for source, layer in layers.items():
        if layer is None:
            continue
        queue, seen = deque(downstream.get(source, ())), set()
        while queue:
            name = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            if layers[name] is None:
                queue.extend(downstream.get(name, ()))
            else:
                assert LAYERS.index(layers[name]) >= LAYERS.index(layer), (
                    f"{source} ({layer}) flows into {name} ({layers[name]})"
                )
