"""Broader names for ImageNet labels ("tabby" -> cat, feline, animal), from WordNet 3.0.

ImageNet-1k's classes are WordNet 3.0 noun synsets; their ids (``n02123045``) ship with timm (a
dependency of open_clip), and WordNet itself with Debian's ``wordnet-base``. NLTK's WordNet reader
needs two files that Debian's package leaves out (``lexnames``, ``index.sense``), so the few lines
here read the data file directly: a synset's line sits at its byte offset, and its hypernym
pointers (``@``, ``@i``) name their targets' offsets.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

DATA_NOUN = Path("/usr/share/wordnet/data.noun")
# Too abstract to help a search ("an entity", "a whole"); the walk up stops at them.
STOP = frozenset({
    "entity", "physical entity", "abstraction", "object", "whole", "living thing", "organism", "being",
    "artifact", "artefact", "instrumentality", "instrumentation", "matter", "unit", "causal agent", "agent",
    "thing", "part", "portion", "group", "grouping", "psychological feature", "attribute", "relation",
    "measure", "communication", "substance", "structure", "construction", "material", "stuff", "device",
    "commodity", "container", "covering", "equipment", "implement", "system",
})  # fmt: skip


@functools.cache
def imagenet_synset_offsets() -> tuple[int, ...] | None:
    """The WordNet noun offset of each ImageNet-1k class, in class order (None: timm absent)."""
    spec = importlib.util.find_spec("timm")  # located, not imported (importing timm costs seconds)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "data" / "_info" / "imagenet_synsets.txt"
    if not path.is_file():
        return None
    return tuple(int(line.strip()[1:]) for line in path.read_text().splitlines() if line.strip())


def available() -> bool:
    return DATA_NOUN.is_file() and imagenet_synset_offsets() is not None


@functools.cache
def _synset(offset: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(lemmas, hypernym offsets) of a noun synset."""
    with DATA_NOUN.open("rb") as handle:
        handle.seek(offset)
        fields = handle.readline().decode("utf-8").split(" | ", 1)[0].split()
    count = int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * i].replace("_", " ").lower() for i in range(count))
    at = 4 + 2 * count
    pointers = int(fields[at])
    hypernyms = []
    for i in range(pointers):
        symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
        if symbol in ("@", "@i") and pos == "n":
            hypernyms.append(int(target))
    return lemmas, tuple(hypernyms)


@functools.cache
def broader_names(class_index: int, limit: int = 4) -> tuple[str, ...]:
    """Up to ``limit`` names of the class's nearest hypernyms, nearest first, stopping at
    abstract ones ("tabby" -> cat, feline, carnivore, placental)."""
    offsets = imagenet_synset_offsets()
    if offsets is None or not DATA_NOUN.is_file():
        return ()
    own = set(_synset(offsets[class_index])[0])
    names: list[str] = []
    frontier = list(_synset(offsets[class_index])[1])
    seen: set[int] = set()
    while frontier and len(names) < limit:
        offset = frontier.pop(0)
        if offset in seen:
            continue
        seen.add(offset)
        lemmas, parents = _synset(offset)
        if lemmas[0] in STOP:
            continue
        if lemmas[0] not in own and lemmas[0] not in names:
            names.append(lemmas[0])
        frontier.extend(parents)
    return tuple(names)
