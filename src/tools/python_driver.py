"""Kernel driver for the `ipython` tool: runs code cells in one persistent interpreter.

The Rust server runs this once per session as a long-lived child (in the sandbox, cwd
/mnt/okcomputer) and speaks newline-delimited JSON, one object per line:

  start-up -> {"ready": true, "engine": "ipython"|"python", "python": "3.11.2"}
  request  <- {"id": 7, "code": "x + 1", "timeout": 30.0}        (timeout 0 = no limit)
  reply    -> {"id": 7, "stdout": "", "stderr": "", "result": "42" | null,
               "error": "<traceback>" | null, "images": ["/mnt/okcomputer/output/figure-7-1.png"],
               "timed_out": false}

Exactly one reply per request; blank lines are ignored and a malformed line gets a reply with
"error": "bad request: ...". EOF on stdin ends the driver with exit code 0. All cells share
one namespace; a timeout (SIGALRM) or SIGINT stops the running cell only, and SystemExit is
reported, never obeyed. The protocol owns the real fds: fds 1 and 2 are pointed at pipes
read by two threads and fd 0 at /dev/null, so C-level writes and child processes (os.system,
extension modules) can neither corrupt nor steal protocol lines, and what they write joins the
cell's stdout/stderr; input() raises. Cell stdout/stderr are captured, each capped at 200,000
characters; what background processes write between cells is shown with the next cell.
IPython is used when importable (OKCOMPUTER_PYTHON_ENGINE=python forces plain Python, which
runs `!cmd` lines through the shell too). Open matplotlib figures are saved after each cell
to /mnt/okcomputer/output/ (else $OKCOMPUTER_OUTPUT_DIR or ./output) and closed.
Standard library only; IPython and matplotlib are optional.
"""

import ast
import builtins
import codecs
import fcntl
import io
import json
import linecache
import os
import signal
import subprocess
import sys
import threading
import traceback
import warnings

MAX_CHARS = 200_000
HALF = MAX_CHARS // 2
WORKSPACE = "/mnt/okcomputer"


class CellTimeout(BaseException):
    """Raised inside the running cell when its time is up."""


class Capture(io.TextIOBase):
    """Write-only text sink keeping the first and last HALF characters (bounded memory)."""

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
            if self.tail_len > 2 * HALF:  # trimmed lazily so many small writes stay cheap
                self.tail, self.tail_len = ["".join(self.tail)[-HALF:]], HALF
        return size

    def getvalue(self):
        head, tail = "".join(self.head), "".join(self.tail)[-HALF:]
        omitted = self.total - len(head) - len(tail)
        return f"{head}\n[... {omitted} characters omitted ...]\n{tail}" if omitted else head + tail


class FdCapture:
    """Copies what is written to file descriptor `fd` into the running cell's Capture.

    The fd is pointed at a pipe that a daemon thread drains, so a chatty child never blocks on a
    full pipe. Python's own prints go through the same fd (`stream`, line-buffered), so they
    keep their order with what C code and child processes write. `end` writes a marker through
    the pipe and waits for the thread to read it: all the cell wrote has then been copied."""

    def __init__(self, fd):
        read_end, write_end = os.pipe()
        try:  # room for C code that prints a lot while holding the GIL
            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except OSError:
            pass
        os.dup2(write_end, fd)
        os.close(write_end)
        self.fd, self.read_end = fd, read_end
        self.lock = threading.Lock()
        self.sink = Capture()  # output written between cells, shown with the next cell
        self.marker = b"\x00okc-cell-end\x00"
        self.seen = threading.Event()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.stream = self.open_stream()
        threading.Thread(target=self.pump, name=f"fd{fd}-capture", daemon=True).start()

    def open_stream(self):
        return open(self.fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace",
                    closefd=False)

    def begin(self, capture):
        """Sends this fd's output to `capture` (with what came in since the last cell)."""
        if self.stream.closed:  # a cell closed sys.stdout
            self.stream = self.open_stream()
        with self.lock:
            earlier = self.sink.getvalue()
            if earlier:
                capture.write(earlier)
            self.sink = capture

    def end(self):
        """Waits (up to a second) until what the cell wrote to the fd has been copied."""
        self.seen.clear()
        try:
            if not self.stream.closed:
                self.stream.flush()
            os.write(self.fd, self.marker)
        except (OSError, ValueError):  # the cell closed the fd or broke the stream
            return
        self.seen.wait(1.0)

    def pump(self):
        held = b""  # bytes that may be the start of a marker split across reads
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                return
            if not chunk:
                return
            data = held + chunk
            while self.marker in data:
                before, _, data = data.partition(self.marker)
                self.copy(before)
                with self.lock:
                    self.sink = Capture()
                self.seen.set()
            keep = next((n for n in range(len(self.marker) - 1, 0, -1)
                         if data.endswith(self.marker[:n])), 0)
            held = data[len(data) - keep:] if keep else b""
            self.copy(data[:len(data) - keep])

    def copy(self, data):
        text = self.decoder.decode(data)
        if text:
            with self.lock:
                self.sink.write(text)


