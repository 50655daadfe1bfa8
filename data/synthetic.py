"""Procedural synthetic facades: the toolkit's offline default dataset.

Each pair is a label map in the real facades palette and a pseudo-photo rendered from it, so every script runs
with no download and tests can check that a model really learns label map -> photo (the facades task B -> A).

Label maps are drawn like the CMP annotations of the real set: axis-aligned rectangles painted back to front.
Background (sky, roofs, neighbouring buildings) at the edges; one or two facades, each with its own grid of floors
and window columns (per-building counts, sizes and spacing, paired or attic windows); a ground floor of shop
fronts or of doors among windows; moldings along the roof line and between floors; sills under and cornices
(window hoods, as CMP labels them) over windows; balconies per window or along a floor; shutters or roller
blinds; deco (roof ornaments, friezes, panels over windows); pillars between window columns or shop fronts.

Photos are painted with the same rectangles in the same order, so photo edges line up with label edges.
Appearance depends on the class (dark glass with frames, mullions, sky reflection or curtains; wooden doors; shop
signs over lit windows; stone sills and hoods lit from above; railings the wall shows through; slatted shutters;
round-shaded pillars) and on a per-image style that a model has to infer or average: wall colour and texture
(plaster stains and rain streaks, brick courses, stone blocks, a rusticated ground floor), frame, shutter and door
colours, sky, roofs and neighbours, the sun direction of the soft shadows cast below moldings, cornices, sills,
balconies and deco, a lighting gradient and colour cast, then slight blur and sensor noise. Like the real photos,
some have black rectification wedges in background corners and cars or trees in front that no label shows.

Image ``i`` is a pure function of ``(seed, i)`` (``np.random.default_rng([seed, i])``), so a prefix of a larger
set equals the smaller set and any image can be regenerated alone. The splits are disjoint index ranges:
train 0-399, val 400-499, test 500-605 (the real split sizes). Drawing is at 256 px (or at ``size`` when larger);
smaller sizes reduce the photo by area interpolation and sample the class map at block centres, so label maps
stay exactly in :data:`PALETTE`.
"""

import functools
import os

import cv2
import numpy as np
from PIL import Image

from data.errors import I2IError

# Colours of the 12 CMP classes in the pix2pix facades label maps, in CMP class order.
# k-means centres of the flat pixels of the facades' train label halves.
# Ten centres are used exactly as listed there. Two entries of that list are not class colours:
#   * (0, 0, 128) [~0%] is JPEG ringing: it never occurs on flat pixels, only as 1-3 px seams between
#     dark red (shop) and blue regions;
#   * (15, 228, 242) [2.6%] is the mean of two classes that k-means merged. The flat pixels of train+val hold
#     two colours there, (1, 207, 255) [1.2% of flat pixels] and (32, 255, 224) [1.0%]; their modes are used.
# The 12 flat colours then lie along a jet colormap in this order, which is the CMP order (background, facade,
# window, door, cornice, sill, balcony, blind, deco, molding, pillar, shop). The real images agree, class by
# class:
#   background (0,0,223): large regions touching the image edges - sky, roofs, neighbouring buildings;
#   facade (0,48,255): the largest region, the wall itself;
#   window (1,128,255): ~30 small rectangles per image in regular grids;
#   door (1,207,255): tall rectangles on the ground floor (e.g. the arched gates of train/189, 185);
#   cornice (32,255,224): hoods / pediments right above windows (train/189, 328);
#   sill (112,254,142): thin bars (median 20x6 px) right under windows (train/265);
#   balcony (192,255,63): wide bands with iron railings across window bottoms (train/337, 20, 266);
#   blind (254,240,1): shutters beside or over windows, median 7x19 px (train/5 green shutters);
#   deco (255,159,1): ornaments, painted friezes, pediments (train/333, 71, 325);
#   molding (255,80,0): long horizontal bands between floors and at the roof line (median aspect 4.9);
#   pillar (253,1,1): tall thin vertical bars (median 6x25 px, train/87, 61);
#   shop (174,0,1): ground-floor shop fronts with signs (train/385, 234).
PALETTE = {
    "background": (0, 0, 223),
    "facade": (0, 48, 255),
    "window": (1, 128, 255),
    "door": (1, 207, 255),
    "cornice": (32, 255, 224),
    "sill": (112, 254, 142),
    "balcony": (192, 255, 63),
    "blind": (254, 240, 1),
    "deco": (255, 159, 1),
    "molding": (255, 80, 0),
    "pillar": (253, 1, 1),
    "shop": (174, 0, 1),
}
CLASS_NAMES = tuple(PALETTE)
PALETTE_ARRAY = np.array(list(PALETTE.values()), dtype=np.uint8)
(BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP) = range(12)

SPLIT_SIZES = {"train": 400, "val": 100, "test": 106}
SPLIT_STARTS = {"train": 0, "val": 400, "test": 500}
BASE_SIZE = 256

