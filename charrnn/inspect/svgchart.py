"""Line charts as inline SVG text, for the self-contained HTML report.

No plotting library: a report must open from disk anywhere, and must not need the
[plot] extra. One chart = one set of axes with "nice" ticks (1, 2, 2.5, 5 x 10^k),
light grid lines, any number of series drawn as polylines and/or point markers
(each marker carries a <title>, so hovering it shows its exact value), and a legend.
"""
import math
from html import escape

import numpy as np

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf"]


def nice_ticks(lo, hi, count=5):
    """About `count` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def fmt_tick(v):
    """1500 -> '1.5k', 2e6 -> '2M', 0.0025 -> '0.0025', 1.25 -> '1.25'."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    if a and a < 1e-2:
        return f"{v:.3g}"
    return f"{v:g}"


class Chart:
    """chart = Chart(640, 300, x_label="step", y_label="nats/char")
    chart.line(xs, ys, color, label); chart.points(xs, ys, color, label, titles)
    svg_text = chart.svg()"""

    def __init__(self, width=640, height=300, x_label="", y_label="", title="",
                 y_range=None, log_y=False):
        self.w, self.h = width, height
        self.x_label, self.y_label, self.title = x_label, y_label, title
        self.y_range, self.log_y = y_range, log_y
        self.items = []   # (kind, xs, ys, color, label, extra)
        self.margin = (46 if title else 22, 16, 44, 62)   # top, right, bottom, left

    def line(self, xs, ys, color, label=None, width=1.5, opacity=1.0, dash=None):
        self.items.append(("line", np.asarray(xs, float), np.asarray(ys, float), color, label,
                           dict(width=width, opacity=opacity, dash=dash)))

    def points(self, xs, ys, color, label=None, titles=None, radius=3.2):
        self.items.append(("points", np.asarray(xs, float), np.asarray(ys, float), color, label,
                           dict(titles=titles, radius=radius)))

    def _ranges(self):
        xs = np.concatenate([i[1] for i in self.items]) if self.items else np.zeros(1)
        ys = np.concatenate([i[2] for i in self.items]) if self.items else np.zeros(1)
        x0, x1 = min(0.0, float(xs.min())), float(xs.max())   # steps start at 0
        y0, y1 = self.y_range or (float(ys.min()), float(ys.max()))
        if self.log_y:
            y0, y1 = math.log10(max(y0, 1e-12)), math.log10(max(y1, 1e-12))
        if y1 <= y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = 0.04 * (y1 - y0)
        if x1 <= x0:
            x1 = x0 + 1
        # a little room on the right, so the last point is not cut in half by the frame
        return x0, x1 + 0.015 * (x1 - x0), y0 - pad, y1 + pad

    def svg(self):
        top, right, bottom, left = self.margin
        pw, ph = self.w - left - right, self.h - top - bottom
        x0, x1, y0, y1 = self._ranges()
        sx = lambda v: left + (v - x0) / (x1 - x0) * pw
        ty = (lambda v: math.log10(max(v, 1e-12))) if self.log_y else (lambda v: v)
        sy = lambda v: top + ph - (ty(v) - y0) / (y1 - y0) * ph
        out = [f'<svg viewBox="0 0 {self.w} {self.h}" '
               f'width="{self.w}" height="{self.h}" class="chart" role="img">']
        if self.title:
            out.append(f'<text x="{left}" y="18" class="ctitle">{escape(self.title)}</text>')
        # grid and ticks
        for t in nice_ticks(x0, x1, 6):
            if x0 <= t <= x1:
                x = sx(t)
                out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" class="grid"/>')
                out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" class="tick" '
                           f'text-anchor="middle">{fmt_tick(t)}</text>')
        if self.log_y:
            yt = [10.0 ** e for e in range(math.floor(y0), math.ceil(y1) + 1)]
        else:
            yt = nice_ticks(y0, y1, 5)
        for t in yt:
            if y0 <= ty(t) <= y1:
                y = sy(t)
                out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="grid"/>')
                out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" '
                           f'text-anchor="end">{fmt_tick(t)}</text>')
        out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
        out.append(f'<text x="{left + pw / 2:.1f}" y="{self.h - 8}" class="label" '
                   f'text-anchor="middle">{escape(self.x_label)}</text>')
        out.append(f'<text transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" '
                   f'class="label" text-anchor="middle">{escape(self.y_label)}</text>')
        # data, clipped to the plot area
        out.append(f'<clipPath id="clip{id(self)}"><rect x="{left}" y="{top}" width="{pw}" '
                   f'height="{ph}"/></clipPath><g clip-path="url(#clip{id(self)})">')
        for kind, xs, ys, color, _, extra in self.items:
            if kind == "line" and len(xs):
                pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in _thin(xs, ys, pw))
                dash = f' stroke-dasharray="{extra["dash"]}"' if extra["dash"] else ""
                out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                           f'stroke-width="{extra["width"]}" stroke-opacity="{extra["opacity"]}"'
                           f'{dash}/>')
            elif kind == "points":
                for i, (a, b) in enumerate(zip(xs, ys)):
                    title = extra["titles"][i] if extra["titles"] else f"{a:g}, {b:g}"
                    out.append(f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="{extra["radius"]}" '
                               f'fill="{color}"><title>{escape(title)}</title></circle>')
        out.append("</g>")
        out.extend(self._legend(left + pw, top))
        out.append("</svg>")
        return "\n".join(out)

    def _legend(self, x_right, top):
        labels = [(c, l, k) for k, _, _, c, l, _ in self.items if l]
        if not labels:
            return []
        width = 14 + 6.6 * max(len(l) for _, l, _ in labels)
        x = x_right - width - 6
        out = [f'<rect x="{x - 6:.1f}" y="{top + 6}" width="{width + 6:.1f}" '
               f'height="{8 + 16 * len(labels)}" class="legend"/>']
        for i, (color, label, kind) in enumerate(labels):
            y = top + 18 + 16 * i
            if kind == "line":
                out.append(f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x + 10:.1f}" y2="{y - 4}" '
                           f'stroke="{color}" stroke-width="2"/>')
            else:
                out.append(f'<circle cx="{x + 5:.1f}" cy="{y - 4}" r="3.2" fill="{color}"/>')
            out.append(f'<text x="{x + 14:.1f}" y="{y}" class="tick">{escape(label)}</text>')
        return out


def _thin(xs, ys, pixels):
    """At most ~2 points per horizontal pixel: a 20,000-step curve stays a small file
    and looks the same (min and max of each bucket are kept, so spikes stay visible)."""
    n = len(xs)
    buckets = int(pixels)
    if n <= 2 * buckets:
        return list(zip(xs, ys))
    edges = np.linspace(0, n, buckets + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = ys[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        for k in sorted({i, j}):
            out.append((xs[k], ys[k]))
    return out
