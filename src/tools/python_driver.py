"""Kernel driver for the `ipython` tool: runs code cells in one persistent interpreter.

The Rust server starts this file once per session as a long-lived child process (inside the
sandbox, cwd /mnt/okcomputer) and talks newline-delimited JSON, one object per line:

  start-up  -> {"ready": true, "engine": "ipython"|"python", "python": "3.11.2"}
  request  <-  {"id": 7, "code": "x + 1", "timeout": 30.0}
  reply     -> {"id": 7, "stdout": "...", "stderr": "...", "result": "42" | null,
                "error": "<traceback>" | null, "images": ["/mnt/okcomputer/output/figure-7-1.png"],
                "timed_out": false}

A line that is not a JSON request gets {"id": null, "error": "bad request: ...", ...}. All
cells share one namespace. The real fds 0 and 1 are kept for the protocol only: fd 1 is
pointed at stderr and fd 0 at /dev/null, so stray C-level or subprocess I/O cannot corrupt
or steal protocol lines. SIGALRM (the per-cell timeout) and SIGINT interrupt the running
cell only; the interpreter state is kept. The driver exits with code 0 on EOF of stdin.
IPython is used when importable (set OKCOMPUTER_PYTHON_ENGINE=python to force plain Python);
in plain mode, lines starting with `!` run as shell commands. Open matplotlib figures are
saved as PNG after every cell and closed. Only the standard library is required.
"""

import ast
import builtins
import io
import json
import linecache
import os
import signal
import subprocess
import sys
import traceback
import warnings

MAX_CHARS = 200_000
HALF = MAX_CHARS // 2
WORKSPACE = "/mnt/okcomputer"


class CellTimeout(BaseException):
    """Raised inside the running cell when its time is up."""


class Capture(io.TextIOBase):
    """Write-only text sink that keeps only the first and the last HALF characters."""

    encoding = "utf-8"

    def __init__(self):
        self.head, self.tail, self.tail_len, self.total = [], [], 0, 0

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        size, room = len(s), max(0, HALF - self.total)
        self.total += size
        if room:
            self.head.append(s[:room])
            s = s[room:]
        if s:
            self.tail.append(s)
            self.tail_len += len(s)
            if self.tail_len > 2 * HALF:  # trim lazily so a long run of writes stays cheap
                self.tail = ["".join(self.tail)[-HALF:]]
                self.tail_len = HALF
        return size

    def getvalue(self):
        head, tail = "".join(self.head), "".join(self.tail)
        omitted = self.total - len(head) - min(len(tail), HALF)
        if omitted <= 0:
            return head + tail
        return f"{head}\n[... {omitted} characters omitted ...]\n{tail[-HALF:]}"


def cap(text):
    if text is None or len(text) <= MAX_CHARS:
        return text
    return f"{text[:HALF]}\n[... {len(text) - MAX_CHARS} characters omitted ...]\n{text[-HALF:]}"


def no_input(*_args, **_kwargs):
    raise RuntimeError("input() is not available in this environment")


def system_exit_message(exc):
    return (f"SystemExit({exc.code!r}) ignored: the interpreter keeps running; "
            "use restart to start fresh")


