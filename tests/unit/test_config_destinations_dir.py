"""Destinations from `destinations_dir`, tokens and app secrets from files: merged, validated,
and every error names the key or the file and never a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import ConfigError, load_settings, parse_settings

KAFKA = {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"}
SECRET = "EAAB-do-not-print-me"


def _shop(name: str, pixel: str = "1", **more: Any) -> dict[str, Any]:
    return {"name": name, "pixel_id": pixel, "access_token": "t", **more}


def _write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def _config(tmp_path: Path, **top: Any) -> Path:
    return _write(tmp_path / "worker.yaml", {"kafka": KAFKA, **top})


def _load_error(config: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    text = str(caught.value)
    assert SECRET not in text
    return text


# ---- token and app secret files ------------------------------------------------------------------


def test_access_token_file_is_read_with_surrounding_whitespace_stripped(tmp_path: Path) -> None:
    token = _write(tmp_path / "token", f"  {SECRET}\n")
    secret = _write(tmp_path / "secret", "app-secret\n")
    settings = parse_settings(
        {
            "kafka": KAFKA,
            "destinations": [
                {
                    "name": "shop",
                    "pixel_id": "1",
                    "access_token_file": str(token),
                    "app_secret_file": str(secret),
                }
            ],
        }
    )
    [shop] = settings.destinations
    assert shop.access_token.get_secret_value() == SECRET
    assert shop.app_secret is not None and shop.app_secret.get_secret_value() == "app-secret"
    assert shop.access_token_file == token
    assert SECRET not in repr(shop)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read the file"), ("  \n", "the file is empty"), (b"\xff\xfe", "not UTF-8")],
)
def test_an_unusable_token_file_is_a_start_up_error_naming_key_and_path(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    token = tmp_path / "token"
    if isinstance(content, bytes):
        token.write_bytes(content)
    elif content is not None:
        token.write_text(content)
    destination = {"name": "shop", "pixel_id": "1", "access_token_file": str(token)}
    config = _config(tmp_path, destinations=[destination])
    text = _load_error(config)
    assert f"access_token_file {token}" in text and problem in text
    assert "destinations.0" in text


@pytest.mark.parametrize("key", ["access_token_file", "app_secret_file"])
@pytest.mark.parametrize(
    "content", [f"{SECRET}\n# rotated today\n", f"{SECRET} x", f"{SECRET}\x07"]
)
def test_a_secret_file_with_a_space_or_line_break_inside_is_refused_naming_key_and_path(
    tmp_path: Path, key: str, content: str
) -> None:
    # A line break would reach the Authorization header and fail every request of the pixel.
    secret = _write(tmp_path / "secret", content)
    destination = {"name": "shop", "pixel_id": "1", key: str(secret)}
    if key == "app_secret_file":
        destination["access_token"] = "t"
    text = _load_error(_config(tmp_path, destinations=[destination]))
    assert f"{key} {secret}: holds a space or a line break inside" in text


def test_a_token_and_a_token_file_together_are_refused(tmp_path: Path) -> None:
    token = _write(tmp_path / "token", SECRET)
    config = _config(tmp_path, destinations=[_shop("shop", access_token_file=str(token))])
    assert "give either access_token or access_token_file, not both" in _load_error(config)


def test_an_app_secret_and_an_app_secret_file_together_are_refused(tmp_path: Path) -> None:
    secret = _write(tmp_path / "secret", SECRET)
    destination = _shop("shop", app_secret="x", app_secret_file=str(secret))
    config = _config(tmp_path, destinations=[destination])
    assert "give either app_secret or app_secret_file, not both" in _load_error(config)


def test_no_token_at_all_names_both_ways_to_give_one(tmp_path: Path) -> None:
    config = _config(tmp_path, destinations=[{"name": "shop", "pixel_id": "1"}])
    text = _load_error(config)
    assert "destinations.0.access_token: Field required" in text
    assert "access_token_file" in text


# ---- destinations_dir ----------------------------------------------------------------------------


def test_inline_destinations_come_first_then_each_file_in_name_order(tmp_path: Path) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    _write(shops / "b.yml", [_shop("b1", "21"), _shop("b2", "22")])
    _write(shops / "a.yaml", [_shop("a1", "11")])
    config = _config(tmp_path, destinations=[_shop("inline")], destinations_dir="shops")
    settings = load_settings(config, env={})
    assert [d.name for d in settings.destinations] == ["inline", "a1", "b1", "b2"]
    assert settings.destinations_dir == shops


def test_hidden_entries_other_suffixes_and_folders_are_ignored(tmp_path: Path) -> None:
    shops = tmp_path / "shops"
    (shops / "..2026_11_30").mkdir(parents=True)
    _write(shops / "..2026_11_30" / "a.yaml", [_shop("inside-data-folder")])
    (shops / "..data").symlink_to(shops / "..2026_11_30")
    _write(shops / ".hidden.yaml", [_shop("hidden")])
    _write(shops / "notes.txt", "not yaml")
    (shops / "folder.yaml").mkdir()
    (shops / "a.yaml").symlink_to(shops / "..data" / "a.yaml")  # a ConfigMap key
    config = _config(tmp_path, destinations_dir=str(shops))
    assert [d.name for d in load_settings(config, env={}).destinations] == ["inside-data-folder"]


def test_destinations_are_optional_with_a_directory_but_one_is_needed_overall(
    tmp_path: Path,
) -> None:
    (tmp_path / "shops").mkdir()
    _write(tmp_path / "shops" / "empty.yaml", "")
    text = _load_error(_config(tmp_path, destinations_dir="shops"))
    assert "no destination in it and none inline" in text
    with pytest.raises(ConfigError, match="at least one destination is required"):
        parse_settings({"kafka": KAFKA})


def test_a_name_used_twice_across_files_names_both_places(tmp_path: Path) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    _write(shops / "a.yaml", [_shop("shop")])
    _write(shops / "b.yaml", [_shop("shop")])
    text = _load_error(_config(tmp_path, destinations_dir="shops"))
    assert f"destinations_dir {shops / 'b.yaml'}" in text
    assert "'shop' is already used in a.yaml" in text


def test_a_name_used_inline_and_in_a_file_is_refused(tmp_path: Path) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    _write(shops / "a.yaml", [_shop("shop")])
    text = _load_error(_config(tmp_path, destinations=[_shop("shop")], destinations_dir="shops"))
    assert "already used in the configuration file" in text


def test_an_unknown_key_in_a_file_names_the_file_and_the_key_not_the_token(
    tmp_path: Path,
) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    _write(shops / "good.yaml", [_shop("good")])
    _write(shops / "bad.yaml", [_shop("ok"), {**_shop("typo", access_token=SECRET), "pixle": 1}])
    text = _load_error(_config(tmp_path, destinations_dir="shops"))
    assert f"destinations_dir file {shops / 'bad.yaml'}" in text
    assert "1.pixle: unknown key" in text


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- name: [unclosed\n", "is not valid YAML"),
        ("name: shop\n", "must hold a YAML list of destinations"),
    ],
)
def test_a_file_that_is_not_a_list_of_destinations_is_named(
    tmp_path: Path, content: str, problem: str
) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    _write(shops / "shop.yaml", content)
    text = _load_error(_config(tmp_path, destinations_dir="shops"))
    assert str(shops / "shop.yaml") in text and problem in text


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    text = _load_error(_config(tmp_path, destinations_dir="nowhere"))
    assert f"destinations_dir {tmp_path / 'nowhere'}: no such directory" in text


def test_environment_references_in_a_file_are_interpolated(tmp_path: Path) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    _write(shops / "a.yaml", "- {name: a, pixel_id: '1', access_token: '${A_TOKEN}'}\n")
    settings = load_settings(_config(tmp_path, destinations_dir="shops"), env={"A_TOKEN": "x"})
    assert settings.destinations[0].access_token.get_secret_value() == "x"
    text = _load_error(_config(tmp_path, destinations_dir="shops"))
    assert str(shops / "a.yaml") in text and "A_TOKEN is not set" in text


def test_a_token_file_named_in_a_destinations_file_is_read(tmp_path: Path) -> None:
    shops = tmp_path / "shops"
    shops.mkdir()
    token = _write(tmp_path / "a.token", SECRET + "\n")
    _write(shops / "a.yaml", [{"name": "a", "pixel_id": "1", "access_token_file": str(token)}])
    settings = load_settings(_config(tmp_path, destinations_dir="shops"), env={})
    assert settings.destinations[0].access_token.get_secret_value() == SECRET
    token.unlink()
    text = _load_error(_config(tmp_path, destinations_dir="shops"))
    assert f"access_token_file {token}: cannot read the file" in text
    assert str(shops / "a.yaml") in text
