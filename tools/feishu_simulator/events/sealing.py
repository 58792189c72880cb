"""How Feishu seals a request-URL delivery when the app has an Encrypt Key: the body encrypted,
the request signed (docs/feishu-api.md, "Events"). The simulator's half of the protocol; the
receiver's half is ``feishu_followers.events``. The crypto is the ``cryptography`` package's (the
``[events]`` extra), loaded only when a key is set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from typing import Any

TIMESTAMP_HEADER = "X-Lark-Request-Timestamp"
NONCE_HEADER = "X-Lark-Request-Nonce"
SIGNATURE_HEADER = "X-Lark-Signature"


def encrypt(plaintext: bytes, encrypt_key: str) -> str:
    """base64 of a random 16-byte IV and the AES-256-CBC ciphertext (PKCS7), key SHA-256(encrypt key)."""
    # Imported here: only an app with an Encrypt Key needs the [events] extra's cryptography.
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """Hex SHA-256 of timestamp + nonce + encrypt key (UTF-8), then the raw body."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def seal(payload: dict[str, Any], encrypt_key: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers Feishu POSTs for ``payload``: plain JSON, or encrypted and signed."""
    plain = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if not encrypt_key:
        return plain, {"Content-Type": "application/json; charset=utf-8"}
    body = json.dumps({"encrypt": encrypt(plain, encrypt_key)}).encode()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(timestamp, nonce, encrypt_key, body),
    }
