"""Building blocks of the HTTP app (:mod:`suite.app`): errors, authentication, limits.

What plugins use:

- :func:`check_texts` / :func:`check_text`: validate user text against ``[http]`` limits.
- :data:`PUBLIC`: ``openapi_extra=PUBLIC`` on a route that needs no API key (an HTML page).
- :class:`ApiError`: raise an HTTP error with an explicit status and error type.
- :data:`SqlInt`: the type of an id or offset parameter that goes into a SQL query.
"""

from suite.http.auth import PUBLIC
from suite.http.errors import ApiError, ErrorBody
from suite.http.limits import SqlInt, check_text, check_texts

__all__ = ["PUBLIC", "ApiError", "ErrorBody", "SqlInt", "check_text", "check_texts"]
