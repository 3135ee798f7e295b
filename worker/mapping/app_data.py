"""`app_data` and `madid` of an app event (action_source `app`), from Segment's mobile context.

- advertiser_tracking_enabled: `context.device.adTrackingEnabled` as 1/0 (0 when unknown: no
  permission was given that we know of); application_tracking_enabled: 1.
- extinfo: the 16 strings of Meta's documented order, empty where unknown: version (`a2`
  Android, `i2` iOS, from `context.os.name`), package name (`context.app.namespace`), short
  version (`context.app.version`), long version (`context.app.build`), OS version
  (`context.os.version`), device model (`context.device.model`), locale (`context.locale`),
  time-zone abbreviation (`context.timezone` when it is one, such as `PST`), carrier
  (`context.network.carrier`), screen width, height and density (`context.screen.*`), CPU
  cores, storage size and free storage (not sent by Segment's libraries: empty), device time
  zone (`context.timezone`).
- `integrations.<name>.app_data` (an object) overrides any of these keys, and is the only
  source for an app on another OS; without it such an event is invalid (`missing_app_data`).
- madid: `context.device.advertisingId`, lowercased, unless `adTrackingEnabled` is false (also
  given as `0` or `"false"`) or the id is all zeros (what iOS reports when the user limited ad
  tracking).
"""

from __future__ import annotations

from typing import Any

from worker import reasons
from worker.capi.contract import app_data_problem
from worker.mapping.errors import InvalidEvent

EXTINFO_VERSIONS: dict[str, str] = {
    "android": "a2",
    "ios": "i2",
    "ipados": "i2",
    "iphone os": "i2",
}
_EMPTY: dict[str, Any] = {}
_ZERO_ID_CHARACTERS = frozenset("0-")


def build_app_data(context: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The app_data object of an app event; raises `InvalidEvent` when there is none."""
    given = options.get("app_data") if options else None
    if given is not None and not isinstance(given, dict):
        raise InvalidEvent(
            reasons.INVALID_APP_DATA,
            f"integrations.<name>.app_data must be an object, got {type(given).__name__}",
        )
    os = _object(context.get("os"))
    os_name = _string(os.get("name"))
    version = EXTINFO_VERSIONS.get(os_name.lower())
    if version is None:
        if given is None:
            raise InvalidEvent(
                reasons.MISSING_APP_DATA,
                "an app event needs app_data: send context.os.name Android or iOS (with "
                "context.app and context.device), or integrations.<name>.app_data",
            )
        app_data = dict(given)
    else:
        app_data = _from_context(context, os, version)
        if given:
            app_data.update(given)
    problem = app_data_problem(app_data)
    if problem is not None:
        raise InvalidEvent(reasons.INVALID_APP_DATA, f"integrations.<name>.{problem}")
    return app_data


def advertising_id(context: dict[str, Any]) -> str | None:
    """madid: the device's advertising id, unless ad tracking is off or the id is zeroed."""
    device = _object(context.get("device"))
    if _ad_tracking(device) is False:
        return None
    madid = _string(device.get("advertisingId")).lower()
    if not madid or _ZERO_ID_CHARACTERS.issuperset(madid):
        return None
    return madid


def _from_context(context: dict[str, Any], os: dict[str, Any], version: str) -> dict[str, Any]:
    app = _object(context.get("app"))
    device = _object(context.get("device"))
    screen = _object(context.get("screen"))
    network = _object(context.get("network"))
    timezone = _string(context.get("timezone"))
    abbreviation = timezone if 2 <= len(timezone) <= 5 and timezone.isalpha() else ""
    extinfo = [
        version,
        _string(app.get("namespace")),
        _string(app.get("version")),
        _string(app.get("build")),
        _string(os.get("version")),
        _string(device.get("model")),
        _string(context.get("locale")),
        abbreviation,
        _string(network.get("carrier")),
        _string(screen.get("width")),
        _string(screen.get("height")),
        _string(screen.get("density")),
        "",  # CPU cores
        "",  # external storage size (GB)
        "",  # free external storage (GB)
        timezone,
    ]
    return {
        "advertiser_tracking_enabled": 1 if _ad_tracking(device) is True else 0,
        "application_tracking_enabled": 1,
        "extinfo": extinfo,
    }


# adTrackingEnabled as a boolean, or as 1/0 and "true"/"false" text (hand-built or bridged
# events): the same answer for advertiser_tracking_enabled and for madid.
_AD_TRACKING_TEXT: dict[str, bool] = {"true": True, "1": True, "false": False, "0": False}
_AD_TRACKING_NUMBER: dict[int, bool] = {1: True, 0: False}


def _ad_tracking(device: dict[str, Any]) -> bool | None:
    """`context.device.adTrackingEnabled`: True, False, or None when unknown."""
    value = device.get("adTrackingEnabled")
    if value is True or value is False or value is None:
        return value
    if type(value) is int:
        return _AD_TRACKING_NUMBER.get(value)
    if type(value) is str:
        return _AD_TRACKING_TEXT.get(value.strip().lower())
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def _string(value: Any) -> str:
    """A trimmed string, a number as text (integral floats without `.0`), else `""`."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) < 1e15:
        return str(int(value)) if value.is_integer() else repr(value)
    return ""
