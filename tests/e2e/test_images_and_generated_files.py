"""The two operations upstream has beside the rest: image generation through the configured
provider (litellm against the loopback model server) and downloads from DATA_DIR/generated/."""

from __future__ import annotations

import base64
import re

import pytest

from harness.llm_server import TINY_PNG
from tests.support.app import bearer, client_for, owner_key

IMAGES = "/api/v1/openai/images/generations"
GENERATED = "/api/v1/document/generated-files/"
NAME = "pdf-e9e14f28-d6b6-4f49-91a0-dd331517f567.pdf"


@pytest.fixture
def images_client(backend, llm_settings):
    with client_for(backend, **llm_settings, image_model="openai/test-image-model") as client:
        yield client


def test_no_image_provider_answers_upstreams_error_and_stores_nothing(backend, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        before = len(backend.raw_events())
        response = client.post(IMAGES, headers=bearer(key), json={"prompt": "a lighthouse"})
        assert response.status_code == 400
        assert response.json()["error"].startswith("No valid image generation provider was set.")
        assert "IMAGE_GEN_MODEL" in response.json()["error"]
        assert len(backend.raw_events()) == before


def test_json_request_gets_base64_png_from_the_configured_model(images_client, backend, llm):
    key = owner_key(images_client)
    before = len(backend.raw_events())
    response = images_client.post(IMAGES, headers=bearer(key), json={"prompt": "a lighthouse", "n": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert base64.b64decode(body["data"][0]["b64_json"]) == TINY_PNG and isinstance(body["created"], int)
    sent = llm.image_requests[-1]
    assert sent.path == "/v1/images/generations" and sent.body["model"] == "test-image-model"
    assert sent.body["prompt"] == "a lighthouse" and sent.body["size"] == "1024x1024"
    assert sent.authorization == "Bearer sk-test-provider-key-9f8e7d"  # LLM_API_KEY, no image key set
    assert len(backend.raw_events()) == before  # an image changes no state


def test_form_request_as_upstream_documents_it_with_a_blob_answer(images_client, llm):
    key = owner_key(images_client)
    response = images_client.post(IMAGES, headers=bearer(key),
                                  data={"prompt": "a map", "size": "512x512", "response_format": "blob"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and response.content == TINY_PNG
    assert re.fullmatch(r'inline; filename="img-[0-9a-f-]{36}\.png"', response.headers["content-disposition"])
    assert llm.image_requests[-1].body["size"] == "512x512"


def test_reference_images_go_to_the_providers_edit_endpoint(images_client, llm):
    key = owner_key(images_client)
    response = images_client.post(IMAGES, headers=bearer(key), data={"prompt": "make it blue"},
                                  files=[("image_references", ("ref.png", TINY_PNG, "image/png"))])
    assert response.status_code == 200, response.text
    assert base64.b64decode(response.json()["data"][0]["b64_json"]) == TINY_PNG
    edit = llm.image_requests[-1]
    assert edit.path == "/v1/images/edits" and TINY_PNG in edit.raw_body and b"make it blue" in edit.raw_body
    not_an_image = images_client.post(IMAGES, headers=bearer(key), data={"prompt": "x"},
                                      files=[("image_references", ("notes.txt", b"hello", "text/plain"))])
    assert not_an_image.status_code == 400 and "Only image uploads" in not_an_image.json()["error"]


@pytest.mark.parametrize("body, message", [
    ({"prompt": "   "}, "A prompt is required."),
    ({}, "prompt"),
    ({"prompt": "x", "size": "huge"}, "size"),
    ({"prompt": "x", "response_format": "url"}, "response_format"),
])
def test_bad_requests_are_400_with_a_message(images_client, llm, body, message):
    key = owner_key(images_client)
    response = images_client.post(IMAGES, headers=bearer(key), json=body)
    assert response.status_code == 400 and message in response.json()["error"], response.text
    assert llm.image_requests == []


def test_provider_refusal_is_400_and_provider_failure_502(images_client, llm):
    key = owner_key(images_client)
    llm.reply_image_error(400, "Your prompt was rejected by the safety system.")
    refused = images_client.post(IMAGES, headers=bearer(key), json={"prompt": "x"})
    assert refused.status_code == 400 and "safety system" in refused.json()["error"]
    for _ in range(3):  # the provider SDK retries a 5xx (twice at most)
        llm.reply_image_error(500, "The server had an error")
    failed = images_client.post(IMAGES, headers=bearer(key), json={"prompt": "x"})
    assert failed.status_code == 502 and failed.json()["error"].startswith("Image generation failed")
    assert "sk-test-provider-key" not in refused.text + failed.text


def test_images_need_a_key_with_the_chat_scope(images_client):
    admin = owner_key(images_client)
    assert images_client.post(IMAGES, json={"prompt": "x"}).status_code == 403
    reader = images_client.post("/api/system/generate-api-key", headers=bearer(admin),
                                json={"scopes": ["read"]}).json()["apiKey"]["secret"]
    assert images_client.post(IMAGES, headers=bearer(reader), json={"prompt": "x"}).status_code == 403


# --- generated files ----------------------------------------------------------------------------
def test_generated_file_is_served_as_an_attachment_with_its_type(client, backend):
    key = owner_key(client)
    folder = backend.data_dir / "generated"
    folder.mkdir()
    (folder / NAME).write_bytes(b"%PDF-1.7 made by an agent")
    response = client.get(GENERATED + NAME, headers=bearer(key))
    assert response.status_code == 200 and response.content == b"%PDF-1.7 made by an agent"
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith(f'attachment; filename="{NAME}"')
    (folder / "bin-e9e14f28-d6b6-4f49-91a0-dd331517f567.qqq").write_bytes(b"\x00")
    other = client.get(GENERATED + "bin-e9e14f28-d6b6-4f49-91a0-dd331517f567.qqq", headers=bearer(key))
    assert other.headers["content-type"] == "application/octet-stream"


def test_missing_generated_file_is_404(client):
    key = owner_key(client)
    response = client.get(GENERATED + NAME, headers=bearer(key))
    assert response.status_code == 404 and response.json() == {"error": "File not found"}


@pytest.mark.parametrize("name", ["report.pdf", "pdf-e9e14f28-d6b6-4f49-91a0-dd331517f567",
                                  "pdf-e9e14f28-d6b6-4f49-91a0-dd331517f567.pdf%00.txt", "%2E%2E", "..%5Cevents.db"])
def test_names_not_shaped_like_storage_names_are_refused(client, name):
    key = owner_key(client)
    response = client.get(GENERATED + name, headers=bearer(key))
    assert response.status_code == 400 and response.json() == {"error": "Invalid filename format"}


def test_an_encoded_path_out_of_the_folder_matches_no_route(client, backend):
    key = owner_key(client)
    response = client.get(GENERATED + "..%2F..%2Fevents.db", headers=bearer(key))
    assert response.status_code == 404 and set(response.json()) == {"error"}


def test_a_link_out_of_the_folder_is_not_followed(client, backend, tmp_path):
    key = owner_key(client)
    secret = tmp_path / "outside.txt"
    secret.write_text("not for clients")
    folder = backend.data_dir / "generated"
    folder.mkdir()
    (folder / "txt-e9e14f28-d6b6-4f49-91a0-dd331517f567.txt").symlink_to(secret)
    response = client.get(GENERATED + "txt-e9e14f28-d6b6-4f49-91a0-dd331517f567.txt", headers=bearer(key))
    assert response.status_code == 404 and "not for clients" not in response.text
