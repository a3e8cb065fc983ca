# Nimbus dependency build, install step: runs pip from its wheel to
# install the fetched wheels (and nothing else: no index, no network)
# into a fresh directory, compiles them once, and writes that directory
# as a zip to fd 3.
# argv: PIP_WHEEL WHEELS_DIR OUT_DIR
import os
import sys

pip_wheel, wheels, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, pip_wheel)
files = sorted(os.path.join(wheels, n) for n in os.listdir(wheels) if n.endswith(".whl"))

from pip._internal.cli.main import main as pip  # noqa: E402

rc = pip(["install", "--no-index", "--no-deps", "--no-compile", "--only-binary", ":all:",
          "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
          "--no-warn-script-location", "--target", out] + files)
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
mode = {}
if hasattr(py_compile, "PycInvalidationMode"):
    mode["invalidation_mode"] = py_compile.PycInvalidationMode.UNCHECKED_HASH
# Tracebacks name the files where functions see them, and the bytecode
# does not depend on where the build ran.
compileall.compile_dir(out, ddir="/opt/python", quiet=2, **mode)

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
