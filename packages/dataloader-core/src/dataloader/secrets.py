"""Masking of secrets in anything dataloader prints: recipes, errors and logs.

What is secret: the fields a plugin's config model types `SecretStr` (or `SecretBytes`), keys
named like a secret (`password`, `token`, `api_key`, …), the password of every URL, and values
read with the `secret('NAME')` template function. Everything else is shown as it is.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from pydantic import BaseModel

MASK = "***"

_SECRET_WORDS = re.compile(r"(password|passwd|pwd|secret|token|credential|passphrase)", re.I)
_SECRET_SUFFIX = re.compile(r"(^|_)key(_text)?$", re.I)  # `private_key_text` too
# In free text a password runs to the `@`: `#`, `/` and `?` may stand in it unencoded, as
# SQLAlchemy's URL parser allows; whitespace and quotes end a URL quoted in a message.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)[^@\s\"'<>]+@")
_URL_START = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://")
_PASSWORD_PARAMETER = re.compile(
    r"(?:^|[?&;\s])(?:password|passwd|pwd|sslpassword)\s*=\s*"
    r"(?:'(?P<quoted>(?:[^'\\]|\\.)+)'|(?P<plain>[^&;\s'\"]+))",
    re.I,
)
_NOT_SECRET = frozenset(
    {
        "merge_key",
        "primary_key",
        "partition_key",
        "sort_key",
        "cursor_key",
        "known_host_key",  # the server's public key, pinned
        "token_url",  # where an OAuth2 token is fetched: a URL (its password is masked)
    }
)

_lock = threading.Lock()
_known_values: set[str] = set()


def is_secret_key(name: str) -> bool:
    """True when a config key's name says its value is a secret (password, token, api_key…)."""
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    return bool(_SECRET_WORDS.search(lowered) or _SECRET_SUFFIX.search(lowered))


def register_secret(value: object) -> None:
    """Remember a value so that every later `mask_text` call hides it, also in the escaped
    forms a message quotes it in: `repr` (`{path!r}` doubles a backslash) and JSON."""
    if isinstance(value, str) and len(value) >= 3:
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        with _lock:
            _known_values.update(forms)


def url_passwords(text: str) -> Iterator[str]:
    """Every password a connection string in `text` carries, as written: that of a
    `scheme://user:password@host…` URL, and a `password=…` parameter (a URL's query, or a
    libpq `key=value` string, quoted or not).

    A URL is parsed as SQLAlchemy parses one: the user name runs to the first `:`, the
    password from there to the next `@`, so `#`, `/` and `?` may stand in it unencoded
    (`urllib.parse.urlsplit` would cut it at those and see another host).
    """
    for match in _PASSWORD_PARAMETER.finditer(text):
        yield match.group("quoted") or match.group("plain")
    for start in _URL_START.finditer(text):
        rest = text[start.end() :]
        user, colon, after = rest.partition(":")
        if not colon or any(c in "/@" or c.isspace() for c in user):
            continue  # no user:password (`user@host:port/…`, `s3://bucket/key:…`)
        password, at, _ = after.partition("@")
        if at and password and not any(c.isspace() for c in password) and "://" not in password:
            yield password


def register_url_password(text: str) -> None:
    """Remember the password of every URL in `text`, in each form a message may quote it:
    as written, percent-decoded (what the driver uses) and percent-encoded again."""
    for password in url_passwords(text):
        decoded = unquote(password)
        for form in {password, decoded, quote(decoded, safe=""), quote(decoded, safe=" +")}:
            register_secret(form)


