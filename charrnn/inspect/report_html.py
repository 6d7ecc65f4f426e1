"""The HTML pieces of `charrnn report`: the page, its CSS, and text drawn character by
character with a colour per character (Karpathy's pictures).

Everything is inline (CSS in <style>, charts as <svg>, tooltips in CSS from data-
attributes): the file opens from disk with no network, and contains no URL at all.
"""
from html import escape

CSS = """
:root { --ink:#1d2330; --muted:#5b6577; --line:#e3e6ec; --bg:#fbfbfd; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       background: var(--bg); margin: 0; }
main { max-width: 1020px; margin: 0 auto; padding: 28px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; } h1 small { color: var(--muted); font-weight: 400; }
h2 { font-size: 19px; margin: 34px 0 8px; padding-top: 14px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.note { color: var(--muted); margin: 4px 0 10px; font-size: 14px; }
.kpis { display: flex; flex-wrap: wrap; gap: 8px; margin: 16px 0 6px; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 7px 12px; }
.kpi b { display: block; font-size: 19px; } .kpi span { color: var(--muted); font-size: 11.5px; }
.state-finished { color: #2b7a3d; } .state-interrupted { color: #b4561b; } .state-running { color: #1f5fb4; }
table { border-collapse: collapse; font-size: 13px; background: #fff; }
td, th { border: 1px solid var(--line); padding: 3px 9px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cols { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.scroll { max-height: 330px; overflow-y: auto; }
.charts { display: grid; grid-template-columns: 2fr 1fr; gap: 14px; }
svg.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; width: 100%; height: auto; }
@media (max-width: 760px) { .charts { grid-template-columns: 1fr; } }
svg .grid { stroke: #eceef2; } svg .frame { fill: none; stroke: #c9ced8; }
svg .tick { font-size: 11px; fill: var(--muted); } svg .label { font-size: 12px; fill: var(--ink); }
svg .ctitle { font-size: 13px; font-weight: 600; fill: var(--ink); }
svg .legend { fill: #fff; fill-opacity: .88; stroke: var(--line); }
.sample { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 6px 0;
          padding: 6px 10px; }
.sample .head { font-size: 12px; color: var(--muted); }
pre, .text { font: 13px/1.5 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
       white-space: pre-wrap; word-break: break-all; margin: 2px 0; }
.text { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.text span { position: relative; border-radius: 2px; }
.text span.nl { color: #9aa3b2; font-size: 10px; }
/* hover a character for the model's top 5; report.html#c123 pins character 123's */
.probs span:hover, .probs span:target { outline: 1.5px solid #222; z-index: 2; }
.probs span:hover::after, .probs span:target::after { content: attr(data-top); position: absolute; left: 0; top: 1.6em;
       white-space: pre; background: #1d2330; color: #fff; padding: 6px 9px; border-radius: 5px;
       font-size: 12px; line-height: 1.35; z-index: 3; pointer-events: none;
       box-shadow: 0 2px 8px rgba(0,0,0,.25); }
.scale { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; color: var(--muted); }
.scale i { display: inline-block; width: 150px; height: 10px; border-radius: 3px; }
.unit { margin-top: 14px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def page(title, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n</body>\n</html>\n")


def show_char(c):
    """A character as it reads in a tooltip: space, newline and tab made visible."""
    return {" ": "␣", "\n": "↵", "\t": "⇥"}.get(c, c if c.isprintable() else f"U+{ord(c):04X}")


def prob_colour(p):
    """Red (the model was surprised) through yellow to green (it saw it coming)."""
    return f"hsl({120 * p:.0f},75%,{82 - 6 * p:.0f}%)"


def activation_colour(a):
    """Blue for negative, white at 0, red for positive activations (|a| <= 1)."""
    a = max(-1.0, min(1.0, a))
    rgb = "214,39,40" if a > 0 else "31,119,180"
    return f"rgba({rgb},{abs(a) * 0.85:.2f})"


def _span(c, style, attrs=""):
    """One character: a newline shows as a faint ↵ and then breaks the line."""
    if c == "\n":
        return f'<span class="nl" style="{style}"{attrs}>↵</span>\n'
    return f'<span style="{style}"{attrs}>{escape(c)}</span>'


def probability_text(chars, target_probs, tops, start):
    """The passage, each character coloured by the probability the model gave it.

    chars: the characters; target_probs[i]: P(chars[i] | everything before); tops[i]:
    the model's five likeliest characters for that position [(char, p)]. start: the
    position of chars[0] in the held-out text (written to data-start for checks)."""
    out = [f'<div class="text probs" data-start="{start}">']
    for i, (c, p, top) in enumerate(zip(chars, target_probs, tops)):
        tip = (f"{show_char(c)}  p = {p:.4f}  ({-_log2(p):.2f} bits)\n"
               "model's top 5:\n" + "\n".join(f"  {show_char(a)}  {q:.4f}" for a, q in top))
        out.append(_span(c, f"background:{prob_colour(p)}",
                         f' id="c{i}" data-p="{p:.6f}" data-top="{escape(tip)}"'))
    out.append("</div>")
    return "".join(out)


def activation_text(chars, activations):
    """The passage, each character coloured by one unit's activation after reading it."""
    out = ['<div class="text acts">']
    for c, a in zip(chars, activations):
        out.append(_span(c, f"background:{activation_colour(float(a))}", f' data-a="{a:.4f}"'))
    out.append("</div>")
    return "".join(out)


def prob_scale():
    stops = ",".join(prob_colour(p / 10) for p in range(11))
    return (f'<span class="scale">p = 0 <i style="background:linear-gradient(90deg,{stops})">'
            f'</i> 1</span>')


def activation_scale():
    stops = ",".join(activation_colour(a / 5) for a in range(-5, 6))
    return (f'<span class="scale">&minus;1 <i style="background:linear-gradient(90deg,{stops})">'
            f'</i> +1</span>')


def table(rows, head=None, numeric=()):
    """An HTML table; columns whose index is in `numeric` are right-aligned."""
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f'<th class="{"num" if i in numeric else ""}">{escape(str(h))}</th>'
                                    for i, h in enumerate(head)) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="{"num" if i in numeric else ""}">{escape(str(v))}</td>'
                                    for i, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _log2(p):
    import math
    return math.log2(max(p, 1e-300))