# Wall colours seen on the real photos (cream, beige, ochre, greys, pink, white, pale green, yellow, blue-grey),
# brick, window-frame, shutter, door and roof colours; each image jitters its picks.
_WALLS = np.array([(225, 212, 180), (205, 185, 145), (205, 168, 100), (185, 184, 178), (125, 123, 118),
                   (215, 172, 160), (236, 234, 226), (180, 190, 160), (230, 214, 145), (152, 162, 172)],
                  np.float32)
_BRICKS = np.array([(150, 72, 55), (122, 68, 52), (170, 100, 75), (110, 50, 45)], np.float32)
_FRAMES = np.array([(240, 238, 232), (225, 220, 205), (70, 50, 35), (60, 62, 64), (120, 85, 55)], np.float32)
_SHUTTERS = np.array([(60, 100, 60), (110, 75, 45), (225, 225, 215), (150, 155, 150), (80, 100, 120),
                      (170, 60, 45)], np.float32)
_WOODS = np.array([(80, 50, 30), (55, 40, 30), (40, 70, 50), (100, 40, 30), (35, 35, 40)], np.float32)
_METALS = np.array([(30, 30, 32), (45, 42, 40), (35, 45, 40)], np.float32)
_ROOFS = np.array([(70, 72, 78), (110, 60, 45), (140, 75, 55), (60, 60, 60), (95, 105, 100)], np.float32)
_SKIES = np.array([(110, 150, 205), (150, 175, 210), (195, 200, 205), (215, 218, 222)], np.float32)
_CARS = np.array([(25, 25, 28), (230, 230, 230), (160, 162, 165), (30, 45, 90), (150, 25, 25), (90, 90, 95)],
                 np.float32)
_SIGNS = np.array([(180, 30, 30), (30, 60, 140), (20, 20, 20), (220, 180, 40), (30, 110, 60), (230, 230, 225)],
                  np.float32)


def _pick(rng, colours, jitter=0.0):
    colour = colours[rng.integers(len(colours))]
    return np.minimum(colour * rng.uniform(1 - jitter, 1 + jitter, 3).astype(np.float32), 255)


