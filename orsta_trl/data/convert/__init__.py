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


def convert(kind: str, src, out, *, images=None, per="image", data_source=None, verifier=None, mapping=None,
            bbox_format=None, question_key=None, answer_key=None, image_key=None) -> ConvertReport:  # fmt: skip
    """``orsta-trl convert KIND SRC OUT``: the importer of ``kind`` with the options it takes (the others ignored).

    ``mapping`` is the path of a verl field mapping (:func:`load_mapping`); ``data_source`` defaults to the kind
    for ``coco`` and ``refcoco``.
    """
    if kind == "vtriune":
        return vtriune(src, out)
    if kind == "verl":
        return verl(src, out, verifier=verifier, mapping=load_mapping(mapping) if mapping else None)
    if kind == "coco":
        return coco(src, out, images_dir=images, per=per, data_source=data_source or "coco")
    if kind == "refcoco":
        return refcoco(
            src, out, images_dir=images, bbox_format=bbox_format, data_source=data_source or "refcoco"
        )
    return qa(src, out, verifier=verifier, data_source=data_source, question_key=question_key,
              answer_key=answer_key, image_key=image_key)  # fmt: skip


__all__ = ["KINDS", "ConvertReport", "coco", "convert", "load_mapping", "qa", "refcoco", "verl", "vtriune"]
