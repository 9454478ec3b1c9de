"""Synthetic receipts: the embedded default data set (``ocrdet synth``).

Each image is a receipt-like paper on a textured table: a shop name, meta lines, items with
right-aligned prices, dashed separators, totals and a footer. A word's polygon is the glyph box
of ``ImageDraw.textbbox`` moved by the same small rotation as the pixels, so it stays exact.
Separators are annotated as don't-care words. A fraction of images is stored sideways or
upside down with an EXIF Orientation tag; their points are in the stored pixel frame.
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.decode import (
    INVERSE_ORIENTATION,
    ORIENTATION_TAG,
    apply_orientation,
    orientation_matrix,
    transform_points,
)
from ocrdet.data.io.format import Annotations, ImageAnnotation, Word, polygon_area, save_annotations, split_paths

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

SPLITS = ("train", "val", "test")

FONT_FAMILIES = (
    ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf"),
    ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
)
"""(regular, bold) file names inside ``SynthConfig.font_dir``."""

SHOP_WORDS = (
    "SUNRISE", "GOLDEN", "DRAGON", "FRESH", "CORNER", "CITY", "HAPPY", "LUCKY", "GREEN", "ROYAL",
    "MART", "MARKET", "CAFE", "BAKERY", "DELI", "STORE", "PHARMACY", "HARDWARE", "BOOKS", "KITCHEN",
)  # fmt: skip
ITEM_WORDS = (
    "COFFEE", "LATTE", "TEA", "MILK", "BREAD", "RICE", "EGGS", "SUGAR", "APPLE", "BANANA", "CHICKEN",
    "NOODLES", "WATER", "SOAP", "PEN", "PAPER", "BATTERY", "CABLE", "SOUP", "BUN", "CAKE", "JUICE",
    "SODA", "CHIPS", "CHEESE", "BUTTER", "SALT", "OIL", "FLOUR", "TOWEL", "LARGE", "SMALL", "HOT",
    "ICED", "BLACK", "FRIED", "SPICY", "PACK", "BOX", "BOTTLE", "Organic", "Classic", "mini",
)  # fmt: skip
STREET_WORDS = ("JALAN", "MAIN", "HIGH", "OAK", "PARK", "RIVER", "KING", "STATION", "MARKET", "HILL")
STREET_KINDS = ("ST", "AVE", "RD", "LANE", "BLVD")
NAMES = ("ALI", "MAY", "JOHN", "SITI", "LEE", "ANNA", "RAJ", "TOM")
SUBTOTAL_LABELS = ("SUBTOTAL", "TAX", "GST 6%", "SERVICE 10%", "ROUNDING", "DISCOUNT")
PAYMENT_LABELS = ("CASH", "CHANGE", "VISA", "CARD", "TENDERED")
FOOTERS = ("THANK YOU", "PLEASE COME AGAIN", "HAVE A NICE DAY", "GOODS SOLD ARE NOT RETURNABLE", "THANK YOU!")
CURRENCIES = ("", "", "$", "RM")
BACKGROUND_COLOURS = ((120, 85, 55), (75, 75, 80), (60, 80, 115), (50, 95, 65), (135, 120, 100), (45, 40, 40))
"""RGB table colours, scaled per image; all darker than the paper."""


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator; ranges are inclusive (low, high)."""

    width: tuple[int, int] = (400, 600)
    height: tuple[int, int] = (600, 900)
    paper_width: tuple[float, float] = (0.72, 0.95)
    """Paper width as a fraction of the image width."""
    paper_pad: tuple[int, int] = (8, 24)
    """Blank paper around the text, px."""
    paper_top: tuple[float, float] = (-0.08, 0.1)
    """Top edge of the paper as a fraction of the image height (< 0: above the image)."""
    cropped_fraction: float = 0.3
    """Receipts whose paper runs on past the bottom edge even when all their lines fit."""
    lines: tuple[int, int] = (10, 25)
    """Text lines wanted; fewer when they do not fit."""
    font_size: tuple[int, int] = (16, 30)
    header_scale: tuple[float, float] = (1.2, 1.5)
    line_spacing: tuple[float, float] = (1.25, 1.6)
    """Baseline-to-baseline distance over the font size."""
    ink_level: tuple[int, int] = (0, 70)
    paper_level: tuple[int, int] = (215, 250)
    background_brightness: tuple[float, float] = (0.6, 1.05)
    max_rotation: float = 3.0
    """Degrees, either way."""
    lighting: tuple[float, float] = (0.0, 0.15)
    """Brightness falloff across the image (0 = flat)."""
    blur_sigma: tuple[float, float] = (0.2, 0.8)
    noise_std: tuple[float, float] = (0.0, 6.0)
    jpeg_quality: tuple[int, int] = (60, 95)
    exif_fraction: float = 0.25
    exif_orientations: tuple[int, ...] = (2, 3, 6, 8)
    font_dir: Path = Path("/usr/share/fonts/truetype/dejavu")
    """DejaVu TTFs; Pillow's built-in font is used for any file missing here."""
    level: str = "word"
    """``word``: one box per word (the competitions' convention); ``line``: one box per run of words on a line,
    enclosing them with a margin (SROIE's)."""
    line_margin: float = 0.125
    """Margin on every side of a line box, as a fraction of its words' height: SROIE's line boxes are 1.25x the
    ink height (median of 1,227 train lines, 10% of the box above and below the ink)."""
    faint_fraction: float = 0.0
    """Receipts printed with faint, uneven ink (a worn thermal head, a fading ribbon)."""
    faint_ink: tuple[float, float] = (0.15, 0.7)
    """Ink strength of a faint receipt, varying smoothly across the paper (1 = as printed)."""
    perspective: float = 0.0
    """Largest corner displacement of a perspective warp, as a fraction of the image side (0 = none)."""
    clutter_fraction: float = 0.0
    """Receipts with unlabelled handwriting strokes and stamps on them."""
    page_fraction: float = 0.0
    """Receipts scanned small on a large page (an A4 flatbed scan)."""
    page_scale: tuple[float, float] = (0.35, 0.6)
    """Receipt height over page height on such a page."""