class PlainEngine:
    """Plain CPython: exec all statements, eval a trailing expression, `!cmd` shell escapes."""

    name = "python"

    def __init__(self):
        self.ns = {"__name__": "__main__", "__okc_shell__": self.shell}
        self.count = 0
        self.loop = None

    @staticmethod
    def shell(cmd):
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              errors="replace", stdin=subprocess.DEVNULL)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode:
            sys.stderr.write(f"[exit code {proc.returncode}]\n")

    @staticmethod
    def shell_escapes(code):
        """Turns `!cmd` lines into `__okc_shell__("cmd")`, unless the code is valid as it is."""
        try:
            ast.parse(code, "<cell>", "exec")
            return code
        except SyntaxError:
            pass
        lines = code.splitlines(True)
        for i, line in enumerate(lines):
            body = line.lstrip()
            if body.startswith("!"):
                indent = line[: len(line) - len(body)]
                lines[i] = f"{indent}__okc_shell__({body[1:].strip()!r})\n"
        return "".join(lines)

    def run(self, code):
        """Returns (result text or None, error text or None)."""
        self.count += 1
        name = f"<cell-{self.count}>"
        code = self.shell_escapes(code)
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            tree = ast.parse(code, name, "exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            self.execute(ast.Module(body=tree.body, type_ignores=[]), name, "exec")
            if last is None:
                return None, None
            value = self.execute(ast.Expression(last.value), name, "eval")
            if value is None:
                return None, None
            self.ns["_"] = value
            return repr(value), None
        except SystemExit as exc:
            return None, system_exit_message(exc)
        except (CellTimeout, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: B902 - any error of the cell is reported
            return None, format_cell_error(exc)

    def execute(self, tree, name, mode):
        code = compile(tree, name, mode, flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        value = eval(code, self.ns)  # exec-mode code objects run fine through eval
        if code.co_flags & 0x80:  # CO_COROUTINE: the cell used top-level await
            import asyncio
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
            value = self.loop.run_until_complete(value)
        return value


def format_cell_error(exc):
    """Traceback text starting at the first frame of cell code (the driver's frames dropped)."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class IPythonEngine:
    """IPython's InteractiveShell: magics, `!cmd`, top-level await; no Out[n] echo."""

    name = "ipython"

    def __init__(self):
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        self.shell = InteractiveShell.instance(config=config, colors="NoColor",
                                               user_ns={"__name__": "__main__"})
        self.shell.displayhook.write_output_prompt = lambda: None
        self.shell.displayhook.write_format_data = lambda *args, **kwargs: None
        self.shell._showtraceback = self.keep_traceback
        self.shell.ask_exit = lambda: setattr(self.shell, "exit_now", True)  # exit(), quit()
        self.traceback = None

    def keep_traceback(self, _etype, _evalue, stb):
        self.traceback = self.shell.InteractiveTB.stb2text(stb)

    def run(self, code):
        self.traceback = None
        result = self.shell.run_cell(code, store_history=True)
        error = result.error_before_exec or result.error_in_exec
        if isinstance(error, (CellTimeout, KeyboardInterrupt)):
            raise error
        if isinstance(error, SystemExit) or self.shell.exit_now:
            self.shell.exit_now = False
            return None, system_exit_message(error if error is not None else SystemExit(None))
        if error is not None:
            text = self.traceback or "".join(traceback.format_exception_only(type(error), error))
            return None, text.rstrip("\n") + "\n"
        value = result.result
        return (None if value is None else repr(value)), None


def pick_engine():
    if os.environ.get("OKCOMPUTER_PYTHON_ENGINE", "").lower() != "python":
        try:
            return IPythonEngine()
        except ImportError:
            pass
    return PlainEngine()


def output_dir():
    if os.path.isdir(WORKSPACE):
        return os.path.join(WORKSPACE, "output")
    return os.path.abspath(os.environ.get("OKCOMPUTER_OUTPUT_DIR") or "output")


def save_figures(cell_id, stderr):
    """Saves every open matplotlib figure as PNG, closes them all and returns the paths."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    paths = []
    try:
        numbers = plt.get_fignums()
        if numbers:
            folder = output_dir()
            os.makedirs(folder, exist_ok=True)
        for k, number in enumerate(numbers, start=1):
            path = os.path.join(folder, f"figure-{cell_id}-{k}.png")
            plt.figure(number).savefig(path, format="png")
            paths.append(path)
    except Exception as exc:  # a broken figure must not take the reply down
        stderr.write(f"\n[could not save matplotlib figures: {exc!r}]\n")
    finally:
        try:
            plt.close("all")
        except Exception:
            pass
    return paths


class Interrupts:
    """SIGALRM and SIGINT raise into the cell only while one runs; otherwise they are ignored."""

    def __init__(self):
        self.armed = False
        signal.signal(signal.SIGALRM, self.on_alarm)
        signal.signal(signal.SIGINT, self.on_interrupt)

    def on_alarm(self, _signum, _frame):
        if self.armed:
            self.armed = False
            raise CellTimeout()

    def on_interrupt(self, _signum, _frame):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt()

    def arm(self, timeout):
        self.armed = True
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout)

    def disarm(self):
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_cell(engine, interrupts, cell_id, code, timeout):
    out, err = Capture(), Capture()
    saved = sys.stdout, sys.stderr, sys.stdin, builtins.input
    sys.stdout, sys.stderr, sys.stdin, builtins.input = out, err, io.StringIO(""), no_input
    result = error = None
    timed_out = False
    try:
        try:
            interrupts.arm(timeout)
            result, error = engine.run(code)
        finally:
            interrupts.disarm()
    except CellTimeout:
        timed_out = True
        error = f"cell timed out after {timeout:g} s (interpreter state kept)"
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        sys.stdout, sys.stderr, sys.stdin, builtins.input = saved
    images = save_figures(cell_id, err)
    return {"id": cell_id, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "result": cap(result), "error": error, "images": images, "timed_out": timed_out}


def bad_request(cell_id, why):
    return {"id": cell_id, "stdout": "", "stderr": "", "result": None,
            "error": f"bad request: {why}", "images": [], "timed_out": False}


def clean(value):
    """Makes text safe for strict JSON readers (no lone surrogates)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def handle(line, engine, interrupts):
    try:
        request = json.loads(line)
    except ValueError as exc:
        return bad_request(None, exc)
    if not isinstance(request, dict):
        return bad_request(None, "expected a JSON object")
    cell_id, code, timeout = request.get("id"), request.get("code"), request.get("timeout", 0)
    if not isinstance(code, str):
        return bad_request(cell_id, '"code" must be a string')
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        return bad_request(cell_id, '"timeout" must be a non-negative number of seconds')
    return run_cell(engine, interrupts, cell_id, code, float(timeout))


def main():
    sys.stdout.flush()
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8", errors="replace")
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError:
        pass
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive")
    interrupts = Interrupts()
    engine = pick_engine()
    version = sys.version.split()[0]
    proto.write(json.dumps({"ready": True, "engine": engine.name, "python": version}) + "\n")
    proto.flush()
    for line in requests:
        if not line.strip():
            continue
        reply = {key: clean(value) for key, value in handle(line, engine, interrupts).items()}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
