"""The load shapes of ``load/shapes.py`` as Locust ``LoadTestShape`` classes."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from locust import LoadTestShape

from load.shapes import parameters, step_at


class ScenarioShape(LoadTestShape):
    """Parameters from the constructor, else ``LOAD_SHAPE_PARAMS`` (JSON)."""

    abstract = True
    name: ClassVar[str] = ""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__()
        if params is None:
            params = json.loads(os.environ.get("LOAD_SHAPE_PARAMS") or "{}")
        self.params = parameters(self.name, params)

    def tick(self) -> tuple[int, float] | None:
        return step_at(self.name, self.params, self.get_run_time())


def shape_class(name: str) -> type[ScenarioShape]:
    """The shape called ``name`` as a concrete class Locust will run."""
    parameters(name)  # ValueError for an unknown name
    title = "".join(part.title() for part in name.split("_"))
    return type(title, (ScenarioShape,), {"abstract": False, "name": name, "__module__": __name__})


__all__ = ["ScenarioShape", "shape_class"]