def _smooth_noise(rng, h, w, cells):
    """Zero-mean noise with blobs of about ``max(h, w) / cells`` px and roughly unit amplitude."""
    gh, gw = max(2, int(round(cells * h / max(h, w)))), max(2, int(round(cells * w / max(h, w))))
    return cv2.resize(rng.standard_normal((gh, gw), dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _tint(colour, shade):
    """``colour`` (3,) times ``shade`` (h, w): an (h, w, 3) float32 patch (cv2.merge: ~10x faster than numpy)."""
    shade = np.asarray(shade, np.float32)
    return cv2.merge([shade * np.float32(c) for c in colour])


def _gray3(m):
    """A (h, w) float32 map repeated on 3 channels, for multiplying a photo in place."""
    return cv2.cvtColor(np.ascontiguousarray(m, np.float32), cv2.COLOR_GRAY2RGB)


@functools.lru_cache(maxsize=4)
def _noise_bank(res):
    """A fixed N(0, 1) field; images take random crops of it (several times faster than fresh noise)."""
    bank = np.random.default_rng(606).standard_normal((2 * res, 2 * res, 3), dtype=np.float32)
    bank.flags.writeable = False
    return bank


class _Canvas:
    """The class map and the photo, painted together rectangle by rectangle (painter's algorithm)."""

    def __init__(self, rng, res):
        self.rng, self.res, self.px = rng, res, res / BASE_SIZE
        self.ids = np.zeros((res, res), np.uint8)
        self.photo = np.zeros((res, res, 3), np.float32)

    def grain(self, h, w, channels=None):
        """An ``h x w`` (or ``h x w x 3`` with ``channels=3``) crop of white noise (read-only)."""
        bank = _noise_bank(self.res)
        y, x = self.rng.integers(0, bank.shape[0] - h + 1), self.rng.integers(0, bank.shape[1] - w + 1)
        return bank[y : y + h, x : x + w] if channels else bank[y : y + h, x : x + w, self.rng.integers(3)]

    def clip(self, y0, y1, x0, x1):
        """Round a box to whole pixels inside the image."""
        r = self.res
        return (min(max(round(y0), 0), r), min(max(round(y1), 0), r),
                min(max(round(x0), 0), r), min(max(round(x1), 0), r))

    def paint(self, cls, box, render, mask=None):
        """Set class ``cls`` on ``box`` (y0, y1, x0, x1) and the photo to ``render(h, w, under)`` there.

        ``under`` is what the photo holds before; ``mask(h, w)`` limits both to part of the box.
        """
        y0, y1, x0, x1 = self.clip(*box)
        if y1 <= y0 or x1 <= x0:
            return
        under = self.photo[y0:y1, x0:x1]
        patch = render(y1 - y0, x1 - x0, under)
        if mask is None:
            self.ids[y0:y1, x0:x1] = cls
            under[:] = patch
        else:
            m = mask(y1 - y0, x1 - x0)
            self.ids[y0:y1, x0:x1][m] = cls
            under[m] = patch[m]


class _Variants:
    """A few looks of one element type on one building; each is rendered once per patch size and reused.

    Real buildings repeat their windows, sills and shutters; reusing patches also keeps rendering fast.
    """

    def __init__(self, rng, make, n=1):
        self.rng, self.make, self.n = rng, make, n
        self.looks, self.patches = {}, {}

    def __call__(self):
        look = int(self.rng.integers(self.n))

        def render(h, w, under):
            key = (h, w, look)
            if key not in self.patches:
                if look not in self.looks:
                    self.looks[look] = self.make()
                self.patches[key] = self.looks[look](h, w, under)
            return self.patches[key]

        return render


# ---------------------------------------------------------------------------------------------------------
# Materials: each returns ``render(h, w, under) -> h x w x 3 float patch`` for :meth:`_Canvas.paint`.

def _wall(canvas, kind=None, family=None):
    """A wall: plaster, brick courses or stone blocks, with stains, rain streaks and fine grain.

    ``family`` picks the base colour (an index into the wall or brick colours); random when None.
    """
    rng, px = canvas.rng, canvas.px
    kind = kind or rng.choice(["plaster", "plaster", "brick", "stone"])
    colours = _BRICKS if kind == "brick" else _WALLS
    base = _pick(rng, colours, 0.08) if family is None else _pick(rng, colours[family % len(colours)][None], 0.06)

    def render(h, w, under):
        shade = 1 + rng.uniform(0.03, 0.09) * _smooth_noise(rng, h, w, rng.uniform(3, 8))
        shade += rng.uniform(0.01, 0.04) * canvas.grain(h, w)
        if rng.random() < 0.5:  # rain streaks
            streaks = rng.standard_normal((3, max(2, int(w / (4 * px)))), dtype=np.float32)
            shade -= rng.uniform(0.03, 0.1) * np.maximum(cv2.resize(streaks, (w, h)), 0)
        if kind != "plaster":
            course = max(3, int(round(px * (rng.uniform(3, 5) if kind == "brick" else rng.uniform(8, 14)))))
            length = int(round(course * (rng.uniform(2.2, 3) if kind == "brick" else rng.uniform(1.5, 3.5))))
            y = np.arange(h)[:, None]
            row = y // course
            x = np.arange(w)[None, :] + (row % 2) * (length // 2)
            unit = rng.uniform(0.88, 1.12, (64, 64)).astype(np.float32)
            shade *= unit[row % 64, (x // length) % 64]
            joint = (y % course == 0) | (x % length == 0)
            shade = np.where(joint, rng.uniform(0.75, 1.25 if kind == "brick" else 0.85), shade)
        return _tint(base, shade)

    return render, base


def _sky_and_neighbours(canvas):
    """Sky gradient over the frame, with neighbouring walls (and their dark windows) at the sides."""
    rng, res, px = canvas.rng, canvas.res, canvas.px
    top = _pick(rng, _SKIES, 0.05)
    horizon = np.clip(top + rng.uniform(25, 60), 0, 255)
    t = (np.arange(res, dtype=np.float32) / res)[:, None, None] ** 0.7
    canvas.photo[:] = cv2.resize(top * (1 - t) + horizon * t, (res, res), interpolation=cv2.INTER_NEAREST)
    for side in (0, 1):
        if rng.random() < 0.35:
            continue
        width, roof = int(res * rng.uniform(0.15, 0.5)), int(res * rng.uniform(0.0, 0.45))
        region = canvas.photo[roof:, :width] if side == 0 else canvas.photo[roof:, res - width :]
        colour = _pick(rng, _WALLS, 0.15) * rng.uniform(0.6, 1.0)
        shade = 1 + 0.06 * _smooth_noise(rng, res - roof, width, 6)
        pitch_y, pitch_x = rng.uniform(18, 30) * px, rng.uniform(14, 26) * px
        rows = (np.arange(res - roof)[:, None] % pitch_y) < pitch_y * 0.5
        cols = ((np.arange(width)[None, :] + rng.uniform(0, pitch_x)) % pitch_x) < pitch_x * 0.45
        shade[rows & cols] *= rng.uniform(0.25, 0.5)
        region[:] = _tint(colour, shade)


def _roof(canvas):
    """A tiled or slate roof above a facade, seen from below (drawn as background, like the real labels)."""
    rng, px = canvas.rng, canvas.px
    colour = _pick(rng, _ROOFS, 0.1)
    slope, period = rng.uniform(0.2, 1.0), rng.uniform(2, 4) * px

    def render(h, w, under):
        rows = 0.85 + 0.15 * np.cos(2 * np.pi * np.arange(h, dtype=np.float32) / period)
        out = _tint(colour, rows[:, None] * (1 + 0.05 * canvas.grain(h, w)))
        out[-max(1, int(px)) :] *= 0.5  # eave
        return out

    def mask(h, w):
        inset = (h - 1 - np.arange(h)[:, None]) * slope
        x = np.arange(w)[None, :]
        return (x >= inset) & (x < w - inset)

    return render, mask


def _glass(canvas, style):
    """A window: dark interior mixed with sky reflection, sometimes curtains; frame with mullion and transom."""
    rng, px = canvas.rng, canvas.px
    reflect = rng.uniform(0.0, 0.9) ** 1.5
    curtain = rng.uniform(0.2, 0.5) if rng.random() < 0.25 else 0
    pane_colour = _pick(rng, style["interior"][None], 0.2) * (1 - reflect)
    frame = style["frame"]

    def render(h, w, under):
        t = np.arange(h, dtype=np.float32)[:, None, None] / h
        pane = np.broadcast_to(pane_colour + style["sky"] * reflect * (1 - 0.4 * t), (h, w, 3)).copy()
        if curtain:
            pane[: max(1, int(h * curtain))] = style["curtain"]
        f = max(1, int(round(min(h, w) * 0.1 + 0.3 * px)))
        pane[:f], pane[-f:], pane[:, :f], pane[:, -f:] = frame, frame * 0.8, frame * 0.9, frame * 0.85
        if w >= 7 * px:
            pane[:, w // 2 - f // 2 : w // 2 - f // 2 + f] = frame
        if h >= 12 * px:
            pane[int(h * 0.3) : int(h * 0.3) + f] = frame
        pane[f : 2 * f, f:-f] *= 0.6  # shadow of the lintel in the opening
        return pane

    return render


def _door(canvas, style):
    rng, px = canvas.rng, canvas.px
    wood = _pick(rng, style["wood"][None], 0.15)
    glazed = rng.random() < 0.3

    def render(h, w, under):
        d = np.broadcast_to(wood, (h, w, 3)).copy()
        b = max(1, int(round(1.5 * px)))
        d[:b], d[:, :b], d[:, -b:] = wood * 0.6, wood * 0.6, wood * 0.6
        if glazed:
            d[2 * b : h // 2, 2 * b : -2 * b] = style["interior"] * 0.8 + style["sky"] * 0.2
        else:
            for y in (int(h * 0.15), int(h * 0.55)):
                d[y : y + b, 2 * b : -2 * b] = wood * 0.7
            d[:, w // 2 : w // 2 + b] = wood * 0.55
        return d

    return render


def _shop(canvas, style):
    """A shop front: sign band with letters over a dark window with lit displays."""
    rng, px = canvas.rng, canvas.px
    sign = _pick(rng, _SIGNS, 0.1)

    def render(h, w, under):
        s = np.broadcast_to(style["interior"] * rng.uniform(0.8, 1.6), (h, w, 3)).copy()
        for _ in range(rng.integers(2, 6)):
            y0, x0 = rng.integers(int(h * 0.3), h), rng.integers(0, w)
            s[y0 : y0 + rng.integers(2, max(3, h // 3)), x0 : x0 + rng.integers(2, max(3, w // 3))] = \
                rng.uniform(60, 230, 3)
        band = max(2, int(h * rng.uniform(0.15, 0.3)))
        s[:band] = sign
        for x0 in rng.integers(0, w, rng.integers(0, 8)):
            s[band // 4 : band - band // 4, x0 : x0 + max(1, int(2 * px))] = 255 - sign * 0.5
        b = max(1, int(round(px)))
        s[band : band + b] = 20
        s[:, :b] = s[:, -b:] = 40
        return s

    return render


def _relief(canvas, colour, vertical=False, shading=0.25):
    """Projecting stone work (cornice, molding, sill, pillar): lit from above, or round for pillars."""

    def render(h, w, under):
        if vertical:  # a round column: bright in the middle, dark at the sides
            t = np.arange(w, dtype=np.float32)[None, :] * (2 / max(w - 1, 1)) - 1
            profile = 1 + shading * (np.cos(t * (np.pi / 2)) - 0.5)
        else:  # a ledge: bright top face, darker underside
            t = np.arange(h, dtype=np.float32)[:, None] * (2 / max(h - 1, 1)) - 1
            profile = 1 + shading * 0.8 * (0.4 - t)
        return _tint(colour, profile * (1 + 0.03 * canvas.grain(h, w)))

    return render


def _balcony(canvas, style, kind):
    """Iron railing (what is behind shows through, shaded) or stone balustrade, on a slab."""
    rng, px = canvas.rng, canvas.px
    metal = _pick(rng, _METALS)
    pitch = max(2, int(round(rng.uniform(2, 4) * px))) if kind == "railing" else rng.uniform(3, 6) * px

    def render(h, w, under):
        x = np.arange(w)
        slab = max(1, int(round(h * 0.15)))
        if kind == "railing":
            out = under * 0.7
            out[:, x % pitch == 0] = metal
            out[: max(1, int(px))] = metal
        else:
            phase = np.cos(2 * np.pi * x / pitch).astype(np.float32)
            out = style["stone"] * (0.85 + 0.2 * phase)[None, :, None] * np.ones((h, 1, 1), np.float32)
            out[:slab] = style["stone"] * 1.1
        out[-slab:] = style["stone"] * 0.75
        return out

    return render


def _blind(canvas, style, roller):
    """Shutters beside a window (framed) or a roller blind in it: slats of the image's shutter colour."""
    rng, px = canvas.rng, canvas.px
    colour = _pick(rng, style["shutter"][None], 0.1)
    period = rng.uniform(2, 3.5) * px

    def render(h, w, under):
        slats = 0.85 + 0.15 * np.cos(2 * np.pi * np.arange(h, dtype=np.float32) / period)
        out = colour * slats[:, None, None] * np.ones((1, w, 1), np.float32)
        if not roller:
            b = max(1, int(px))
            out[:, :b] *= 0.7
            out[:, -b:] *= 0.7
        return out

    return render


def _deco(canvas, style):
    """Ornament: a relief of random blobs in stone or wall colour."""
    rng, px = canvas.rng, canvas.px
    tone = style["stone"] if rng.random() < 0.5 else np.clip(style["wall"] * 1.1, 0, 255)

    def render(h, w, under):
        relief = np.tanh(2 * _smooth_noise(rng, h, w, max(2, max(h, w) / (5 * px))))
        return _tint(tone, 1 + 0.25 * relief)

    return render


# ---------------------------------------------------------------------------------------------------------
# Layout: one building at a time, back to front.

def _building(canvas, style, x0, x1, top, bottom):
    """One facade between columns ``x0, x1`` and rows ``top, bottom`` with its own grid and decoration."""
    rng, px, res = canvas.rng, canvas.px, canvas.res
    width, height = x1 - x0, bottom - top
    if top > 0.04 * res and rng.random() < 0.5:
        canvas.paint(BACKGROUND, (top - min(top, rng.uniform(0.03, 0.12) * res), top, x0, x1), *_roof(canvas))
    # The decoration is drawn first because it decides the wall: the material and colour family follow
    # the facade's visible style (bare facades are brick; hoods, moldings, sills and shutters select one
    # of the plaster/stone colours), so the colour of a wall is inferable from its label map, up to a
    # per-image jitter - learnable, but only from context, not from the pixel's own class.
    has_sills, has_hoods, moldings = rng.random() < 0.75, rng.random() < 0.5, rng.random() < 0.55
    shutters = rng.random() < 0.2
    family = int(has_sills) + 2 * int(has_hoods) + 4 * int(shutters) + int(moldings)
    kind = ("brick" if not (has_hoods or moldings) and rng.random() < 0.7
            else ("stone" if family % 3 == 2 else "plaster"))
    wall, wall_colour = _wall(canvas, kind, family)
    canvas.paint(FACADE, (top, bottom, x0, x1), wall)
    stone_colour = _pick(rng, np.minimum(wall_colour * 0.3 + 170, 255)[None], 0.05)  # sills, balustrades
    style = dict(style, wall=wall_colour, stone=stone_colour)

    def stone(k=1.12):
        return _Variants(rng, lambda: _relief(canvas, np.minimum(style["wall"] * k, 255)))

    glass = _Variants(rng, lambda: _glass(canvas, style), 3)
    shutter, roller_blind = (_Variants(rng, lambda r=r: _blind(canvas, style, r), 2) for r in (False, True))
    molding_stone, cornice_stone, sill_stone = stone(), stone(1.2), stone(1.25)

    # The grid: floors, ground floor, window columns (per building).
    roof = rng.uniform(0.02, 0.05) * res if rng.random() < 0.75 else 0
    floors = int(rng.integers(3, 8)) if height > 0.4 * res else int(rng.integers(2, 4))
    ground_ratio = rng.uniform(1.1, 1.6)
    fh = (height - roof) / (floors - 1 + ground_ratio)
    ground_top = bottom - ground_ratio * fh
    floor_tops = [top + roof + f * fh for f in range(floors - 1)]
    cols = max(1, int(round(width / (rng.uniform(18, 45) * px))))
    pitch = width / cols
    ww, wh, woff = pitch * rng.uniform(0.35, 0.65), fh * rng.uniform(0.45, 0.72), fh * rng.uniform(0.15, 0.3)
    paired = rng.random() < 0.15 and ww > 12 * px
    sill, hood = max(2 * px, 0.012 * res * rng.uniform(0.8, 1.4)), rng.uniform(0.015, 0.035) * res
    ext = rng.uniform(0, 3) * px  # how far sills and hoods reach past the window

    roller = not shutters and rng.random() < 0.2
    balcony = rng.choice(["none", "none", "per-window", "band", "first-floor"])
    balcony_kind = rng.choice(["railing", "stone"])
    pillars, ground_pillars = rng.random() < 0.2, rng.random() < 0.3
    deco_above, attic = rng.random() < 0.3, rng.random() < 0.3

    if rng.random() < 0.35:  # ground floor in rusticated stone of another colour
        canvas.paint(FACADE, (ground_top, bottom, x0, x1), _wall(canvas, "stone")[0])
    if roof:
        canvas.paint(MOLDING, (top, top + roof, x0, x1), stone(1.15)())
        if rng.random() < 0.15:  # frieze under the roof line
            frieze = top + roof + rng.uniform(0.02, 0.05) * res
            canvas.paint(DECO, (top + roof, frieze, x0, x1), _deco(canvas, style))
        if top > 0.05 * res and rng.random() < 0.45:  # ornaments, a pediment on the roof line
            for cx in rng.uniform(x0, x1, rng.integers(1, 4)):
                s = rng.uniform(0.03, 0.09) * res
                canvas.paint(DECO, (top - s, top, cx - s, cx + s), _deco(canvas, style))
    if pillars and floor_tops:
        pw = rng.uniform(0.015, 0.035) * res
        for c in range(cols + 1):
            cx = x0 + c * pitch
            canvas.paint(PILLAR, (floor_tops[0], ground_top, cx - pw / 2, cx + pw / 2),
                         _relief(canvas, style["stone"], vertical=True, shading=0.35))

    for f, ft in enumerate(floor_tops):
        if moldings and f > 0:
            canvas.paint(MOLDING, (ft - 0.012 * res, ft + 0.006 * res, x0, x1), molding_stone())
        wy0 = ft + woff
        wy1 = wy0 + wh * (0.6 if attic and f == 0 and floors > 3 else 1.0)
        band = balcony == "band" and f > 0 or balcony == "first-floor" and f == floors - 2
        for c in range(cols):
            cx = x0 + (c + 0.5) * pitch
            left, right = cx - ww / 2, cx + ww / 2
            hood_top = wy0 - px - (hood if has_hoods and f > 0 else 0)
            if has_hoods and f > 0:
                canvas.paint(CORNICE, (hood_top, wy0 - px, left - ext, right + ext), cornice_stone())
            if deco_above and f > 0:
                dh = min(hood_top - ft - px, rng.uniform(0.02, 0.04) * res)
                if dh > 2 * px:
                    canvas.paint(DECO, (hood_top - dh, hood_top, cx - ww / 3, cx + ww / 3),
                                 _deco(canvas, style))
            if shutters:
                sw = ww * rng.uniform(0.35, 0.5)
                for a, b in ((left - sw, left), (right, right + sw)):
                    canvas.paint(BLIND, (wy0, wy1, a, b), shutter())
            panes = [(left, cx - 1.5 * px), (cx + 1.5 * px, right)] if paired else [(left, right)]
            for a, b in panes:
                canvas.paint(WINDOW, (wy0, wy1, a, b), glass())
                if roller and rng.random() < 0.5:
                    canvas.paint(BLIND, (wy0, wy0 + (wy1 - wy0) * rng.uniform(0.2, 0.9), a, b),
                                 roller_blind())
            if balcony == "per-window" and f > 0:
                canvas.paint(BALCONY, (wy1 - wh * 0.3, wy1 + 0.012 * res, left - 2 * ext - 2 * px,
                                       right + 2 * ext + 2 * px), _balcony(canvas, style, balcony_kind))
            elif has_sills and not band:
                canvas.paint(SILL, (wy1, wy1 + sill, left - ext, right + ext), sill_stone())
        if band:  # one balcony along the whole floor, in front of the windows
            canvas.paint(BALCONY, (wy1 - wh * 0.35, wy1 + 0.01 * res, x0 + 2 * px, x1 - 2 * px),
                         _balcony(canvas, style, balcony_kind))

    # Ground floor: shop fronts (between pilasters or wall), or doors among windows.
    if moldings or rng.random() < 0.5:
        canvas.paint(MOLDING, (ground_top - 0.015 * res, ground_top + 0.005 * res, x0, x1), molding_stone())
    if rng.random() < 0.6:
        edges = np.linspace(x0, x1, int(rng.integers(1, 4)) + 1)
        sy0 = ground_top + (bottom - ground_top) * rng.uniform(0.1, 0.35)
        gap = rng.uniform(2, 8) * px
        for a, b in zip(edges[:-1], edges[1:]):
            canvas.paint(SHOP, (sy0, bottom, a + gap, b - gap), _shop(canvas, style))
        if ground_pillars:
            for e in edges:
                canvas.paint(PILLAR, (ground_top, bottom, e - gap, e + gap),
                             _relief(canvas, style["stone"], vertical=True))
        if rng.random() < 0.4:
            cx = rng.uniform(edges[0] + gap + 0.6 * ww, edges[-1] - gap - 0.6 * ww)
            canvas.paint(DOOR, (sy0 + 0.1 * (bottom - sy0), bottom, cx - 0.6 * ww, cx + 0.6 * ww),
                         _door(canvas, style))
        return
    door_cols = {cols // 2} if rng.random() < 0.5 else \
        set(rng.choice(cols, size=min(cols, int(rng.integers(1, 3))), replace=False).tolist())
    gy0 = ground_top + (bottom - ground_top) * rng.uniform(0.2, 0.35)
    for c in range(cols):
        cx = x0 + (c + 0.5) * pitch
        if c in door_cols:
            dw = ww * rng.uniform(0.9, 1.6) / 2
            door_top = ground_top + (bottom - ground_top) * rng.uniform(0.1, 0.3)
            canvas.paint(DOOR, (door_top, bottom, cx - dw, cx + dw),
                         _door(canvas, style))
        elif rng.random() < 0.85:
            canvas.paint(WINDOW, (gy0, gy0 + wh * rng.uniform(0.9, 1.1), cx - ww / 2, cx + ww / 2),
                         glass())
        if ground_pillars and c > 0:
            pw = rng.uniform(0.015, 0.03) * res
            canvas.paint(PILLAR, (ground_top, bottom, cx - pitch / 2 - pw / 2, cx - pitch / 2 + pw / 2),
                         _relief(canvas, style["stone"], vertical=True))


def _street_clutter(canvas):
    """Parked cars and trees in front of the facade: in the photo only, as in the real label maps."""
    rng, res, photo = canvas.rng, canvas.res, canvas.photo
    if rng.random() < 0.25:
        for _ in range(rng.integers(1, 4)):
            cw, ch = rng.uniform(0.15, 0.3) * res, rng.uniform(0.06, 0.1) * res
            cx, y1 = rng.uniform(0, res), res - rng.uniform(0, 0.02) * res
            body = _pick(rng, _CARS, 0.1)
            cv2.rectangle(photo, (int(cx - cw / 2), int(y1 - ch * 0.6)), (int(cx + cw / 2), int(y1)),
                          body.tolist(), -1)
            cv2.rectangle(photo, (int(cx - cw / 3), int(y1 - ch)), (int(cx + cw / 4), int(y1 - ch * 0.6)),
                          (body * 0.4).tolist(), -1)
            for wx in (cx - cw / 3, cx + cw / 3):
                cv2.circle(photo, (int(wx), int(y1)), int(ch * 0.2), (20, 20, 20), -1)
    if rng.random() < 0.15:
        r = rng.uniform(0.08, 0.18) * res
        cx, cy = rng.uniform(0, res), res - r * rng.uniform(1.3, 2.2)
        trunk = max(1, int(r * 0.12))
        cv2.rectangle(photo, (int(cx) - trunk, int(cy)), (int(cx) + trunk, res), (60, 45, 35), -1)
        y0, y1, x0, x1 = canvas.clip(cy - r, cy + r, cx - r, cx + r)
        if y1 > y0 and x1 > x0:
            yy = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / r
            xx = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / r
            leaves = _smooth_noise(rng, y1 - y0, x1 - x0, 6)
            crown = yy**2 + xx**2 + 0.3 * leaves < 1
            green = _pick(rng, np.array([(70, 100, 45), (50, 80, 40), (95, 110, 60)], np.float32), 0.1)
            photo[y0:y1, x0:x1][crown] = _tint(green, 1 + 0.3 * leaves)[crown]


def _cast_shadows(canvas):
    """Soft shadows below projecting elements, along a per-image sun direction, on what lies behind them."""
    rng, px = canvas.rng, canvas.px
    casters = np.isin(canvas.ids, (CORNICE, SILL, BALCONY, MOLDING, DECO)).astype(np.float32)
    length = max(2, int(round(rng.uniform(3, 8) * px)))
    slope = rng.uniform(-0.8, 0.8)
    weights = np.exp(-1.5 * np.arange(1, length + 1) / length)
    weights *= 2.5 / weights.sum()
    shadow = np.zeros_like(casters)
    res = canvas.res
    for d, w in enumerate(weights, start=1):  # the caster shifted down by d and sideways by slope * d
        s = int(round(slope * d))
        shadow[d:, max(s, 0) : res + min(s, 0)] += w * casters[:-d, max(-s, 0) : res - max(s, 0)]
    np.minimum(shadow, 1, out=shadow)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.7 * px) * (1 - casters)
    np.multiply(canvas.photo, _gray3(1 - rng.uniform(0.3, 0.55) * shadow), out=canvas.photo)


def _camera(canvas):
    """Lighting gradient and colour cast, rectification wedges, lens blur and sensor noise -> uint8 photo."""
    rng, res, px = canvas.rng, canvas.res, canvas.px
    y = (np.arange(res, dtype=np.float32) / res - 0.5)[:, None]
    x = (np.arange(res, dtype=np.float32) / res - 0.5)[None, :]
    light = rng.uniform(0.8, 1.15) * (1 + rng.uniform(-0.3, 0.3) * x + rng.uniform(-0.3, 0.2) * y)
    photo = cv2.multiply(canvas.photo, _tint(rng.uniform(0.93, 1.07, 3), light))
    if rng.random() < 0.3:  # black wedge of the rectification in a corner, over background only
        a, b = rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.3)
        yy, xx = (0.5 + y if rng.random() < 0.5 else 0.5 - y), (0.5 + x if rng.random() < 0.5 else 0.5 - x)
        photo[(yy / a + xx / b < 1) & (canvas.ids == BACKGROUND)] = 0
    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.4, 0.9) * px)
    photo += rng.uniform(1.5, 4.0) * canvas.grain(res, res, channels=3) + 0.5
    return np.clip(photo, 0, 255, out=photo).astype(np.uint8)


def _render(seed, index, res):
    """Class map (``res x res`` class ids) and photo (``res x res x 3`` uint8) of image ``index``."""
    rng = np.random.default_rng([seed, index])
    canvas = _Canvas(rng, res)
    _sky_and_neighbours(canvas)
    style = {
        "sky": _pick(rng, _SKIES, 0.05),
        "interior": _pick(rng, np.array([(30, 30, 35)], np.float32), 0.4),
        "curtain": _pick(rng, np.array([(220, 215, 200)], np.float32), 0.08),
        "frame": _pick(rng, _FRAMES, 0.05),
        "shutter": _pick(rng, _SHUTTERS),
        "wood": _pick(rng, _WOODS),
    }
    top = 0 if rng.random() < 0.15 else rng.uniform(0.03, 0.3) * res
    left = 0 if rng.random() < 0.5 else rng.uniform(0.03, 0.2) * res
    right = res if rng.random() < 0.5 else res - rng.uniform(0.03, 0.2) * res
    bottom = res if rng.random() < 0.8 else res - rng.uniform(0.02, 0.06) * res
    spans = [(left, right, top)]
    if rng.random() < 0.3 and right - left > 0.6 * res:  # two adjacent buildings
        split = left + rng.uniform(0.35, 0.65) * (right - left)
        other_top = min(0.5 * res, max(0.0, top + rng.uniform(-0.15, 0.15) * res))
        spans = [(left, split, top), (split, right, other_top)]
    for x0, x1, t in spans:
        t, b, x0, x1 = canvas.clip(t, bottom, x0, x1)
        _building(canvas, style, x0, x1, t, b)
    _cast_shadows(canvas)
    _street_clutter(canvas)
    return canvas.ids, _camera(canvas)


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise I2IError(f"synthetic facades: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_pairs(n, size=256, seed=0, start=0):
    """``n`` synthetic pairs ``(labels, photos)``, uint8 arrays of shape ``(n, size, size, 3)``.

    Image ``i`` depends only on ``(seed, start + i)``. Below 256 px the 256 px rendering is reduced: photos by
    area interpolation, label maps by sampling each block's centre pixel (so they stay in :data:`PALETTE`);
    larger sizes are drawn at that size.
    """
    n, size, start = _check_count("n", n, 0), _check_count("size", size, 8), _check_count("start", start, 0)
    seed = _check_count("seed", seed, 0)
    res = max(size, BASE_SIZE)
    centres = ((np.arange(size) + 0.5) * res / size).astype(int)
    labels = np.empty((n, size, size, 3), np.uint8)
    photos = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        ids, photo = _render(seed, start + i, res)
        if size != res:
            ids = ids[np.ix_(centres, centres)]
            photo = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        labels[i] = np.take(PALETTE_ARRAY, ids, axis=0)
        photos[i] = photo
    return labels, photos


def make_split(split, size=256, seed=0):
    """The ``train`` / ``val`` / ``test`` split (400 / 100 / 106 pairs, like the real facades set)."""
    if split not in SPLIT_SIZES:
        raise I2IError(f"synthetic facades have no split '{split}' (splits: {', '.join(SPLIT_SIZES)})")
    return make_pairs(SPLIT_SIZES[split], size=size, seed=seed, start=SPLIT_STARTS[split])


def write_ab_folder(root, size=256, seed=0, counts=None, ext=".png"):
    """Write ``root/{train,val,test}/1.png, 2.png, ...`` in the pix2pix A|B layout (photo left, label right).

    ``counts`` maps split -> number of pairs (the first ones of that split); only the splits it names are
    written. Default: all of :data:`SPLIT_SIZES`. PNG is lossless; ``ext=".jpg"`` (quality 95) imitates the
    real set, JPEG noise included, so its label halves are no longer palette-exact. Returns ``{split: [paths]}``.
    """
    counts = dict(SPLIT_SIZES) if counts is None else dict(counts)
    if ext.lower() not in (".png", ".jpg", ".jpeg"):
        raise I2IError(f"synthetic facades: cannot write '{ext}' files (use .png or .jpg)")
    written = {}
    for split, count in counts.items():
        if split not in SPLIT_SIZES:
            raise I2IError(f"synthetic facades have no split '{split}' (splits: {', '.join(SPLIT_SIZES)})")
        count = _check_count(f"counts['{split}']", count, 0)
        if count > SPLIT_SIZES[split]:
            raise I2IError(
                f"synthetic facades: split '{split}' has {SPLIT_SIZES[split]} pairs, asked for {count}")
        labels, photos = make_pairs(count, size=size, seed=seed, start=SPLIT_STARTS[split])
        folder = os.path.join(str(root), split)
        os.makedirs(folder, exist_ok=True)
        written[split] = []
        for i in range(count):
            path = os.path.join(folder, f"{i + 1}{ext}")
            Image.fromarray(np.concatenate([photos[i], labels[i]], axis=1)).save(path, quality=95)
            written[split].append(path)
    return written
