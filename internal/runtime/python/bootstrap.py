# Nimbus Python bootstrap: hosts one Lambda-style handler for one instance.
#
# Run as: python -I -S -u bootstrap.py, cwd = the function's code directory.
# Protocol (see pipes.go): fd 3 carries frames from the worker, fd 4 frames
# to it; a frame is a 4-byte big-endian length then its body. fds 1 and 2 are
# the log. The first frame in is the init frame (JSON); the bootstrap imports
# the handler and answers with a ready frame (JSON). Each invoke frame is then
# answered by one response frame. Both are binary (big-endian integers):
#   invoke    b"I" deadline_ms(8) id_len(2) id event_json
#   response  b"O" or b"E" max_rss_kb(8) id_len(2) id result_or_error_json
# A handler that returns a generator (or any other iterator) streams: each
# item is sent as a chunk frame, b"C" id_len(2) id data (bytes as they are,
# str as UTF-8, anything else as JSON), and the bootstrap waits for the
# worker's ack frame, b"A", before it takes the next item; the response
# frame that ends the stream carries null (or the error of an exception
# the iteration raised).
# stdout and stderr are flushed before every frame out: the worker takes a
# frame's arrival to mean that the log pipe holds all output written before.
# Supports Python 3.8 and newer.
import os
import sys


def _limit_self():
    import resource
    limits = (
        (resource.RLIMIT_NOFILE, 1024),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 512 << 20),
    )
    for res, want in limits:
        try:
            soft, hard = resource.getrlimit(res)
            if hard != resource.RLIM_INFINITY and hard < want:
                want = hard
            resource.setrlimit(res, (want, want))
        except (ValueError, OSError):
            pass


_limit_self()

import resource  # noqa: E402
import time  # noqa: E402
# traceback is imported only when a handler fails: it (and linecache,
# tokenize...) would add about half a megabyte to every idle instance.


def _json_codec():
    """Returns (loads, dumps, encode_result) built on the C accelerator
    _json alone. The json package imports re (and enum, functools...):
    about 1.2 MB of every idle instance and 6 ms of its start, for a
    handler that may never use them. They answer exactly as json.loads
    and json.dumps with their defaults (encode_result: allow_nan=False)."""
    try:
        import _json
        make_scanner, make_encoder = _json.make_scanner, _json.make_encoder
        escape = _json.encode_basestring_ascii
    except (ImportError, AttributeError):  # built without the accelerator
        import json
        return json.loads, json.dumps, json.JSONEncoder(allow_nan=False).encode

    class Context(object):
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int

    inf = float("inf")
    Context.parse_constant = {"-Infinity": -inf, "Infinity": inf, "NaN": inf - inf}.__getitem__
    scan = make_scanner(Context())
    space = " \t\n\r"  # JSON's whitespace

    def loads(s):
        if isinstance(s, (bytes, bytearray)):
            s = s.decode("utf-8", "surrogatepass")
        start = len(s) - len(s.lstrip(space))
        try:
            obj, end = scan(s, start)
        except StopIteration as e:
            raise ValueError("Expecting value: char %d" % e.value)
        if s[end:].strip(space):
            raise ValueError("Extra data: char %d" % end)
        return obj

    def default(o):
        raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)

    def encoder(allow_nan):
        markers = {}  # the containers being encoded: circular reference check
        encode_value = make_encoder(markers, default, escape, None, ": ", ", ", False, False, allow_nan)

        def encode(o):
            if isinstance(o, str):
                return escape(o)
            try:
                return "".join(encode_value(o, 0))
            except BaseException:
                markers.clear()  # what a failed encoding left behind
                raise
        return encode

    return loads, encoder(True), encoder(False)


_IN, _OUT = 3, 4
_loads, _dumps, _encode_result = _json_codec()
_getrusage = resource.getrusage
_RUSAGE_SELF = resource.RUSAGE_SELF
_RUSAGE_CHILDREN = resource.RUSAGE_CHILDREN
_pread = os.pread
_time = time.time
_write = os.write
_read = os.read


