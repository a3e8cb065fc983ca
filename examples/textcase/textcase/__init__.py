"""textcase: a small text-casing library, the example's dependency."""
import re
import unicodedata

__version__ = "1.0"

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slug(text):
    """Lower-case ASCII words joined by '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_WORD.sub("-", ascii_text.lower()).strip("-")
