"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
no WebDriver, no websocket client, only the standard library. Used by
tests/test_export_web.py and by docs/web-page.md's screenshot.

    with Browser() as b:
        tab = b.open("file:///tmp/model.html")
        tab.eval("charrnnPage.ready.then(() => 1)")
        tab.requests        # every URL the page asked for (Network.requestWillBeSent)
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


class BrowserError(RuntimeError):
    pass


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Tab:
    def __init__(self, browser, session):
        self.b, self.session, self.requests, self.console = browser, session, [], []

    def send(self, method, timeout=60, **params):
        return self.b.send(method, params, self.session, timeout)

    def eval(self, expression, timeout=60):
        """The value of a JS expression (awaited if a promise); BrowserError if it throws."""
        r = self.send("Runtime.evaluate", timeout, expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError(d.get("exception", {}).get("description") or d.get("text"))
        return r["result"].get("value")

    def wait(self, expression, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.eval(expression):
                return
            time.sleep(0.02)
        raise BrowserError(f"timed out waiting for {expression}")

    def screenshot(self, path, width=1000, height=700):
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        r = self.send("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))


class Browser:
    def __init__(self, *flags):
        path = chromium_path()
        if path is None:
            raise BrowserError("chromium not installed (Debian: apt-get install -y chromium)")
        self.profile = tempfile.mkdtemp(prefix="charrnn-chromium-")
        to_child, self._w = os.pipe()       # we write commands, the browser reads fd 3
        self._r, from_child = os.pipe()     # the browser writes fd 4, we read

        def fds():
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)
        self.proc = subprocess.Popen(
            [path, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--mute-audio",
             "--allow-file-access-from-files", f"--user-data-dir={self.profile}", *flags,
             "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.profile, "stderr.txt"), "wb"))
        os.close(to_child)
        os.close(from_child)
        self._id, self._lock, self._waiting, self.tabs = 0, threading.Lock(), {}, {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    slot = self._waiting.get(msg["id"])
                    if slot:
                        slot.append(msg)
                        slot[0].set()
                else:
                    tab = self.tabs.get(msg.get("sessionId"))
                    if tab and msg["method"] == "Network.requestWillBeSent":
                        tab.requests.append(msg["params"]["request"]["url"])
                    if tab and msg["method"] == "Runtime.consoleAPICalled":
                        tab.console.append(msg["params"])
        for slot in list(self._waiting.values()):
            slot[0].set()

    def send(self, method, params=None, session=None, timeout=60):
        with self._lock:
            self._id += 1
            i = self._id
        ev = threading.Event()
        self._waiting[i] = [ev]
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        if not ev.wait(timeout):
            raise BrowserError(f"{method}: no answer in {timeout} s")
        slot = self._waiting.pop(i)
        if len(slot) < 2:
            raise BrowserError(f"{method}: the browser closed")
        if "error" in slot[1]:
            raise BrowserError(f"{method}: {slot[1]['error']}")
        return slot[1]["result"]

    def open(self, url, width=1000, height=700):
        """A new tab with the network log on, navigated to url (returns once loaded)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        tab = self.tabs[session] = Tab(self, session)
        tab.target = target
        for m in ("Network.enable", "Page.enable", "Runtime.enable"):
            tab.send(m)
        tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=False)
        tab.send("Page.navigate", url=str(url))
        tab.wait("document.readyState === 'complete'")
        return tab

    def close_tab(self, tab):
        self.send("Target.closeTarget", {"targetId": tab.target})

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except BrowserError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
