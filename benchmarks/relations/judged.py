"""The judge's verdict on one image against a caption and its relation-swapped caption, and the table of
failure classes over many such verdicts."""

from __future__ import annotations

import numpy as np

from .measures import CLASSES, OBJECT_FACTS, classify, layout, more_components_kind


class Judged:
    """The judge's verdict on an image against a caption and its relation-swapped caption."""

    def __init__(self, img_chw: np.ndarray, prompt: str, swap: str) -> None:
        from rewardsds.world.judge import judge, parse_prompt

        v = judge(img_chw, prompt)
        self.facts = v.facts
        self.colours = [c.colour for c in v.components]
        self.right = sum(v.facts.values())
        self.all = v.all_correct
        self.rel_lenient = bool(v.facts.get("relation", False))  # the judge's fact (vacuous for twins)
        # both stated colours in two different components (the judge's assignment is one-to-one)
        self.distinct = bool(v.facts["object0.colour"] and v.facts["object1.colour"])
        self.rel = self.rel_lenient and self.distinct
        self.inv = bool(judge(img_chw, swap).facts.get("relation", False))
        self.layout = layout(self.rel_lenient, self.inv, self.distinct)
        self.objects_ok = all(v.facts[k] for k in OBJECT_FACTS) and v.facts["count"]
        self.stated = tuple(o.colour for o in parse_prompt(prompt).objects)
        self.cls = classify(v.facts, self.colours, self.stated)

    def summary(self) -> dict:
        return {"facts": self.facts, "accuracy": self.right / len(self.facts), "all": self.all,
                "layout": self.layout, "class": self.cls, "colours": self.colours, "distinct": self.distinct}


def class_table(judged: list[Judged]) -> dict:
    n = max(len(judged), 1)
    out = {c: sum(j.cls == c for j in judged) / n for c in CLASSES}
    more = [j for j in judged if j.cls == "more components"]
    out["more: duplicate share"] = (sum(more_components_kind(j.colours, j.stated) == "duplicate" for j in more)
                                    / len(more)) if more else None
    for k in ("right", "inverted", "none", "unreadable"):
        out[f"layout {k}"] = sum(j.layout == k for j in judged) / n
    out["judge relation fact (lenient)"] = sum(j.rel_lenient for j in judged) / n
    return out
