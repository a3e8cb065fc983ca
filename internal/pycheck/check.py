# Nimbus deploy check: compiles every .py file of a package and looks for
# the handler's module, without importing or running any of it.
# argv: ROOT MODULE. Prints one line, the marker then a JSON list of
# problems, each {file, line, message}.
import importlib.machinery
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")  # SyntaxWarning and the like are not errors
root, module = sys.argv[1], sys.argv[2]
problems = []

for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
        if not name.endswith(".py"):
            continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        try:
            with open(path, "rb") as f:
                source = f.read()
            compile(source, rel, "exec", dont_inherit=True)
        except SyntaxError as e:  # IndentationError and TabError too
            problems.append({"file": rel, "line": e.lineno or 0,
                             "message": "%s: %s" % (type(e).__name__, e.msg)})
        except Exception as e:  # null bytes, an undecodable encoding, ...
            problems.append({"file": rel, "line": 0,
                             "message": "%s: %s" % (type(e).__name__, e)})


def in_package(parts):
    d = root
    for p in parts[:-1]:
        d = os.path.join(d, p)
        if not os.path.isdir(d):
            return False
    last = os.path.join(d, parts[-1])
    if os.path.isdir(last) or os.path.isfile(last + ".py"):
        return True
    return any(os.path.isfile(last + s) for s in importlib.machinery.EXTENSION_SUFFIXES)


parts = module.split(".")
if not in_package(parts):
    # A module of the runtime itself (found, not imported) is not the
    # package's business.
    top = parts[0]
    found = top in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(top, sys.path) is not None
    if not found:
        want = "/".join(parts)
        problems.append({"file": want + ".py", "line": 0,
                         "message": "the handler's module %r is not in the package (no %s.py, no %s/ directory)" % (module, want, want)})

print("NIMBUS-CHECK " + json.dumps(problems))