def register_secrets_in(tree: Any, *, _secret: bool = False) -> None:
    """Remember every secret of a recipe-like tree before anything can print it: the values of
    keys named like a secret (`password`, `api_key`, `token`, …) and every URL's password."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            register_secrets_in(value, _secret=is_secret_key(str(key)))
    elif isinstance(tree, list):
        for item in tree:
            register_secrets_in(item, _secret=_secret)
    elif isinstance(tree, str):
        if _secret:
            register_secret(tree)
        register_url_password(tree)
    elif _secret and isinstance(tree, (int, float)) and not isinstance(tree, bool):
        register_secret(str(tree))


def mask_text(text: str) -> str:
    """Replace every known secret value, and the password of any `scheme://user:password@`
    URL, inside `text` with the mask."""
    with _lock:
        values = sorted(_known_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)


def mask_value(key: str | None, value: Any) -> Any:
    """Mask `value` when `key` names a secret; otherwise mask known secrets inside it."""
    if key is not None and is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, (Mapping, list)):  # e.g. a whole section quoted by a validation error
        return mask_tree(value)
    return value


def mask_tree(
    tree: Any,
    *,
    masked_paths: frozenset[str] = frozenset(),
    _path: str = "",
    _secret: bool = False,
) -> Any:
    """A copy of a nested dict/list with secret keys, `masked_paths` and known secrets masked.

    Items of a list under a secret key (`tokens: [...]`) are masked too; a dict under a secret
    key is descended, its own keys deciding. Everything under a path of `masked_paths` (a
    dot path, list items as `[i]`) is masked, whatever its keys.
    """
    whole = _path in masked_paths
    if isinstance(tree, Mapping):
        masked: dict[Any, Any] = {}
        for key, value in tree.items():
            path = f"{_path}.{key}" if _path else str(key)
            masked[key] = mask_tree(
                value,
                masked_paths=masked_paths | {path} if whole else masked_paths,
                _path=path,
                _secret=is_secret_key(str(key)),
            )
        return masked
    if isinstance(tree, list):
        return [
            mask_tree(
                item, masked_paths=masked_paths, _path=f"{_path}[{i}]", _secret=_secret or whole
            )
            for i, item in enumerate(tree)
        ]
    if (_secret or whole) and tree not in (None, ""):
        return MASK
    if isinstance(tree, str):
        return mask_text(tree)
    return tree


def _is_secret_type(annotation: Any) -> bool:
    """`SecretStr`, `SecretBytes`, or a union/list/dict of them (`SecretStr | None`)."""
    from pydantic import SecretBytes, SecretStr

    if annotation in (SecretStr, SecretBytes):
        return True
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _is_secret_type(args[0])
    if origin is Union or type(annotation).__name__ == "UnionType":
        return any(_is_secret_type(arg) for arg in args if arg is not type(None))
    if origin in (list, tuple, set, frozenset):
        return bool(args) and _is_secret_type(args[0])
    if origin is dict:
        return len(args) == 2 and _is_secret_type(args[1])
    return False


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: one, or each member of a union of models (`auth: A | B`,
    where the secret keys of whichever member a recipe chose are masked)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) is Annotated:
        return _nested_models(get_args(annotation)[0])
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        return [model for arg in get_args(annotation) for model in _nested_models(arg)]
    return []


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """The dot paths of the keys `model` declares secret: fields typed `SecretStr` or
    `SecretBytes` (optional, or as the items of a list or dict), in nested models too."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        if _is_secret_type(info.annotation):
            paths.add(key)
        else:
            for nested in _nested_models(info.annotation):
                if nested is not model:
                    paths |= {f"{key}.{path}" for path in secret_fields(nested)}
    return frozenset(paths)


def values_at(tree: Any, path: str) -> Iterator[Any]:
    """The value at dot `path` in a nested dict (nothing when a part is missing)."""
    node = tree
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return
        node = node[part]
    yield node


def register_secret_values(tree: Any) -> None:
    """Remember every string or number inside `tree` (a secret key's value, which may be a
    list or a dict of them)."""
    if isinstance(tree, Mapping):
        for value in tree.values():
            register_secret_values(value)
    elif isinstance(tree, list):
        for item in tree:
            register_secret_values(item)
    elif isinstance(tree, (str, int, float)) and not isinstance(tree, bool):
        register_secret(str(tree))
        if isinstance(tree, str):
            register_url_password(tree)
