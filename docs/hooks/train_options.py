"""MkDocs hook: the table of `charrnn train` options, read from TrainConfig.

Each option's default and help live once, in charrnn.training.options (the field
metadata of TrainConfig); `charrnn train --help` reads them there, and so does this
table, which replaces the marker below wherever a page holds it."""
from dataclasses import fields

MARKER = "<!-- train-options -->"


def options_table():
    from charrnn.training.options import TrainConfig

    rows = ["| option | default | meaning |", "|---|---|---|"]
    for f in fields(TrainConfig):
        default = f"auto: {f.metadata['auto'].removeprefix('auto: ')}" if f.default is None \
            else f"{f.default}"
        option = "--" + f.name.replace("_", "-")
        rows.append(f"| `{option}` | {default} | {f.metadata['help']} |")
    return "\n".join(rows)


def on_page_markdown(markdown, **kwargs):
    return markdown.replace(MARKER, options_table()) if MARKER in markdown else markdown
