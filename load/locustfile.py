"""Marketplace load: ``locust -f load/locustfile.py --host http://127.0.0.1:8000``.

User classes (weights from ``LOAD_WEIGHT_*``, see ``load/environment.py``): Browser, Buyer, Seller,
Carrier, and FlashBuyer (weight 0 unless a flash sale). Products are picked Zipf-skewed from the
seed manifest (``marketplace seed``) when there is one. With ``LOAD_SHAPE`` set (``steady``,
``ramp``, ``spike``, ``flash_sale``, ``soak``; parameters in ``LOAD_SHAPE_PARAMS``) that load
shape drives the run; otherwise the web UI's users and spawn rate do. ``marketplace load`` sets
all of this from a scenario file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from load.locust_shape import shape_class
from load.users import Browser, Buyer, Carrier, FlashBuyer, Seller

__all__ = ["Browser", "Buyer", "Carrier", "FlashBuyer", "Seller"]

if os.environ.get("LOAD_SHAPE"):
    ActiveShape = shape_class(os.environ["LOAD_SHAPE"])
    __all__ += ["ActiveShape"]
