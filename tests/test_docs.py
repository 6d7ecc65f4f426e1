"""The docs: the site builds strictly, Getting started's commands work as written, and the
README stays a short page for users that CI can still read its test command from.

Needs mkdocs, mkdocs-material and mkdocs-click (in the test extra): without them these
tests fail rather than skip, since CI installs ".[test]".
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
GETTING_STARTED = REPO / "docs" / "getting-started.md"

pytestmark = pytest.mark.skipif(not (REPO / "mkdocs.yml").exists(),
                                reason="no source tree (mkdocs.yml, docs/) next to the tests")


def mkdocs_build(config, site):
    # Not -q: it silences warnings, and --strict then has none to count (a broken link
    # would pass; test_strict_build_fails_on_a_broken_site checks that it does not).
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, env=env, timeout=120)


# ---- (a) the site ------------------------------------------------------------------------

def test_site_builds_strictly_with_cli_reference_and_benchmarks(tmp_path):
    p = mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    assert p.returncode == 0, p.stdout + p.stderr
    site = tmp_path / "site"

    # The CLI reference is generated from the Click group: every command with every
    # option it shows in --help.
    import click
    from charrnn.cli import main
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    cli = html.unescape(re.sub(r"<[^>]+>", "", cli))        # the text a reader sees
    assert "::: mkdocs-click" not in cli
    for name, command in main.commands.items():
        assert re.search(rf"Usage:\s+charrnn {name} \[OPTIONS\]", cli), name
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert all(opt in cli for opt in param.opts), (name, param.opts)

    # The training page's table of options is TrainConfig's: every option, its help and
    # its default or auto rule, as `charrnn train --help` shows them.
    from dataclasses import fields
    from charrnn.training.options import TrainConfig
    training = (site / "training" / "index.html").read_text(encoding="utf-8")
    training = html.unescape(re.sub(r"<[^>]+>", "", training))
    assert "<!-- train-options -->" not in training
    for f in fields(TrainConfig):
        option = "--" + f.name.replace("_", "-")
        shown = f.metadata["auto"] if f.default is None else str(f.default)
        assert f"{option}\n{shown}\n{f.metadata['help']}\n" in training, option

    # The hook rendered every session of bench/results into the benchmarks page.
    bench = (site / "internals" / "benchmarks" / "index.html").read_text(encoding="utf-8")
    assert "<!-- bench-results -->" not in bench
    for f in sorted((REPO / "bench" / "results").glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        assert d["machine"] in bench, f.name
        first = d["tables"][0]["rows"][0]
        assert next(str(v) for v in first if isinstance(v, str)) in bench


def _dead_link(copy):
    page = copy / "docs" / "sampling.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [nowhere](no-such-page.md).\n",
                    encoding="utf-8")
    return "no-such-page.md"


def _results_file_without_method(copy):
    (copy / "bench" / "results" / "2099-01-01-x.json").write_text(
        '{"machine": "x", "date": "2099-01-01", "tables": []}', encoding="utf-8")
    return "2099-01-01-x.json"


@pytest.mark.parametrize("break_it", [_dead_link, _results_file_without_method])
def test_strict_build_fails_on_a_broken_site(tmp_path, break_it):
    """The build above has teeth: the same site with one fault does not build, and the
    message names the fault."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs")
    shutil.copytree(REPO / "bench" / "results", copy / "bench" / "results")
    shutil.copy(REPO / "bench" / "results_hook.py", copy / "bench" / "results_hook.py")
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    named = break_it(copy)
    p = mkdocs_build(copy / "mkdocs.yml", tmp_path / "site")
    assert p.returncode != 0
    assert named in p.stdout + p.stderr


# ---- (b) every command of Getting started, run as a user would ---------------------------

def shell_commands(md):
    """The lines of every ```sh block, in page order."""
    return [line.strip() for block in re.findall(r"```sh\n(.*?)```", md, re.S)
            for line in block.splitlines() if line.strip() and not line.startswith("#")]


def _ok(p):
    assert p.returncode == 0, p.stdout + p.stderr


def _info(p, cwd):
    _ok(p)
    assert re.search(r"^ISA tier\s+(scalar|avx2|avx512|neon)$", p.stdout, re.M), p.stdout


def _train_first(p, cwd):
    _ok(p)
    run = cwd / "charrnn-runs" / "first"
    assert {"best.safetensors", "model.safetensors", "state.safetensors"} <= {f.name for f in run.iterdir()}
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["final"] and final["step"] == 300 and final["stopped_by"] == "max-steps"
    assert final["val_loss"] < 3.0          # learned something: uniform over 65 is 4.17


def _sample_newest(p, cwd):
    _ok(p)
    assert "charrnn-runs/first" in p.stderr                 # the newest run was used
    assert len(p.stdout) == 300 + 1                         # the text, then a newline


def _zen(p, cwd):
    _ok(p)
    assert "Beautiful is better than ugly." in (cwd / "zen.txt").read_text()


def _train_zen(p, cwd):
    _ok(p)
    assert "without validation" in p.stderr                # as the page says
    assert (cwd / "charrnn-runs" / "zen" / "model.safetensors").is_file()


