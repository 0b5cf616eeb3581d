"""The API's JSON writer (api.renderer) writes what django-ninja's would."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from ninja.responses import NinjaJSONEncoder

from api.renderer import dumps


def test_it_writes_what_the_standard_encoder_writes():
    data = {
        "at": datetime(2026, 11, 22, 17, 3, 38, 123456, tzinfo=UTC),
        "day": date(2026, 11, 22),
        "id": uuid.UUID(int=7),
        "amount": Decimal("1.50"),
        "nested": [{"a": 1, "b": [True, None, 0.1, "é"]}],
        7: "an integer key",
    }
    assert json.loads(dumps(data)) == json.loads(json.dumps(data, cls=NinjaJSONEncoder))
    assert json.loads(dumps(data))["at"] == "2026-11-22T17:03:38.123Z"


def test_it_writes_every_kind_of_datetime_as_the_standard_encoder_does():
    class Stamp(datetime):
        pass

    moments = [
        datetime(2026, 11, 22, 17, 3, 38, tzinfo=UTC),
        datetime(2026, 11, 22, 17, 3, 38, 999, tzinfo=UTC),
        datetime(2026, 11, 22, 17, 3, 38, 500000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 11, 22, 17, 3, 38, 1),
        Stamp(2026, 11, 22, 17, 3, 38, 123456, tzinfo=UTC),
    ]
    expected = json.loads(json.dumps(moments, cls=NinjaJSONEncoder))
    assert json.loads(dumps(moments)) == expected
    assert expected[:2] == ["2026-11-22T17:03:38Z", "2026-11-22T17:03:38.000Z"]


def test_it_falls_back_for_what_orjson_refuses():
    data = {"params": {"seed": 2**80}}
    assert json.loads(dumps(data)) == data