LEVELS = ("word", "line")
PRESETS = {
    "plain": SynthConfig(),
    "receipts": SynthConfig(
        ink_level=(0, 110),
        blur_sigma=(0.2, 1.4),
        jpeg_quality=(30, 95),
        faint_fraction=0.3,
        perspective=0.04,
        clutter_fraction=0.3,
        page_fraction=0.2,
    ),
}
"""``ocrdet synth --preset``: ``plain`` is the embedded default's look; ``receipts`` adds what real scanned receipts
show (faint and uneven ink, more blur, JPEG artefacts, perspective, handwriting and stamps, small receipts on a
large page)."""


def synth_config(preset: str = "plain", level: str = "word") -> SynthConfig:
    """The generator settings of a ``PRESETS`` look with boxes at ``level``."""
    if preset not in PRESETS:
        raise ValueError(f"synth preset must be one of {tuple(PRESETS)}, got {preset!r}")
    if level not in LEVELS:
        raise ValueError(f"synth level must be one of {LEVELS}, got {level!r}")
    return replace(PRESETS[preset], level=level)


@dataclass(frozen=True)
class _Line:
    left: str = ""
    right: str = ""
    centered: bool = False
    bold: bool = False
    scale: float = 1.0
    separator: bool = False
    """``left`` is the character repeated across the line."""


@dataclass(frozen=True)
class _Style:
    family: tuple[str, str]
    size: int
    spacing: float
    ink: tuple[int, int, int]


@dataclass(frozen=True)
class _Placed:
    text: str
    xy: tuple[int, int]
    """Left end of the baseline."""
    font: Font
    ignore: bool
    bottom: int
    """Lowest y the glyphs may reach."""
    run: int
    """Index of the run of words on one line (left part, right part) it belongs to: one box at ``level="line"``."""


@functools.lru_cache(maxsize=512)
def _font(font_dir: Path, name: str, size: int) -> Font:
    path = font_dir / name
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default(size=size)


def _pick(rng: np.random.Generator, options: tuple[str, ...], k: int = 1) -> str:
    return " ".join(options[j] for j in rng.integers(0, len(options), size=k))


def _money(rng: np.random.Generator, high: float) -> str:
    return f"{_pick(rng, CURRENCIES)}{rng.uniform(0.5, high):.2f}"