def cap(text):
    if text is None or len(text) <= MAX_CHARS:
        return text
    return f"{text[:HALF]}\n[... {len(text) - MAX_CHARS} characters omitted ...]\n{text[-HALF:]}"


def no_input(*_args, **_kwargs):
    raise RuntimeError("input() is not available in this environment")


def system_exit_message(code):
    return (f"SystemExit({code!r}) ignored: the interpreter keeps running; "
            "use restart to start fresh")


def run_shell(cmd):
    """Runs a shell command, copying its output into the cell's captured streams."""
    proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:  # timeout or interrupt: take the whole command down with the cell
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise
    sys.stdout.write(out)
    sys.stderr.write(err)
    if proc.returncode:
        sys.stderr.write(f"[exit code {proc.returncode}]\n")
    return proc.returncode


class PlainEngine:
    """Plain CPython: exec the statements, eval a trailing expression, `!cmd` shell escapes."""

    name = "python"

    def __init__(self):
        self.ns = {"__name__": "__main__", "__okc_shell__": self.shell_escape}
        self.count = 0
        self.loop = None

    @staticmethod
    def shell_escape(cmd):
        run_shell(cmd)  # returns None, so a trailing `!cmd` shows no result

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
        name = f"<cell-{self.count}>"  # one name per cell, so tracebacks show the right source
        code = self.shell_escapes(code)
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            tree = ast.parse(code, name, "exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            self.execute(ast.Module(body=tree.body, type_ignores=[]), name, "exec")
            if last is None:
                return None, None
            value = self.execute(ast.Expression(last.value), name, "eval")
            if value is None or code.rstrip().endswith(";"):  # `expr;` hides the value
                return None, None
            self.ns["_"] = value
            return repr(value), None
        except SystemExit as exc:
            return None, system_exit_message(exc.code)
        except (CellTimeout, KeyboardInterrupt):
            raise
        except BaseException as exc:  # any other error of the cell is reported
            return None, format_cell_error(exc)

    def execute(self, tree, name, mode):
        code = compile(tree, name, mode, flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        value = eval(code, self.ns)  # runs "exec"-mode code objects too
        if code.co_flags & 0x80:  # CO_COROUTINE: the cell used top-level await
            import asyncio
            self.loop = self.loop or asyncio.new_event_loop()
            value = self.loop.run_until_complete(value)
        return value


def format_cell_error(exc):
    """Traceback text from the first frame of cell code on (the driver's frames dropped)."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class IPythonEngine:
    """IPython's InteractiveShell, quiet: no Out[n] echo, tracebacks go to `error`."""

    name = "ipython"

    def __init__(self):
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.enabled = False  # in-memory history only, no sqlite file
        shell = InteractiveShell.instance(config=config, colors="NoColor",
                                          user_ns={"__name__": "__main__"})
        shell.displayhook.write_output_prompt = lambda: None
        shell.displayhook.write_format_data = lambda *args, **kwargs: None
        shell._showtraceback = self.keep_traceback
        shell.ask_exit = lambda: setattr(shell, "exit_now", True)  # exit() and quit()
        shell.system = self.system  # plain pipes instead of a pty: no \r\n, stderr kept apart
        warnings.filterwarnings("ignore", message="To exit: use")
        self.shell, self.traceback = shell, None

    def keep_traceback(self, _etype, _evalue, stb):
        self.traceback = self.shell.InteractiveTB.stb2text(stb)

    def system(self, cmd):
        self.shell.user_ns["_exit_code"] = run_shell(self.shell.var_expand(cmd, depth=1))

    def run(self, code):
        self.traceback = None
        result = self.shell.run_cell(code, store_history=True)
        error = result.error_before_exec or result.error_in_exec
        if isinstance(error, (CellTimeout, KeyboardInterrupt)):
            raise error
        if isinstance(error, SystemExit) or self.shell.exit_now:
            self.shell.exit_now = False
            return None, system_exit_message(getattr(error, "code", None))
        if error is not None:
            text = self.traceback or "".join(traceback.format_exception_only(type(error), error))
            return None, text.rstrip("\n") + "\n"
        return (None if result.result is None else repr(result.result)), None


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


CELL_FILES = ("<cell-", "<ipython-input-")  # code objects compiled from cells
RETRY_SECONDS, MAX_RETRIES = 0.01, 100  # defer an interrupt at most ~1 s


def in_cell_code(frame):
    while frame is not None:
        if frame.f_code.co_filename.startswith(CELL_FILES):
            return True
        frame = frame.f_back
    return False


class Interrupts:
    """SIGALRM (timeout) and SIGINT raise CellTimeout / KeyboardInterrupt in a running cell.

    Ignored between cells. Outside cell code (engine bookkeeping) the exception is deferred
    up to ~1 s: raised there, it could leave a lock held in IPython and hang later cells."""

    def __init__(self):
        self.armed, self.pending, self.retries = False, None, 0
        signal.signal(signal.SIGALRM, lambda _sig, frame: self.fire(CellTimeout, frame))
        signal.signal(signal.SIGINT, lambda _sig, frame: self.fire(KeyboardInterrupt, frame))

    def fire(self, exc_type, frame):
        if not self.armed:
            return
        self.pending = self.pending or exc_type
        if not in_cell_code(frame) and self.retries < MAX_RETRIES:
            self.retries += 1
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        self.armed = False
        raise self.pending()

    def arm(self, timeout):
        self.armed, self.pending, self.retries = True, None, 0
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout)

    def disarm(self):
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_cell(engine, interrupts, fds, cell_id, code, timeout):
    out, err = Capture(), Capture()
    for fd_capture, capture in zip(fds, (out, err)):
        fd_capture.begin(capture)
    saved = sys.stdout, sys.stderr, sys.stdin, builtins.input
    sys.stdout, sys.stderr = fds[0].stream, fds[1].stream
    sys.stdin, builtins.input = io.StringIO(""), no_input
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
        for fd_capture in fds:
            fd_capture.end()
    images = save_figures(cell_id, err)
    return {"id": cell_id, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "result": cap(result), "error": error, "images": images, "timed_out": timed_out}


def bad_request(cell_id, why):
    return {"id": cell_id, "stdout": "", "stderr": "", "result": None,
            "error": f"bad request: {why}", "images": [], "timed_out": False}


def handle(line, engine, interrupts, fds):
    try:
        request = json.loads(line)
    except ValueError as exc:
        return bad_request(None, exc)
    if not isinstance(request, dict):
        return bad_request(None, "expected a JSON object")
    cell_id, code, timeout = request.get("id"), request.get("code"), request.get("timeout", 0)
    if not isinstance(code, str):
        return bad_request(cell_id, '"code" must be a string')
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 <= timeout <= 1e7:  # also rejects NaN
        return bad_request(cell_id, '"timeout" must be a non-negative number of seconds')
    return run_cell(engine, interrupts, fds, cell_id, code, float(timeout))


def clean(value):
    """Text safe for strict JSON readers: lone surrogates become '?'."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return [clean(v) for v in value] if isinstance(value, list) else value


def main():
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    fds = (FdCapture(1), FdCapture(2))
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8", errors="replace")
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError:
        pass
    here = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else ""
    if sys.path and sys.path[0] in ("", here):  # cells import from the cwd, as in IPython
        sys.path[0] = ""
    else:
        sys.path.insert(0, "")
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive")
    interrupts = Interrupts()
    engine = pick_engine()
    ready = {"ready": True, "engine": engine.name, "python": sys.version.split()[0]}
    proto.write(json.dumps(ready) + "\n")
    proto.flush()
    for line in requests:
        if line.strip():
            reply = {key: clean(value) for key, value in handle(line, engine, interrupts, fds).items()}
            proto.write(json.dumps(reply) + "\n")
            proto.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
