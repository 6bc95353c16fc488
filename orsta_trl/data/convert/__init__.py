"""Importers: foreign dataset formats -> our record contract (``orsta-trl convert KIND SRC OUT``).

Each is a plain function returning a :class:`ConvertReport`; every record it writes passes ``check-data``.

>>> from orsta_trl.data import convert
>>> sorted(convert.KINDS)
['coco', 'qa', 'refcoco', 'verl', 'vtriune']
"""

from orsta_trl.data.convert.coco import coco, refcoco
from orsta_trl.data.convert.common import ConvertReport
from orsta_trl.data.convert.qa import qa
from orsta_trl.data.convert.verl import load_mapping, verl
from orsta_trl.data.convert.vtriune import vtriune

KINDS = {"vtriune": vtriune, "verl": verl, "coco": coco, "refcoco": refcoco, "qa": qa}

__all__ = ["KINDS", "ConvertReport", "coco", "load_mapping", "qa", "refcoco", "verl", "vtriune"]