def _receipt_lines(rng: np.random.Generator, n_lines: int, header_scale: float) -> list[_Line]:
    """Text of one receipt, top to bottom: header, meta, items, totals, footer (n_lines lines)."""
    head = [_Line(_pick(rng, SHOP_WORDS, int(rng.integers(1, 4))), centered=True, bold=True, scale=header_scale)]
    if rng.random() < 0.7:
        street = f"{rng.integers(1, 300)} {_pick(rng, STREET_WORDS)} {_pick(rng, STREET_KINDS)}"
        head.append(_Line(street, centered=True))
    if rng.random() < 0.5:
        head.append(_Line(f"TEL: {rng.integers(100, 1000)}-{rng.integers(1000, 10000)}", centered=True))
    day, month, year = rng.integers(1, 29), rng.integers(1, 13), rng.integers(2015, 2026)
    date = f"{day:02d}/{month:02d}/{year}" if rng.random() < 0.5 else f"{year}-{month:02d}-{day:02d}"
    meta = [_Line(f"DATE: {date}", f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}")]
    if rng.random() < 0.6:
        meta.append(_Line(f"INV NO: {rng.integers(1000, 999999)}", f"CASHIER: {_pick(rng, NAMES)}"))
    tail = [_Line(_pick(rng, SUBTOTAL_LABELS), _money(rng, 20)) for _ in range(rng.integers(0, 3))]
    tail.append(_Line("TOTAL", _money(rng, 300), bold=True))
    tail += [_Line(_pick(rng, PAYMENT_LABELS), _money(rng, 300)) for _ in range(rng.integers(0, 3))]
    footer = [_Line(_pick(rng, FOOTERS), centered=True)] if rng.random() < 0.7 else []
    separator = _Line("-" if rng.random() < 0.7 else "=", separator=True)
    fixed = len(head) + len(meta) + len(tail) + len(footer) + 3
    items = []
    for _ in range(max(1, n_lines - fixed)):
        name = _pick(rng, ITEM_WORDS, int(rng.integers(1, 4)))
        quantity = f"{rng.integers(1, 10)} " if rng.random() < 0.5 else ""
        items.append(_Line(quantity + name, _money(rng, 60)))
    return [*head, separator, *meta, separator, *items, separator, *tail, *footer]


def _fit(words: list[str], font: Font, max_width: float) -> list[str]:
    """The longest prefix of ``words`` that fits in ``max_width`` px when joined by spaces."""
    for n in range(len(words), 0, -1):
        if font.getlength(" ".join(words[:n])) <= max_width:
            return words[:n]
    return []


def _background(rng: np.random.Generator, width: int, height: int, config: SynthConfig) -> np.ndarray:
    """Textured table colour, uint8 (H, W, 3)."""
    colour = np.array(BACKGROUND_COLOURS[rng.integers(0, len(BACKGROUND_COLOURS))], dtype=np.float32)
    colour *= rng.uniform(*config.background_brightness)
    coarse = rng.normal(0.0, 12.0, size=(int(rng.integers(3, 12)), int(rng.integers(3, 12)))).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.merge([cv2.add(texture, float(c), dtype=cv2.CV_8U) for c in colour])


def render_receipt(rng: np.random.Generator, config: SynthConfig = SynthConfig()) -> tuple[np.ndarray, list[Word]]:
    """One upright receipt, before rotation and degradations.

    Returns a uint8 (H, W, 3) RGB image and its words; points are (4, 2) boxes in image pixels,
    clockwise from top-left, each at least the rotation margin away from the image border.
    """
    if config.level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {config.level!r}")
    width, height = (int(rng.integers(lo, hi + 1)) for lo, hi in (config.width, config.height))
    safe = math.ceil(math.sin(math.radians(config.max_rotation) / 2) * math.hypot(width, height)) + 2
    paper_w = round(width * rng.uniform(*config.paper_width))
    paper_x0 = int(rng.integers(0, width - paper_w + 1))
    pad = int(rng.integers(config.paper_pad[0], config.paper_pad[1] + 1))
    paper_y0 = round(height * rng.uniform(*config.paper_top))
    x0, x1 = max(paper_x0 + pad, safe), min(paper_x0 + paper_w - pad, width - safe)
    top, bottom = max(paper_y0 + pad, safe), height - safe

    ink_grey = int(rng.integers(config.ink_level[0], config.ink_level[1] + 1))
    style = _Style(
        family=FONT_FAMILIES[rng.integers(0, len(FONT_FAMILIES))],
        size=int(rng.integers(config.font_size[0], config.font_size[1] + 1)),
        spacing=float(rng.uniform(*config.line_spacing)),
        ink=tuple(int(c) for c in np.clip(ink_grey + rng.integers(-10, 11, size=3), 0, 255)),
    )
    header_scale = float(rng.uniform(*config.header_scale))
    capacity = int((bottom - top) / (style.size * style.spacing) - header_scale)
    n_lines = min(int(rng.integers(config.lines[0], config.lines[1] + 1)), max(capacity, 1))
    lines = _receipt_lines(rng, n_lines, header_scale)
    placed, complete = _layout(lines, style, config.font_dir, x0, x1, top, bottom)
    cropped = not complete or rng.random() < config.cropped_fraction
    paper_bottom = height if cropped else max(p.bottom for p in placed) + pad
    image = _background(rng, width, height, config)
    paper = np.clip(rng.uniform(*config.paper_level) + rng.uniform(-8.0, 3.0, size=3), 0, 255)
    image[max(paper_y0, 0) : min(paper_bottom, height), paper_x0 : paper_x0 + paper_w] = np.round(paper)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    runs: dict[int, list[tuple[_Placed, tuple[float, float, float, float]]]] = {}
    for p in placed:
        draw.text(p.xy, p.text, font=p.font, fill=style.ink, anchor="ls")
        runs.setdefault(p.run if config.level == "line" else id(p), []).append(
            (p, draw.textbbox(p.xy, p.text, font=p.font, anchor="ls"))
        )
    words = []
    for run in runs.values():
        left, up = min(b[0] for _, b in run), min(b[1] for _, b in run)
        right, down = max(b[2] for _, b in run), max(b[3] for _, b in run)
        if config.level == "line":
            margin = config.line_margin * (down - up)
            left, up, right, down = max(left - margin, 0), max(up - margin, 0), right + margin, down + margin
            right, down = min(right, width - 1), min(down, height - 1)
        box = [(left, up), (right, up), (right, down), (left, down)]
        text = " ".join(p.text for p, _ in run)
        words.append(Word(points=box, transcription=text, illegibility=run[0][0].ignore))
    printed = np.asarray(canvas)
    if config.faint_fraction > 0 and rng.random() < config.faint_fraction:
        printed = _fade_ink(rng, image, printed, config.faint_ink)
    return printed, words


def _fade_ink(
    rng: np.random.Generator, paper: np.ndarray, printed: np.ndarray, strength: tuple[float, float]
) -> np.ndarray:
    """``printed`` with its ink (the difference from ``paper``) weakened by a smooth random field in ``strength``."""
    height, width = paper.shape[:2]
    coarse = rng.uniform(*strength, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)))).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    base = paper.astype(np.float32)
    return np.clip(base + (printed.astype(np.float32) - base) * field, 0, 255).astype(np.uint8)


