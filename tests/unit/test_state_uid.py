"""Pod UIDs: random version-4 UUIDs in their usual text form."""

import uuid

from minipod.state import new_uid


def test_new_uid_is_a_version_4_uuid():
    for _ in range(200):
        text = new_uid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_new_uids_differ():
    assert len({new_uid() for _ in range(1000)}) == 1000
