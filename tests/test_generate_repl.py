"""`charrnn sample -i` in a real terminal: tmux runs it, send-keys types, capture-pane
reads the screen. Checks: a prompt streams a continuation and the prompt returns;
commands change the settings; line editing and history (readline); Ctrl-C stops a
generation that would run for hours and returns to a working prompt; Ctrl-D exits 0."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import CHARRNN_PATH
from test_generate_cli import small_model

REQUIRED = os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1"


@pytest.fixture
def term(tmp_path):
    if shutil.which("tmux") is None:
        msg = "tmux not installed (Debian: apt-get install -y tmux)"
        pytest.fail(msg) if REQUIRED else pytest.skip(msg)
    model = small_model(tmp_path / "m.safetensors")
    sock = f"charrnn-test-{os.getpid()}"
    env = f"PYTHONPATH={CHARRNN_PATH} PYTHONSAFEPATH=1 HOME={tmp_path} INPUTRC=/dev/null"
    cmd = (f"env {env} {sys.executable} -c 'from charrnn.cli import main; main()' sample "
           f"{model} -i --length 40 --seed 1; echo EXITED $?; sleep 60")
    t = Term(sock)
    t.tmux("new-session", "-d", "-x", "100", "-y", "50", cmd)
    try:
        yield t
    finally:
        t.tmux("kill-server")


class Term:
    def __init__(self, sock):
        self.sock = sock

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True,
                              text=True).stdout

    def keys(self, *keys):
        self.tmux("send-keys", *keys)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-S", "-200")

    def wait(self, pred, what, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            s = self.screen()
            if pred(s):
                return s
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")

    def prompts(self, s):
        return sum(1 for line in s.splitlines() if line == ">" or line.startswith("> "))

    def idle(self, n):
        """The screen's last line is the n-th prompt, empty."""
        return self.wait(lambda s: self.prompts(s) >= n and s.rstrip("\n").splitlines()[-1]
                         == ">", f"prompt {n}")


def test_interactive_session(term):
    term.wait(lambda s: "Ctrl-D to quit" in s and s.rstrip().endswith(">"), "the banner")
    term.keys("the", "Enter")
    s = term.idle(2)
    lines = s.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("> the"))
    assert len(lines[i]) > len("> the")      # the continuation follows on the same line
    # line editing: "thx" <BSpace> "e" is "the"; history: Up recalls it
    term.keys("thx", "BSpace", "e", "Enter")
    s = term.idle(3)
    assert sum(line.startswith("> the") for line in s.splitlines()) == 2
    term.keys("Up", "Enter")
    s = term.idle(4)
    assert sum(line.startswith("> the") for line in s.splitlines()) == 3
    # commands
    term.keys(":temp 0", "Enter", ":beam 3", "Enter", ":show", "Enter")
    s = term.wait(lambda s: "beam 3" in s and "temperature 0.0" in s, ":show")
    term.keys(":beam off", "Enter", ":temp x", "Enter")
    term.wait(lambda s: "bad value for :temp" in s, "the error for :temp x")
    # Ctrl-C stops a generation of 10^9 characters and the prompt works again
    term.keys(":temp 1", "Enter", ":length 1000000000", "Enter", "a", "Enter")
    n = term.prompts(term.screen())
    time.sleep(1.0)
    term.keys("C-c")
    s = term.wait(lambda s: "(stopped)" in s, "(stopped)", timeout=20)
    term.keys(":show", "Enter")
    term.wait(lambda s: "length 1000000000" in s, "a working prompt after Ctrl-C")
    term.keys("C-c")                                   # at the prompt: a fresh line
    term.keys("C-d")
    term.wait(lambda s: "EXITED 0" in s, "exit on Ctrl-D")
    assert "Traceback" not in term.screen() and n >= 6