def _layout(
    lines: list[_Line], style: _Style, font_dir: Path, x0: int, x1: int, top: int, bottom: int
) -> tuple[list[_Placed], bool]:
    """Place the words of every line that fits between ``top`` and ``bottom``; True if all lines fit."""
    placed = []
    y = top
    for line in lines:
        size = round(style.size * line.scale)
        font = _font(font_dir, style.family[line.bold], size)
        ascent, descent = font.getmetrics()
        baseline = y + ascent
        if baseline + descent > bottom:
            return placed, False
        y += round(size * style.spacing)
        if line.separator:
            text = line.left * int((x1 - x0) / font.getlength(line.left))
            placed.append(_Placed(text, (x0, baseline), font, True, baseline + descent, len(placed)))
            continue
        gap = font.getlength("  ")
        right_words = line.right.split()
        right_width = font.getlength(line.right) if right_words else 0.0
        left_words = _fit(line.left.split(), font, x1 - x0 - right_width - (gap if right_words else 0.0))
        if line.centered:
            start = round((x0 + x1 - font.getlength(" ".join(left_words))) / 2)
        else:
            start = x0
        segments = [(left_words, start), (right_words, math.floor(x1 - right_width))]
        for words, x in segments:
            run = len(placed)
            for word in words:
                placed.append(_Placed(word, (round(x), baseline), font, False, baseline + descent, run))
                x += font.getlength(word + " ")
    return placed, True


def _degrade(rng: np.random.Generator, image: np.ndarray, config: SynthConfig) -> np.ndarray:
    """Blur, uneven lighting and sensor noise on a uint8 (H, W, 3) image; returns uint8."""
    height, width = image.shape[:2]
    blurred = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(*config.blur_sigma)))
    corners = (1.0 - rng.uniform(*config.lighting) * rng.random((2, 2))).astype(np.float32)
    light = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    noise *= np.float32(rng.uniform(*config.noise_std))
    channels = cv2.split(blurred)
    return cv2.merge([cv2.add(cv2.multiply(c, light, dtype=cv2.CV_32F), noise, dtype=cv2.CV_8U) for c in channels])


