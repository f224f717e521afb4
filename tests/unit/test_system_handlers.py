"""Instance-level use cases on the in-memory store: changing provider settings records public
values and only the *names* of secrets (the values go to the secrets store), with the actor;
letting a read model skip an event records why and by whom; generating an image (the real
images port against the loopback model server) records nothing. Refusals store nothing."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from application.images import GenerateImage, ImageGenerationFailed, ImagesNotConfigured, generate_image
from application.llm import setting_value
from application.projections import SkipEvent, skip_event
from application.system import MASK, UpdateEnv, current_settings, update_env
from domain.errors import InvalidInput, PermissionDenied
from domain.principal import Scope
from domain.projections import ProjectionControl
from domain.system import System
from harness.llm_server import TINY_PNG
from tests.support.memory import add_user, head, kinds, memory_runtime, new_events, owner, own_key, stamps

SECRET = "sk-provider-secret-0123456789"


def _env(principal, **values) -> UpdateEnv:
    return UpdateEnv(principal=principal, correlation_id="c-env", values=values)


def test_settings_change_records_public_values_and_secret_names_with_the_actor(tmp_path):
    with memory_runtime(tmp_path) as rt:
        admin = own_key(rt, owner(rt))
        before = head(rt)
        shown, error = update_env(rt.ctx, _env(admin, LLMModel="openai/gpt-4o-mini", LLMApiKey=SECRET,
                                                AuthToken="x", NotASetting="y"))
        assert shown == {"LLMModel": "openai/gpt-4o-mini", "LLMApiKey": MASK}
        assert error == "Unknown or protected settings ignored: AuthToken, NotASetting"
        events = new_events(rt, before)
        assert kinds(events) == ["System.SettingsChanged"]
        assert stamps(events) == {(admin.user_id, admin.api_key_id, "c-env")}
        changed = events[0]
        assert changed.values == {"LLMModel": "openai/gpt-4o-mini"} and changed.secret_keys == ("LLMApiKey",)
        assert SECRET not in repr(vars(changed))  # the value never enters an event
        assert setting_value(rt.ctx, "LLMApiKey") == SECRET and setting_value(rt.ctx, "LLMModel") == "openai/gpt-4o-mini"
        settings = current_settings(rt.ctx, admin)
        assert settings["LLMModel"] == "openai/gpt-4o-mini" and settings["LLMApiKey"] is True  # set, not shown


def test_masked_values_echoed_back_change_nothing(tmp_path):
    with memory_runtime(tmp_path) as rt:
        admin = owner(rt)
        update_env(rt.ctx, _env(admin, LLMApiKey=SECRET))
        before = head(rt)
        shown, error = update_env(rt.ctx, _env(admin, LLMApiKey=MASK))
        assert (shown, error) == ({}, None)
        assert new_events(rt, before) == [] and setting_value(rt.ctx, "LLMApiKey") == SECRET


@pytest.mark.parametrize("values", [{"LLMModel": 7}, {"LLMModel": None}, {"LLMApiBase": "x" * 10_001},
                                    {"LLMApiKey": "k" * 10_001}])
def test_bad_values_are_refused_and_store_nothing(tmp_path, values):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        with pytest.raises(InvalidInput):
            update_env(rt.ctx, _env(owner(rt), **values))
        assert new_events(rt, before) == [] and setting_value(rt.ctx, "LLMApiKey") is None


def test_only_admins_change_settings(tmp_path):
    with memory_runtime(tmp_path) as rt:
        admin = owner(rt)
        manager = add_user(rt, "mia", role="manager")
        read_only = replace(own_key(rt, admin), scopes=(Scope.READ.value,))
        before = head(rt)
        for principal in (manager, read_only):
            with pytest.raises(PermissionDenied):
                update_env(rt.ctx, _env(principal, LLMModel="openai/x"))
        assert new_events(rt, before) == [] and setting_value(rt.ctx, "LLMModel") is None


def test_skipping_an_event_records_the_reason_and_the_operator(tmp_path):
    with memory_runtime(tmp_path) as rt:
        operator = owner(rt)
        before = head(rt)
        position = skip_event(rt.ctx, SkipEvent(principal=operator, correlation_id="c-skip", projection="chats",
                                                position=3, topic="domain.chats:Chat.Recorded",
                                                reason="  written by a bad release  "))
        events = new_events(rt, before)
        assert kinds(events) == ["ProjectionControl.Opened", "ProjectionControl.EventSkipped"]
        assert position == head(rt) and stamps(events) == {(operator.user_id, None, "c-skip")}
        skipped = events[-1]
        assert (skipped.projection, skipped.position, skipped.reason) == ("chats", 3, "written by a bad release")

        later = head(rt)
        skip_event(rt.ctx, SkipEvent(principal=operator, correlation_id="c-skip2", projection="chats", position=4,
                                     topic="t", reason="also bad"))
        assert kinds(new_events(rt, later)) == ["ProjectionControl.EventSkipped"]  # one control per read model


@pytest.mark.parametrize(("position", "reason"), [(3, "again"), (0, "no such position"), (5, "   "),
                                                  (5, "r" * 10_000)])
def test_a_refused_skip_stores_nothing(tmp_path, position, reason):
    with memory_runtime(tmp_path) as rt:
        operator = owner(rt)
        skip_event(rt.ctx, SkipEvent(principal=operator, correlation_id="c1", projection="chats", position=3,
                                     topic="t", reason="first"))
        before = head(rt)
        with pytest.raises(InvalidInput):
            skip_event(rt.ctx, SkipEvent(principal=operator, correlation_id="c2", projection="chats",
                                         position=position, topic="t", reason=reason))
        assert new_events(rt, before) == []


def test_an_image_comes_from_the_configured_provider_and_records_nothing(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings, image_model="openai/test-image-model") as rt:
        me = own_key(rt, owner(rt))
        before = head(rt)
        image = generate_image(rt.ctx, GenerateImage(principal=me, correlation_id="c-img", prompt="a lighthouse",
                                                     size="512x512"))
        assert image.image == TINY_PNG and image.storage_filename.startswith("img-")
        sent = llm.image_requests[-1]
        assert sent.body["prompt"] == "a lighthouse" and sent.body["size"] == "512x512"
        assert new_events(rt, before) == []


def test_image_refusals_and_provider_failures(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings, image_model="openai/test-image-model") as rt:
        me = own_key(rt, owner(rt))
        for prompt in ("   ", "p" * 32_001):
            with pytest.raises(InvalidInput):
                generate_image(rt.ctx, GenerateImage(principal=me, correlation_id="c", prompt=prompt))
        with pytest.raises(PermissionDenied):
            generate_image(rt.ctx, GenerateImage(principal=replace(me, scopes=(Scope.READ.value,)),
                                                 correlation_id="c", prompt="a map"))
        assert llm.image_requests == []  # nothing refused reached the provider
        for status, expected, times in ((400, 400, 1), (503, 502, 3)):  # the provider SDK retries a 5xx twice
            for _ in range(times):
                llm.reply_image_error(status, "the provider says no")
            with pytest.raises(ImageGenerationFailed) as failed:
                generate_image(rt.ctx, GenerateImage(principal=me, correlation_id="c", prompt="a map"))
            assert failed.value.status == expected
    with memory_runtime(tmp_path / "plain", **llm_settings) as rt:
        with pytest.raises(ImagesNotConfigured):
            generate_image(rt.ctx, GenerateImage(principal=owner(rt), correlation_id="c", prompt="a map"))
