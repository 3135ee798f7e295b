"""worker/mapping/_sha256_openssl.c, the compiled mapping's SHA-256 (OpenSSL's, as a hex str):
the same digests as hashlib's on any input.

`make install` builds it (CAPI_WORKER_COMPILE=required: a failed build fails there), so under
`make test` a missing extension fails these tests; elsewhere (a checkout built without OpenSSL's
headers, or not compiled) they are skipped.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

EXTENSION = "worker.mapping._sha256_openssl"


@pytest.fixture(scope="module")
def extension() -> ModuleType:
    try:
        return importlib.import_module(EXTENSION)
    except ImportError as error:
        if os.environ.get("CAPI_WORKER_EXPECTED_BUILD"):  # `make test`: it must have been built
            pytest.fail(f"{EXTENSION} is not built ({error}): `make install` builds it")
        pytest.skip(f"{EXTENSION} is not built in this checkout: `make install` builds it")


@settings(max_examples=1000)
@given(data=st.binary(max_size=1100))
def test_digests_are_hashlibs_on_arbitrary_bytes(extension: ModuleType, data: bytes) -> None:
    assert extension.sha256_hex(data) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "size",
    # SHA-256 pads to 64-byte blocks with 9 bytes of its own: the lengths where one more block
    # is needed, and values much longer than any identifier.
    [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 4096, 1_000_003],
)
def test_digests_are_hashlibs_around_block_boundaries(extension: ModuleType, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert len(data) == size
    assert extension.sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_the_digest_is_a_plain_lowercase_ascii_str(extension: ModuleType) -> None:
    digest = extension.sha256_hex("Jane.Doe@example.com".lower().encode())
    assert type(digest) is str
    assert digest == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert digest.isascii() and digest == digest.lower() and len(digest) == 64
    # Compared and hashed as any other str: a dict key equal to the same text built in Python.
    assert {digest: 1}[hashlib.sha256(b"jane.doe@example.com").hexdigest()] == 1


def test_other_byte_buffers_hash_like_bytes_and_text_is_refused(extension: ModuleType) -> None:
    data = "straße@example.com".encode()
    expected = hashlib.sha256(data).hexdigest()
    assert extension.sha256_hex(bytearray(data)) == expected
    assert extension.sha256_hex(memoryview(data)) == expected
    with pytest.raises(TypeError):
        extension.sha256_hex("jane@example.com")  # as hashlib: encode text first
    with pytest.raises(TypeError):
        extension.sha256_hex(64)


@settings(max_examples=1000)
@given(text=st.text(max_size=300))
def test_text_digests_are_hashlibs_of_its_utf8(extension: ModuleType, text: str) -> None:
    assert extension.sha256_hex_utf8(text) == hashlib.sha256(text.encode()).hexdigest()


def test_text_is_hashed_as_utf8_and_text_without_utf8_is_refused(extension: ModuleType) -> None:
    for text in ("", "jane@example.com", "straße@example.com", "名前", "🙂" * 40, "a" * 4096):
        assert extension.sha256_hex_utf8(text) == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate, as str.encode() refuses it
        extension.sha256_hex_utf8("a\ud800@example.com")
    with pytest.raises(TypeError):
        extension.sha256_hex_utf8(b"jane@example.com")