def _perspective(
    rng: np.random.Generator, image: np.ndarray, polygons: list[np.ndarray], amount: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A random perspective warp (corners moved by up to ``amount`` x the image side), pixels and polygons."""
    height, width = image.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners + rng.uniform(-amount, amount, size=(4, 2)).astype(np.float32) * np.float32([width, height])
    matrix = cv2.getPerspectiveTransform(corners, moved)
    warped = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return warped, [cv2.perspectiveTransform(p.reshape(-1, 1, 2).astype(np.float64), matrix)[:, 0] for p in polygons]


def _clutter(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Unlabelled marks people leave on receipts: handwriting-like strokes and ring stamps, in pen colours."""
    height, width = image.shape[:2]
    out = image.copy()
    pens = ((25, 40, 140), (30, 30, 35), (170, 30, 40))
    for _ in range(int(rng.integers(1, 4))):
        colour = tuple(int(c) for c in pens[rng.integers(0, len(pens))])
        start = rng.uniform((0, 0), (width, height))
        steps = rng.normal(0, 1, size=(int(rng.integers(20, 60)), 2)) * rng.uniform(3, 9)
        steps[:, 0] += rng.uniform(1, 4)  # writing runs left to right
        points = np.cumsum(np.vstack([start, steps]), axis=0).round().astype(np.int32)
        cv2.polylines(out, [points.reshape(-1, 1, 2)], False, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
    if rng.random() < 0.5:
        colour = tuple(int(c) for c in pens[rng.integers(0, len(pens))])
        centre = tuple(int(v) for v in rng.uniform((0, 0), (width, height)))
        radius = int(rng.uniform(0.05, 0.15) * min(width, height))
        cv2.circle(out, centre, radius, colour, int(rng.integers(2, 5)), cv2.LINE_AA)
        cv2.circle(out, centre, max(radius - 8, 2), colour, 1, cv2.LINE_AA)
    return out


def _on_page(
    rng: np.random.Generator, image: np.ndarray, polygons: list[np.ndarray], config: SynthConfig
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The receipt image laid small on a large light page (an A4 scan): pixels and polygons."""
    height, width = image.shape[:2]
    page_h = round(height / rng.uniform(*config.page_scale))
    page_w = max(round(page_h / math.sqrt(2)), width + 2)
    level = rng.uniform(225, 250)
    page = np.clip(rng.normal(level, 2.0, size=(page_h, page_w, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)
    x0, y0 = int(rng.integers(0, page_w - width + 1)), int(rng.integers(0, page_h - height + 1))
    page[y0 : y0 + height, x0 : x0 + width] = image
    return page, [p + np.array([x0, y0], dtype=np.float64) for p in polygons]


def _inside(
    polygons: list[np.ndarray], words: list[Word], width: int, height: int
) -> tuple[list[np.ndarray], list[Word]]:
    """Points clipped into the image (rotation and perspective can carry a word over an edge); a word with less than
    half of its area left in view becomes don't care."""
    kept_polygons, kept_words = [], []
    for polygon, word in zip(polygons, words, strict=True):
        clipped = np.clip(polygon, 0.0, [float(width), float(height)])
        area = polygon_area(polygon.astype(np.float32))
        if not np.array_equal(clipped, polygon) and polygon_area(clipped.astype(np.float32)) < 0.5 * area:
            word = word.model_copy(update={"illegibility": True})
        kept_polygons.append(clipped)
        kept_words.append(word)
    return kept_polygons, kept_words


def synth_image(rng: np.random.Generator, config: SynthConfig = SynthConfig()) -> tuple[bytes, ImageAnnotation]:
    """One finished sample: JPEG bytes and its annotation, points in the stored pixel frame.

    The variations that ``SynthConfig`` leaves at 0 draw nothing from ``rng``: the default images stay as they were.
    """
    image, words = render_receipt(rng, config)
    height, width = image.shape[:2]
    # Rotation about the image centre; the half-pixel centre convention shifts points by < 0.03 px at 3 degrees.
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-1, 1) * config.max_rotation, 1.0)
    image = cv2.warpAffine(image, rotation, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    polygons = [transform_points(np.vstack([rotation, (0.0, 0.0, 1.0)]), w.polygon()) for w in words]
    if config.perspective > 0:
        image, polygons = _perspective(rng, image, polygons, config.perspective)
    if config.clutter_fraction > 0 and rng.random() < config.clutter_fraction:
        image = _clutter(rng, image)
    image = _degrade(rng, image, config)
    if config.page_fraction > 0 and rng.random() < config.page_fraction:
        image, polygons = _on_page(rng, image, polygons, config)
        height, width = image.shape[:2]
    polygons, words = _inside(polygons, words, width, height)
    to_stored = np.eye(3)
    save_args: dict[str, object] = {"quality": int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))}
    if rng.random() < config.exif_fraction:
        orientation = config.exif_orientations[rng.integers(0, len(config.exif_orientations))]
        to_stored = orientation_matrix(INVERSE_ORIENTATION[orientation], width, height)
        image = np.ascontiguousarray(apply_orientation(image, INVERSE_ORIENTATION[orientation]))
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = orientation
        save_args["exif"] = exif
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **save_args)
    stored = {}
    for word_id, (word, polygon) in enumerate(zip(words, polygons, strict=True)):
        points = np.round(transform_points(to_stored, polygon), 2)
        stored[f"{word_id:04d}"] = word.model_copy(update={"points": [(float(x), float(y)) for x, y in points]})
    return buffer.getvalue(), ImageAnnotation(words=stored, img_w=image.shape[1], img_h=image.shape[0])


