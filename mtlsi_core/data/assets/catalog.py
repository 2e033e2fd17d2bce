"""What an asset is: the one table from asset names to the generator's object types (and so to NYUDv2-40 classes),
the uses of photo textures, and the readers of the asset sources' own catalogues (SweetHome3D's sizes).

An asset is matched by the words of its name (a catalogue name such as "Bed 140x190", or a file stem such as
``wooden_bookshelf_worn_1k``): the first rule whose words all occur wins. The object type is a key of
``rooms.NYUD_TYPES``, whose label is the NYUDv2 class the pixels get; assets no rule matches are recorded in the
index as unused, never guessed.
"""
from __future__ import annotations

import re
from pathlib import Path

# (words that must all occur in the name, object type of rooms.NYUD_TYPES). Order matters: specific rules first.
# None: known, and deliberately not used (a pendant lamp is no table lamp; a built-in oven is no stove).
ASSET_TYPES: tuple[tuple[tuple[str, ...], str | None], ...] = (
    (("pendant",), None), (("oven",), None), (("shower",), None),
    (("bedside",), "night stand"), (("night", "stand"), "night stand"),
    (("bunk", "bed"), "bed"), (("loft", "bed"), "bed"), (("crib",), "bed"), (("bed",), "bed"),
    (("wardrobe",), "wardrobe"), (("chest",), "dresser"), (("dresser",), "dresser"),
    (("washbasin", "cabinet"), "vanity"), (("washbasin",), "sink basin"),
    (("toilet",), "toilet"), (("bath",), "bathtub"),
    (("kitchen", "upper", "cabinet"), "wall cabinet"), (("kitchen", "cabinet"), "counter"), (("sink",), "counter"),
    (("fridge",), "refridgerator"), (("cooker",), "stove"),
    (("dishwasher",), "appliance"), (("washer",), "appliance"),
    (("armchair",), "armchair"), (("stool",), "stool"), (("chair",), "chair"),
    (("bookcase",), "bookshelf"), (("bookshelf",), "bookshelf"),
    (("coffee", "table"), "coffee table"), (("desk",), "desk"), (("table",), "table"),
    (("sofa",), "sofa"), (("tv", "unit"), "tv stand"), (("flat", "tv"), "television"),
    (("glass", "door", "cabinet"), "cabinet"), (("cabinet",), "cabinet"),
    (("plant",), "plant"), (("flowers",), "plant"),
    (("floor", "uplight"), "floor lamp"), (("work", "lamp"), "table lamp"), (("lamp",), "table lamp"),
    (("radiator",), "radiator"), (("box",), "box"),
)
# Photo textures by what they may cover, matched by words of the file name; a texture no rule matches: "any".
TEXTURE_USES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("plaster", ("wall", "ceiling")), ("bricks", ("wall",)), ("floor", ("floor",)), ("tile", ("floor", "wall")),
    ("wood", ("floor", "furniture")), ("felt", ("furniture", "floor")), ("fabric", ("furniture",)),
    ("leather", ("furniture",)), ("ceramic", ("furniture", "wall")), ("metal", ("furniture",)),
    ("steel", ("furniture",)), ("brass", ("furniture",)), ("clay", ("wall", "furniture")),
    ("glass", ("furniture",)), ("concrete", ("wall", "floor")), ("carpet", ("floor",)),
    ("marble", ("floor", "furniture")),
)
USES = ("wall", "floor", "ceiling", "furniture")


def words(name: str) -> set[str]:
    """Lower-case words of a name (camel case, digits, '_' '-' ' ' '.' split)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^a-z]+", spaced.lower()) if w}


def asset_type(name: str) -> str | None:
    """The object type an asset of this name stands for, or None."""
    ws = words(name)
    for need, kind in ASSET_TYPES:
        if all(w in ws for w in need):
            return kind
    return None


def texture_uses(name: str) -> tuple[str, ...]:
    ws = " ".join(sorted(words(name)))
    for key, uses in TEXTURE_USES:
        if key in ws:
            return uses
    return USES


def read_sweethome3d_catalog(path: str | Path) -> dict[str, dict]:
    """SweetHome3D's ``DefaultFurnitureCatalog.properties`` -> {model file name: {name, category, size (w, d, h) in
    metres, door_or_window}}. Entries without a model or a size are left out."""
    props: dict[str, dict[str, str]] = {}
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        m = re.match(r"^(\w+)#(\d+)\s*=\s*(.*)$", line.strip())
        if m:
            props.setdefault(m.group(2), {})[m.group(1)] = m.group(3).strip()
    out = {}
    for entry in props.values():
        try:
            size = tuple(float(entry[k]) / 100.0 for k in ("width", "depth", "height"))
            model = entry["model"].rsplit("/", 1)[-1]
        except (KeyError, ValueError):
            continue
        if min(size) <= 0:
            continue
        out[model] = {"name": entry.get("name", model), "category": entry.get("category", ""), "size": size,
                      "door_or_window": entry.get("doorOrWindow", "false") == "true"}
    return out
