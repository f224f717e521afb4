"""/metrics in Prometheus format: requests by route template, events by type, LLM figures, lag."""

from __future__ import annotations

import re

from tests.support.app import bearer, client_for, owner_key


def _value(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_metrics_count_requests_events_and_chats(sqlite_backend, llm, llm_settings):
    import time

    with client_for(sqlite_backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "m"})
        client.post("/api/v1/workspace/m/chat", headers=bearer(key), json={"message": "hello"})
        client.delete("/api/system/api-key/12345", headers=bearer(key))
        client.get("/api/no-such-route/67890")  # no route: counted, under no path
        deadline = time.monotonic() + 60  # generous: a busy machine delays the follower's poll
        while True:  # the follower counts events from the log on its next poll
            text = client.get("/metrics").text
            counted = all(_value(text, f'ledgerllm_events_appended_total{{type="{kind}"}}') >= 1
                          for kind in ("Workspace.Created", "Chat.Recorded"))
            if counted or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert counted, "the follower did not count the events within 60 s"
    assert _value(text, 'ledgerllm_llm_tokens_total{kind="prompt",model="openai/test-model"}') > 0
    assert _value(text, "ledgerllm_llm_seconds_count") >= 1
    assert "ledgerllm_projection_lag_events" in text
    assert 'path="/api/v1/workspace/{slug}/chat"' in text  # route templates, never raw paths
    chat = 'app_name="ledgerllm",method="POST",path="/api/v1/workspace/{slug}/chat",status_code="200"'
    chats = _value(text, f"ledgerllm_requests_total{{{chat}}}")  # >1 if this process served other tests' chats
    assert chats >= 1 and _value(text, f"ledgerllm_request_duration_seconds_count{{{chat}}}") == chats
    inf = chat.replace(",method", ',le="+Inf",method')
    assert _value(text, f"ledgerllm_request_duration_seconds_bucket{{{inf}}}") == chats
    assert 0 < _value(text, f"ledgerllm_request_duration_seconds_sum{{{chat}}}") < 30 * chats
    assert 'ledgerllm_requests_in_progress{app_name="ledgerllm",method="POST",path="/api/v1/workspace/{slug}/chat"' in text
    assert _value(text, 'ledgerllm_requests_total{app_name="ledgerllm",method="GET",path="<no route>",status_code="404"}') >= 1
    assert 'path="/metrics"' not in text
    labels = re.findall(r"\{[^}]*\}", text)  # the id must not become a label (a timestamp may hold its digits)
    assert labels and not any("12345" in label for label in labels) and key not in text
