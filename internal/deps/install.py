# Nimbus dependency build, install step, run inside a sandbox: runs pip
# from its wheel to install packages into a fresh directory, compiles
# them once, and writes that directory as a zip to fd 3.
#
# argv: PIP_WHEEL OUT_DIR wheels WHEELS_DIR
#   installs the fetched wheels, and nothing else (no index, no network);
# argv: PIP_WHEEL OUT_DIR index PROXY_SOCKET REQUIREMENTS PIP_OPTION...
#   resolves, fetches and installs the requirements, building source
#   distributions, through the index proxy: the sandbox has no other way
#   out, and this script relays a loopback port to the proxy's socket.
import os
import socket
import sys
import threading

pip_wheel, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, pip_wheel)


def relay(path):
    """Listens on a loopback port and joins each connection to one to
    the Unix socket path; returns the port."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve():
        while True:
            c, _ = srv.accept()
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(path)
            except OSError:
                c.close()
                continue
            threading.Thread(target=pump, args=(c, u), daemon=True).start()
            threading.Thread(target=pump, args=(u, c), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


common = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off",
          "--no-warn-script-location", "--no-compile", "--target", out]
if mode == "wheels":
    wheels = sys.argv[4]
    files = sorted(os.path.join(wheels, n) for n in os.listdir(wheels) if n.endswith(".whl"))
    args = ["install", "--no-index", "--no-deps", "--only-binary", ":all:"] + common + files
else:
    port = relay(sys.argv[4])
    args = ["install", "--proxy", "http://127.0.0.1:%d" % port] + common + ["-r", sys.argv[5]] + sys.argv[6:]

from pip._internal.cli.main import main as pip  # noqa: E402

rc = pip(args)
if rc:
    sys.exit(rc)

# pip notes where each wheel was installed from (a path of this build):
# nothing a function needs, and it would make equal sets differ.
for name in os.listdir(out):
    if name.endswith(".dist-info"):
        noted = os.path.join(out, name, "direct_url.json")
        if os.path.exists(noted):
            os.remove(noted)
            record = os.path.join(out, name, "RECORD")
            with open(record) as f:
                lines = [ln for ln in f if not ln.startswith(name + "/direct_url.json,")]
            with open(record, "w") as f:
                f.writelines(lines)

import compileall  # noqa: E402
import py_compile  # noqa: E402
import zipfile  # noqa: E402

# The layer is read-only where it runs: its bytecode is written now, and
# checked by nothing but its presence (the sources never change).
unchecked = {}
if hasattr(py_compile, "PycInvalidationMode"):
    unchecked["invalidation_mode"] = py_compile.PycInvalidationMode.UNCHECKED_HASH
# Tracebacks name the files where functions see them, and the bytecode
# does not depend on where the build ran.
compileall.compile_dir(out, ddir="/opt/python", quiet=2, **unchecked)

with os.fdopen(3, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            info = zipfile.ZipInfo(os.path.relpath(path, out), (1980, 1, 1, 0, 0, 0))
            st = os.stat(path)
            info.external_attr = (st.st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as src:
                z.writestr(info, src.read())
print("nimbus: layer written", flush=True)
