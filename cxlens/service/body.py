"""Reading a JSON request body with a size limit, whatever Content-Length claims."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request


async def json_body(request: Request, limit: int) -> Any:
    """The parsed body; 413 past `limit` bytes, 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"The request body is larger than {limit} bytes; send fewer events per request.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"The request body is larger than {limit} bytes; send fewer events per request.")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "The request body is not valid JSON.") from None