def _sample_zen(p, cwd):
    _ok(p)
    assert p.stdout.startswith("Beautiful") and len(p.stdout) == len("Beautiful") + 200 + 1


def _romeo(p, cwd):
    _ok(p)
    assert (cwd / "romeo.txt").read_text().startswith("ROMEO:\n")


def _eval(p, cwd):
    _ok(p)
    n = len((cwd / "romeo.txt").read_text())
    m = re.fullmatch(r"loss (\d+\.\d+) nats/char, (\d+\.\d+) bits/char over (\d+) characters\n", p.stdout)
    assert m, p.stdout
    assert int(m[3]) == n - 1 and 0 < float(m[1]) < 5     # every character but the first is predicted


def _runs(p, cwd):
    _ok(p)
    rows = {line.split()[0]: line for line in p.stdout.splitlines()[1:]}
    assert set(rows) == {"first", "zen"}
    assert "GRU 1x128" in rows["first"] and "finished" in rows["first"]
    assert "finished" in rows["zen"]


def _report(p, cwd):
    _ok(p)
    html = (cwd / "charrnn-runs" / "first" / "report.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "<svg" in html  # charts drawn inline
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']https?:""", html)  # nothing fetched


# Each command of the page, in page order, with what a user should then see. A command
# added to the page without a check here fails test_getting_started_commands_are_all_checked.
CHECKS = {
    "charrnn info": _info,
    "charrnn train --hidden 128 --layers 1 --max-steps 300 --out charrnn-runs/first": _train_first,
    "charrnn sample --temp 0.8 --length 300 --seed 1": _sample_newest,
    'python -c "import this" > zen.txt': _zen,
    "charrnn train zen.txt --out charrnn-runs/zen": _train_zen,
    'charrnn sample charrnn-runs/zen --prime "Beautiful" --length 200 --seed 1': _sample_zen,
    "printf 'ROMEO:\\nBut soft, what light through yonder window breaks?\\n' > romeo.txt": _romeo,
    "charrnn eval charrnn-runs/first romeo.txt": _eval,
    "charrnn runs": _runs,
    "charrnn report charrnn-runs/first": _report,
}


def test_getting_started_commands_are_all_checked():
    """The install lines are not run here (that would install the package again, and CI's
    .ci/run already runs the README's install-and-test line): they must be the README's."""
    commands = shell_commands(GETTING_STARTED.read_text(encoding="utf-8"))
    installs = [c for c in commands if c.startswith("pip install")]
    assert installs == ["pip install charrnn-fast", "pip install ."]
    readme = README.read_text(encoding="utf-8")
    assert all(c in readme for c in installs)
    assert [c for c in commands if c not in installs] == list(CHECKS)


def test_getting_started_commands_work(tmp_path):
    """Run in an empty directory with a fresh CHARRNN_RUNS, through the shell, with this
    Python's environment first on PATH (its `charrnn` and `python`)."""
    bindir = Path(sys.executable).parent
    assert (bindir / ("charrnn.exe" if os.name == "nt" else "charrnn")).exists(), \
        f"no charrnn command next to {sys.executable}: install the package (pip install -e .)"
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
               CHARRNN_RUNS=str(tmp_path / "charrnn-runs"))
    env.pop("CHARRNN_ISA", None)
    for command, check in CHECKS.items():
        p = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        try:
            check(p, tmp_path)
        except AssertionError as e:
            raise AssertionError(f"`{command}`: {e}") from None


# ---- (c) the README ----------------------------------------------------------------------

def test_readme_is_short_and_keeps_the_marked_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move detail into docs/"
    for marker, command in [("<!-- train-command -->", "pip install . && charrnn train"),
                            ("<!-- test-command -->", 'pip install ".[test]" && pytest')]:
        i = lines.index(marker)
        # .ci/run takes the line two below the marker, verbatim.
        assert lines[i + 1:i + 4] == ["```sh", command, "```"], marker


def test_readme_results_table_is_the_newest_session():
    """The README's speed table is the newest bench/results session's training table."""
    sessions = [json.loads(f.read_text(encoding="utf-8"))
                for f in (REPO / "bench" / "results").glob("*.json")]
    newest = max(sessions, key=lambda d: d["date"])
    table = newest["tables"][0]
    cols = table["columns"]
    # a session measured in both precisions has a Precision column (bench/train.py
    # --precision fp32,bf16), and so has the README's table then
    prec = (lambda r: r[cols.index("Precision")]) if "Precision" in cols else (lambda r: None)
    want = [(r[cols.index("Tier")], r[cols.index("Config")], prec(r), r[cols.index("Threads")],
             r[cols.index("charrnn chars/s")], r[cols.index("charrnn / PyTorch")])
            for r in table["rows"]]
    readme = README.read_text(encoding="utf-8")
    got = [(m[1], m[2], m[3], int(m[4]), int(m[5].replace(",", "")), float(m[6]))
           for m in re.finditer(r"^\| (\w+) \| ([A-E]) \| (?:(fp32|bf16) \| )?[^|]+ \| (\d) \| "
                                r"([\d,]+) \| [\d,]+ \| ([\d.]+)× \|$", readme, re.M)]
    assert got == want and got
    assert table["command"] in readme