_from_bytes = int.from_bytes
_join = b"".join


def _read_frame():
    """Returns the next frame, its 4-byte length included (the body starts
    at offset 4: slicing it off would copy it). The worker sends one frame
    at a time, so a small one takes one read."""
    buf = _read(_IN, 65536)
    while len(buf) < 4:
        chunk = _read(_IN, 65536)
        if not chunk:
            raise EOFError("request pipe closed")
        buf += chunk
    end = 4 + _from_bytes(buf[:4], "big")
    if len(buf) < end:
        parts, have = [buf], len(buf)
        while have < end:
            chunk = _read(_IN, end - have)
            if not chunk:
                raise EOFError("request pipe closed")
            parts.append(chunk)
            have += len(chunk)
        buf = b"".join(parts)
    if len(buf) != end:
        raise ValueError("more than one frame on the request pipe")
    return buf


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def _send(body):
    _write_all(_OUT, len(body).to_bytes(4, "big") + body)


def _flush_logs():
    for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            f.flush()
        except Exception:
            pass


def _error(error_type, message, stack=None):
    err = {"errorMessage": message, "errorType": error_type}
    if stack is not None:
        err["stackTrace"] = stack
    return err


def _log_error(err):
    lines = ["[ERROR] %s: %s" % (err["errorType"], err["errorMessage"])]
    if err.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines.extend(s.rstrip("\n") for s in err["stackTrace"])
    try:
        sys.stderr.write("\n".join(lines) + "\n")
    except Exception:
        pass


class LambdaContext(object):
    """The Lambda context object handed to the handler."""

    __slots__ = (
        "function_name", "function_version", "invoked_function_arn",
        "memory_limit_in_mb", "aws_request_id", "log_group_name",
        "log_stream_name", "_deadline_ms",
    )

    def __init__(self, cfg, request_id, deadline_ms):
        self.function_name = cfg["function_name"]
        self.function_version = cfg["function_version"]
        self.invoked_function_arn = cfg["arn"]
        self.memory_limit_in_mb = cfg["memory_mb"]
        self.aws_request_id = request_id
        self.log_group_name = cfg["log_group_name"]
        self.log_stream_name = cfg["log_stream_name"]
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - _time() * 1000))

    def __repr__(self):
        return "LambdaContext(function_name=%r, aws_request_id=%r)" % (
            self.function_name, self.aws_request_id)


def _load_handler(spec):
    """Returns (handler, None) or (None, error dict)."""
    mod_name, _, func_name = spec.rpartition(".")
    if not mod_name or not func_name:
        return None, _error(
            "Runtime.MalformedHandlerName",
            "Bad handler '%s': not enough values to unpack (expected module.function)" % spec)
    try:
        import importlib
        module = importlib.import_module(mod_name)
    except Exception as e:
        if isinstance(e, ImportError):
            msg = "Unable to import module '%s': %s" % (mod_name, e)
        else:
            msg = "Unable to import module '%s': %s: %s" % (mod_name, type(e).__name__, e)
        import traceback
        tb = traceback.format_list(traceback.extract_tb(e.__traceback__)[1:])
        return None, _error("Runtime.ImportModuleError", msg, tb)
    handler = getattr(module, func_name, None)
    if handler is None or not callable(handler):
        return None, _error(
            "Runtime.HandlerNotFound",
            "Handler '%s' missing on module '%s'" % (func_name, mod_name))
    return handler, None


def _open_status():
    try:
        return os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1


_status_fd = _open_status()


_hwm_kb = 0  # VmHWM as last read
_faults = -1  # this process's page faults (minor and major) when it was read


