"""Service messages that were built with f-strings now go through gettext with named
placeholders: their values are filled in in any language, and the API's codes, fields and
status codes stay the same whatever the Accept-Language."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from core.texts import item_id_problem, text_problem
from taxonomy import services as taxonomy_services
from tenants.services import member_role_set
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_text_problems_fill_their_numbers_in_either_language():
    with translation.override("en"):
        code, message = text_problem("x" * 12, max_chars=10)
        assert (code, message) == ("text_too_long", "The text has 12 characters; at most 10.")
        assert item_id_problem("\x00") == "The id contains a NUL character."
    with translation.override("zh-hans"):
        code, message = text_problem("x" * 12, max_chars=10)
        assert code == "text_too_long"
        assert CJK.search(message) and "12" in message and "10" in message
        assert CJK.search(item_id_problem("\x00")) and "NUL" in item_id_problem("\x00")


def test_validation_errors_name_the_offending_value_in_chinese(tree):
    with translation.override("zh-hans"), pytest.raises(ValidationError) as raised:
        taxonomy_services.label_set_create(
            name="Desk", slug="desk", kind="multiclass", label_keys=["news.sport", "no.such.key"]
        )
    [message] = [m for m in sum(raised.value.message_dict.values(), []) if "no.such" in m]
    assert "no.such.key" in message and CJK.search(message), message


def test_role_choices_are_listed_in_the_message(tenant_a):
    membership = MembershipFactory(user=UserFactory(username="bob2"), tenant=tenant_a)
    with translation.override("zh-hans"), pytest.raises(ValidationError) as raised:
        member_role_set(membership=membership, role="owner")
    [message] = raised.value.message_dict["role"]
    assert "viewer" in message and CJK.search(message), message


def test_api_sync_tag_errors_keep_codes_and_fields_and_translate_messages(api_a, tenant_a):
    from tests.factories import NeedFactory

    NeedFactory(tenant=tenant_a, slug="topics")
    body = {"items": [{"id": "1", "text": "x"}, {"id": "1", "text": "y"}, "not an object"]}
    english = api_a.post("/api/v1/needs/topics/tag", body, format="json")
    chinese = api_a.post(
        "/api/v1/needs/topics/tag", body, format="json", HTTP_ACCEPT_LANGUAGE="zh-Hans"
    )
    assert english.status_code == chinese.status_code
    assert english.status_code in (400, 404, 409, 422)
    en, zh = english.json()["error"], chinese.json()["error"]
    assert en["code"] == zh["code"]
    assert sorted(en.get("fields") or {}) == sorted(zh.get("fields") or {})
    assert not CJK.search(en["message"]) and CJK.search(zh["message"]), (en, zh)
