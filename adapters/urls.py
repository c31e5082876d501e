"""Service URLs as they may be shown: the password hidden."""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe to print or log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    host = f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit((parts.scheme, f"{parts.username or ''}:***@{host}", parts.path, parts.query, parts.fragment))


# scheme://user:password@ anywhere in a text (an exception message, a traceback, a log line).
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s@/]+)@")


def mask_urls_in(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***: for error messages and tracebacks that are
    stored or logged, where a job's own exception may quote a connection string."""
    return _CREDENTIALS.sub(r"\g<head>***@", text)