def _max_rss_kb():
    """The most memory the instance has held resident, in kB: the
    interpreter's own peak (VmHWM, this address space's since the exec)
    or its largest waited-for child's. Not RUSAGE_SELF's ru_maxrss: the
    kernel carries that across execve from the address space the exec
    replaced, and the worker starts instances with vfork, so it was the
    worker's own peak whenever that was the larger (a 128 MB function
    reported 271 MB). Reading /proc/self/status costs tens of
    microseconds in a sandbox (a warm no-op invoke about 0.03 ms of its
    0.37), so it is read again only when the process has taken a page
    fault since: resident memory grows by faults only. A handler that
    closes or replaces the descriptor gets it reopened."""
    global _status_fd, _hwm_kb, _faults
    own = _getrusage(_RUSAGE_SELF)
    children = _getrusage(_RUSAGE_CHILDREN).ru_maxrss
    if own.ru_minflt + own.ru_majflt == _faults:
        return max(_hwm_kb, children)
    for _ in range(2):
        try:
            b = _pread(_status_fd, 4096, 0)
            i = b.index(b"VmHWM:")
            _hwm_kb = int(b[i + 6:b.index(b"kB", i)])
            # Counted after the read, so that a fault of the read itself
            # does not have the next call read again.
            own = _getrusage(_RUSAGE_SELF)
            _faults = own.ru_minflt + own.ru_majflt
            return max(_hwm_kb, children)
        except (OSError, ValueError):
            _status_fd = _open_status()
    return children


def _invoke(handler, cfg, request_id, deadline_ms, event):
    """Runs the handler once; returns (result JSON bytes, None) or (None, error dict)."""
    ctx = LambdaContext(cfg, request_id, deadline_ms)
    try:
        result = handler(event, ctx)
    except Exception as e:
        return None, _failed(e)
    if _streams(result):
        return _stream(result, request_id.encode())
    try:
        return _encode_result(result).encode(), None
    except Exception as e:
        err = _error("Runtime.MarshalError", "Unable to marshal response: %s" % e)
        _log_error(err)
        return None, err


def _streams(result):
    """Whether a handler's result is streamed: an iterator that is not a
    value JSON encodes (lists, dicts and strings are iterables, not
    iterators)."""
    return hasattr(result, "__next__") and hasattr(result, "__iter__") and not isinstance(result, (str, bytes, bytearray, dict, list, tuple))


def _stream(items, rid_b):
    """Sends each item of a streamed result as a chunk frame, one at a
    time: the worker acknowledges each once it has passed it on. An
    exception the iteration raises ends the stream with its error; a
    broken protocol ends the bootstrap (see main)."""
    head = b"C" + len(rid_b).to_bytes(2, "big") + rid_b
    it = iter(items)
    while True:
        try:
            item = next(it)
            if isinstance(item, (bytes, bytearray, memoryview)):
                data = bytes(item)
            elif isinstance(item, str):
                data = item.encode("utf-8", "surrogatepass")
            else:
                data = _encode_result(item).encode()
        except StopIteration:
            return b"null", None
        except Exception as e:
            return None, _failed(e)
        if not data:
            continue
        _flush_logs()
        _send(head + data)
        if _read_frame()[4:5] != b"A":
            raise ValueError("not an ack frame")


def _failed(e):
    """The error document of an exception a handler (or its stream)
    raised, logged."""
    tb = e.__traceback__
    if tb is not None:
        tb = tb.tb_next  # drop the frame that called the handler
    import traceback
    err = _error(type(e).__name__, str(e), traceback.format_list(traceback.extract_tb(tb)))
    _log_error(err)
    return err


def _event(raw):
    try:
        return _loads(raw)
    except UnicodeDecodeError:  # valid JSON to the worker, not UTF-8
        return _loads(raw.decode("utf-8", "replace"))


def _warm_up():
    """Does, before the init frame, the first-time work of importing a
    handler that depends on no handler: the interpreter's first compile
    (about 1 ms and 0.3 MB, paid by every handler imported from source,
    as handlers are: their directory is read-only, so there is no .pyc)
    and importlib. A pre-started instance does it while it waits for a
    function; a cold start then imports its handler in ~0.2 ms instead of
    ~1.2 ms (python3.13)."""
    compile("", "<nimbus>", "exec")
    import importlib  # noqa: F401
    # The bootstrap's own invoke path, once, on a no-op handler: its first
    # run (a first context, encoding, getrusage) is slower than any later.
    cfg = {"function_name": "", "function_version": "", "arn": "", "memory_mb": 0,
           "log_group_name": "", "log_stream_name": ""}
    _invoke(lambda event, context: None, cfg, "", 0, _event(b'{"a": [1, 2.5, "b", null, true]}'))
    _encode_result({"a": [1, 2.5, "b", None, True]})
    _max_rss_kb()


