"""MkDocs hook: renders bench/results/*.json into the page that holds the marker.

Each JSON file is one machine's session (machine, date, method, tables, notes); a table is
its title, the command that reproduces it, columns, rows, and a format per numeric
column (e.g. "{:,}" or "{:.2f}×"). The newest file (by date) is rendered first as the
current results, the others below it as history. A file that does not have these keys
stops the build with its name, so `mkdocs build --strict` (tests/test_docs.py) checks
every file.
"""
import json
from pathlib import Path

MARKER = "<!-- bench-results -->"
RESULTS = Path(__file__).resolve().parent / "results"


def load_results(folder=RESULTS):
    """Every session, newest first."""
    sessions = []
    for path in sorted(folder.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        missing = {"machine", "date", "method", "tables"} - d.keys()
        if missing:
            raise ValueError(f"{path}: missing {sorted(missing)}")
        for t in d["tables"]:
            if {"title", "command", "columns", "rows"} - t.keys():
                raise ValueError(f"{path}: table {t.get('title')!r} needs title, command, columns, rows")
            if any(len(row) != len(t["columns"]) for row in t["rows"]):
                raise ValueError(f"{path}: table {t['title']!r} has a row of the wrong length")
        sessions.append((path.name, d))
    return sorted(sessions, key=lambda s: s[1]["date"], reverse=True)


def table_markdown(t):
    fmts = t.get("formats", {})

    def cell(col, v):
        return fmts[col].format(v) if col in fmts and not isinstance(v, str) else str(v)

    numeric = [not isinstance(v, str) for v in t["rows"][0]] if t["rows"] else []
    lines = ["| " + " | ".join(t["columns"]) + " |",
             "|" + "|".join("--:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(t["columns"], row)) + " |"
              for row in t["rows"]]
    return "\n".join(lines)


def session_markdown(name, d, heading):
    out = [f"{heading} {d['machine']} ({d['date']})", "",
           f"{d['method']} Data: `bench/results/{name}`.", ""]
    for t in d["tables"]:
        out += [f"**{t['title']}**", "", "```sh", t["command"], "```", "", table_markdown(t), ""]
    out += [f"- {note}" for note in d.get("notes", [])]
    return "\n".join(out) + "\n"


def render(folder=RESULTS):
    sessions = load_results(folder)
    if not sessions:
        raise ValueError(f"no benchmark results in {folder}")
    (name, current), older = sessions[0], sessions[1:]
    parts = ["## Current results", "", session_markdown(name, current, "###"),
             "## History", "",
             "Earlier sessions on other machines, newest first. Only ratios within one "
             "session compare: the machines, builds and PyTorch's settings differ.", ""]
    parts += [session_markdown(n, d, "###") for n, d in older]
    return "\n".join(parts)


def on_page_markdown(markdown, page, config, files):
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown
