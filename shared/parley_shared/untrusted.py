"""Reading text that comes from outside (request bodies, provider and model answers, queue bodies).

:func:`json_loads` is ``json.loads`` for such text: JSON nested deeper than the parser's recursion
limit raises ``RecursionError`` in the standard library, which no caller expects from "junk"; here
it is a ``ValueError`` like every other malformed document, so each caller's existing "not JSON"
path (a 400, a typed error, a dead letter) handles it.
"""

from __future__ import annotations

import json
from typing import Any


def json_loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