def _preload():
    """A pre-started instance for a dependency set imports the set's
    top-level modules while it waits for a function (the worker names
    them, and where the layers are, in NIMBUS_PRELOAD and
    NIMBUS_PRELOAD_PATH): the cold start that takes it does not pay for
    them. A module that fails to import here is forgotten, so that the
    function's own import tries again, in its environment."""
    names = os.environ.pop("NIMBUS_PRELOAD", "")
    path = os.environ.pop("NIMBUS_PRELOAD_PATH", "")
    if not names:
        return
    sys.path[0:0] = [p for p in path.split(":") if p]
    for name in names.split(","):
        before = set(sys.modules)
        try:
            __import__(name)
        except BaseException:
            for m in set(sys.modules) - before:
                sys.modules.pop(m, None)
    _flush_logs()
    _send(b'{"preloaded":true}')


def main():
    # The code directory is read-only (in a sandbox) or shared by the
    # function's instances: no .pyc is written there.
    sys.dont_write_bytecode = True
    _warm_up()
    _preload()
    cfg = _loads(_read_frame()[4:])
    # A pre-started instance learns its function only now: its complete
    # environment and where its code appeared.
    env = cfg.pop("env", None)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    where = cfg.pop("chdir", None)
    if where:
        os.chdir(where)
    code_dir = os.getcwd()
    if not sys.path or sys.path[0] != code_dir:
        sys.path.insert(0, code_dir)
    # Layers come next, before the runtime's own modules (Lambda's order).
    sys.path[1:1] = [p for p in cfg.pop("path", None) or [] if p not in sys.path]
    sys.argv = [sys.argv[0]]

    handler, init_err = _load_handler(cfg["handler"])
    if init_err is not None:
        _log_error(init_err)
    _flush_logs()
    if init_err is None:
        _send(b'{"ready":true}')
    else:
        _send(_dumps({"ready": False, "error": init_err}).encode())
        init_err_body = _dumps(init_err).encode()

    while True:
        frame = _read_frame()
        if frame[4:5] != b"I":
            raise ValueError("not an invoke frame")
        end = 15 + _from_bytes(frame[13:15], "big")
        rid_b = frame[15:end]
        if init_err is None:
            result, err = _invoke(handler, cfg, rid_b.decode(), _from_bytes(frame[5:13], "big"), _event(frame[end:]))
        else:
            _log_error(init_err)
            result, err = None, init_err
        if err is None:
            head = b"O"
        else:
            head = b"E"
            result = init_err_body if err is init_err else _dumps(err).encode()
        # The whole frame in one allocation and, as a rule, one write.
        frame = _join((
            (11 + len(rid_b) + len(result)).to_bytes(4, "big"), head,
            _max_rss_kb().to_bytes(8, "big"), len(rid_b).to_bytes(2, "big"), rid_b, result))
        _flush_logs()
        n = _write(_OUT, frame)
        if n != len(frame):
            _write_all(_OUT, memoryview(frame)[n:])


if __name__ == "__main__":
    try:
        main()
    except EOFError:
        os._exit(0)  # the worker closed the request pipe: shut down
    except SystemExit as e:  # the handler called sys.exit
        _flush_logs()
        os._exit(e.code if isinstance(e.code, int) else 1)
    except BaseException as e:  # protocol broken (fds closed, garbage): die loudly
        try:
            os.write(2, ("nimbus bootstrap: %s: %s\n" % (type(e).__name__, e)).encode())
        except Exception:
            pass
        os._exit(70)
