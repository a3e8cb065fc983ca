# Nimbus run starter: an interactive run's program in a sandbox started
# ahead. Run as: python -u -E -s -S runstart.py, with the run's stdin,
# stdout and stderr already in place and fd 3 the worker's pipe. It waits
# for the run on fd 3 (until the worker closes it): the entry's path, a
# NUL, each argument and a NUL, a NUL, then KEY=VALUE NUL for each
# environment variable to add. Then it runs the entry as __main__, as
# `python ENTRY ARGS...` would: the entry's directory first on sys.path
# (then the directories NIMBUS_SYS_PATH lists: a function's layers),
# an uncaught exception printed without this file's frame (exit status 1,
# 130 for KeyboardInterrupt), SystemExit as its status. An empty message
# (the worker closed the pipe unused) ends it at once. Nothing is imported
# before the run but what the interpreter imports itself.
import os
import sys


def _warm():
    # Compiling and running a line now, while the sandbox waits, brings
    # the compiler's and the evaluation loop's pages in: the run's first
    # compile does not fault them in on the critical path.
    exec(compile("x = [str(i) for i in range(3)]\n", "<warm-up>", "exec"), {})
    sys.stdout.write("")


def _wait():
    parts = []
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        parts.append(chunk)
    os.close(3)
    return b"".join(parts)


def _start():
    _warm()
    data = _wait()
    if not data:
        os._exit(0)
    fields = data.split(b"\0")
    entry = os.fsdecode(fields[0])
    end = fields.index(b"", 1)
    args = [os.fsdecode(a) for a in fields[1:end]]
    for kv in fields[end + 1:]:
        if kv:
            k, _, v = kv.partition(b"=")
            os.environ[os.fsdecode(k)] = os.fsdecode(v)
    sys.argv = [entry] + args
    sys.path[0] = os.path.dirname(entry)
    extra = os.environ.pop("NIMBUS_SYS_PATH", "")
    if extra:
        sys.path[1:1] = extra.split(":")
    with open(entry, "rb") as f:
        source = f.read()
    main = type(sys)("__main__")
    main.__file__ = entry
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    return compile(source, entry, "exec"), main.__dict__


def _run():
    try:
        code, scope = _start()
        exec(code, scope)
    except SystemExit:
        raise
    except BaseException:
        kind, err, tb = sys.exc_info()
        if tb is not None:
            tb = tb.tb_next  # this file's frame
        sys.excepthook(kind, err.with_traceback(tb), tb)
        sys.exit(130 if issubclass(kind, KeyboardInterrupt) else 1)


_run()
