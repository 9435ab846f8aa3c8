"""Room aliases and identities match what clients compute (identity-vectors.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from matrixrtc_auth.sfu.naming import (
    js_json_array,
    legacy_identity,
    participant_identity,
    room_alias,
)

VECTORS_FILE = Path(__file__).resolve().parents[3] / "shared" / "spec" / "identity-vectors.json"
_LOCAL_COPY = Path(__file__).resolve().parent / "data" / "identity-vectors.json"


def _vectors() -> dict[str, Any]:
    path = VECTORS_FILE if VECTORS_FILE.exists() else _LOCAL_COPY
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


VECTORS = _vectors()


@pytest.mark.parametrize("case", VECTORS["room_alias"], ids=lambda c: c["expected"][:8])
def test_room_alias_vectors(case: dict[str, str]) -> None:
    assert js_json_array([case["room_id"], case["slot_id"]]) == case["canonical_json"]
    assert room_alias(case["room_id"], case["slot_id"]) == case["expected"]


@pytest.mark.parametrize("case", VECTORS["identity"], ids=lambda c: c["expected"][:8])
def test_identity_vectors(case: dict[str, str]) -> None:
    items = [case["user_id"], case["device_id"], case["member_id"]]
    assert js_json_array(items) == case["canonical_json"]
    assert participant_identity(*items) == case["expected"]


def test_javascript_json_details() -> None:
    # JSON.stringify leaves U+2028 and non-ASCII raw, escapes lone surrogates.
    assert js_json_array(["\u2028", "é", "\ud800"]) == '["\u2028","é","\\ud800"]'
    assert js_json_array(["</script>", "a/b"]) == '["</script>","a/b"]'


def test_aliases_are_unpadded_standard_base64() -> None:
    alias = room_alias("!room:example.com", "m.call#ROOM")
    assert "=" not in alias and len(alias) == 43


def test_legacy_identity_is_user_and_device() -> None:
    assert legacy_identity("@alice:example.com", "DEV") == "@alice:example.com:DEV"
