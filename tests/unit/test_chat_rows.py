"""The chats read model stores a reply once: `full_response` gives back upstream's response
JSON byte for byte, for rows written that way and for rows written before (text inside)."""

from __future__ import annotations

import msgspec

from projections.chats import full_response


def test_the_reply_goes_back_in_front_exactly_as_one_encode_would_write_it() -> None:
    whole = {"text": 'Otters "hold" hands\nwhile asleep ✓', "sources": [{"title": "a"}], "type": "chat",
             "attachments": [], "metrics": {"total_tokens": 3}, "status": "ok", "error": None}
    rest = {k: v for k, v in whole.items() if k != "text"}
    row = {"reply": whole["text"], "response": msgspec.json.encode(rest).decode()}
    assert full_response(row) == msgspec.json.encode(whole).decode()
    assert msgspec.json.decode(full_response(row)) == whole


def test_rows_written_with_the_text_inside_are_returned_as_they_are() -> None:
    old = msgspec.json.encode({"text": "hi", "sources": []}).decode()
    assert full_response({"reply": "hi", "response": old}) == old
