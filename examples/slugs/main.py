"""Turns titles into URL slugs with textcase, a dependency that
requirements.txt names: the deploy installs it into the function's
dependency layer (/opt/python)."""
import textcase


def handler(event, context):
    titles = event.get("titles", ["Hello, World!"])
    return {"slugs": [textcase.slug(t) for t in titles], "textcase": textcase.__version__}
