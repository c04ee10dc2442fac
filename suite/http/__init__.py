"""Building blocks of the HTTP app (:mod:`suite.app`): errors, authentication, limits.

What plugins use:

- :func:`check_texts` / :func:`check_text`: validate user text against ``[http]`` limits.
- :data:`PUBLIC`: ``openapi_extra=PUBLIC`` on a route that needs no API key (an HTML page).
- :class:`ApiError`: raise an HTTP error with an explicit status and error type.
"""

from suite.http.auth import PUBLIC
from suite.http.errors import ApiError, ErrorBody
from suite.http.limits import check_text, check_texts

__all__ = ["PUBLIC", "ApiError", "ErrorBody", "check_text", "check_texts"]