SYNTH_RECORD = ".ocrdet-synth.json"
"""``ROOT/.ocrdet-synth.json``: the files ``generate_dataset`` wrote into ROOT, the only ones ``force`` may replace."""


class SynthTargetError(ValueError):
    """The folder to write into holds files ``ocrdet synth`` must not replace; the message says which and why."""


def _written_before(out: Path) -> set[str]:
    """Files (relative to ``out``) that an earlier ``generate_dataset`` recorded there."""
    try:
        return set(json.loads((out / SYNTH_RECORD).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _check_target(out: Path, planned: list[str], force: bool) -> set[str]:
    """The files of an earlier synthetic set in ``out`` (to replace); SynthTargetError when ``out`` holds anything
    else that would be overwritten, or anything at all without ``force``."""
    if out.exists() and not out.is_dir():
        raise SynthTargetError(f"{out}: a file, not a folder; give --out a new or empty folder")
    if not out.exists() or not any(out.iterdir()):
        return set()
    if not force:
        raise SynthTargetError(
            f"{out}: not empty; synth writes into a new or empty folder (--force replaces an earlier synthetic"
            " set there, never annotations or images it did not write)"
        )
    ours = _written_before(out)
    foreign = [name for name in planned if (out / name).exists() and name not in ours]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise SynthTargetError(f"{out}: {shown} not written by ocrdet synth; refusing to replace (move it away first)")
    return ours


def generate_dataset(
    out: Path,
    n_train: int,
    n_val: int,
    n_test: int = 0,
    seed: int = 0,
    config: SynthConfig = SynthConfig(),
    force: bool = False,
) -> dict[str, int]:
    """Write ``out/images/<split>/*.jpg`` and ``out/jsons/<split>.json`` for every split with images.

    Image i of split s is drawn from ``np.random.default_rng([seed, s, i])``, so the same seed gives
    the same bytes. Returns the number of images written per split. ``out`` must be new or empty; with ``force``
    an earlier synthetic set there is replaced (its files are recorded in ``SYNTH_RECORD``), but any other file
    that would be overwritten stops it before anything is written (``SynthTargetError``).
    """
    out = Path(out)
    counts = {split: count for split, count in zip(SPLITS, (n_train, n_val, n_test), strict=True) if count > 0}
    planned = []
    for split, count in counts.items():
        image_dir, json_path = split_paths(out, split)
        planned += [json_path.relative_to(out).as_posix()]
        planned += [(image_dir / f"{split}_{i:05d}.jpg").relative_to(out).as_posix() for i in range(count)]
    earlier = _check_target(out, planned, force)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SYNTH_RECORD, json.dumps({"files": sorted(earlier | set(planned))}))
    for name in sorted(earlier - set(planned)):
        (out / name).unlink(missing_ok=True)
    written = {}
    for split_index, split in enumerate(SPLITS):
        if split not in counts:
            continue
        image_dir, json_path = split_paths(out, split)
        image_dir.mkdir(parents=True, exist_ok=True)
        images = {}
        for i in range(counts[split]):
            name = f"{split}_{i:05d}.jpg"
            jpeg, annotation = synth_image(np.random.default_rng([seed, split_index, i]), config)
            (image_dir / name).write_bytes(jpeg)
            images[name] = annotation
        save_annotations(Annotations(images=images), json_path)
        written[split] = counts[split]
    atomic_write_text(out / SYNTH_RECORD, json.dumps({"files": sorted(planned)}))
    return written
