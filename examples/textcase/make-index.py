#!/usr/bin/env python3
"""Builds the textcase wheel (the example slugs's dependency) from textcase/ into a package index
directory laid out as PEP 503's simple API (DIR/simple/textcase/...),
which any static file server serves: python3 -m http.server -d DIR.
Standard library only. Usage: make-index.py DIR"""
import base64
import hashlib
import os
import sys
import zipfile

NAME, VERSION = "textcase", "1.0"
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "index", "simple", NAME)
os.makedirs(out, exist_ok=True)
info = "%s-%s.dist-info" % (NAME, VERSION)
files = {}
src = here
for dirpath, _, names in os.walk(src):
    for n in sorted(names):
        if n.endswith(".py") and n != "make-index.py":
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, src).replace(os.sep, "/")] = f.read()
files[info + "/METADATA"] = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (NAME, VERSION)).encode()
files[info + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: make-index.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
record = []
for p, data in sorted(files.items()):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (p, digest, len(data)))
record.append(info + "/RECORD,,")
files[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
wheel = os.path.join(out, "%s-%s-py3-none-any.whl" % (NAME, VERSION))
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
    for p, data in files.items():
        z.writestr(p, data)
print(wheel)
