"""The one email-address parser: what the recipient allow-list checks is exactly what a draft's header names.

Strict on purpose (every draft goes to an internal colleague): one plain `local@domain`, nothing a mail parser
could read as something else. Refused: display names, groups and comments (`"x" <a@b>`, `a: b@c;`), more than one
`@`, quoted local parts, encoded words (`=?utf-8?...?=`), whitespace and control characters, non-ASCII local
parts, and text that Unicode NFKC normalisation changes (full-width letters, ligatures, the Kelvin sign and other
characters that fold to ASCII). A Unicode domain is normalised (NFKC) and IDNA-encoded, then lower-cased. The
result is checked once more with the standard library's header parser (`email.headerregistry`): it must read
back as the same single address without defects.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email import policy

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
"""RFC 5322 dot-atom: no quoted strings, no empty or leading/trailing/double dots."""
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
MAX_ADDRESS = 254


class AddressError(ValueError):
    """Text that is not one plain email address under the strict rules above."""


def parse_address(text: str) -> str:
    """The canonical `local@domain` of `text` (domain IDNA-encoded, lower case), or AddressError saying why."""
    if not isinstance(text, str):
        raise AddressError(f"not text: {text!r}")
    value = text.strip()
    if unicodedata.normalize("NFKC", value) != value:
        raise AddressError(f"{text!r} changes under Unicode normalisation (characters that look like others)")
    if "=?" in value:
        raise AddressError(f"{text!r} contains an encoded word")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value):
        raise AddressError(f"{text!r} contains whitespace or control characters")
    if value.count("@") != 1:
        raise AddressError(f"{text!r} must contain exactly one '@'")
    local, domain = value.split("@")
    if not local.isascii() or not _LOCAL.match(local):
        raise AddressError(f"{text!r} has a local part that is not a plain ASCII dot-atom")
    canonical = f"{local}@{canonical_domain(domain)}"
    if len(canonical) > MAX_ADDRESS:
        raise AddressError(f"{text!r} is longer than {MAX_ADDRESS} characters")
    _reads_back(canonical)
    return canonical


def canonical_domain(domain: str) -> str:
    """A domain name NFKC-normalised, IDNA-encoded and lower-cased; AddressError when it is not a host name."""
    name = unicodedata.normalize("NFKC", domain.strip()).rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower() if not name.isascii() else name.lower()
    except UnicodeError as error:
        raise AddressError(f"domain {domain!r} is not a valid internationalised domain name: {error}") from error
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise AddressError(f"domain {domain!r} is not a host name such as example.com")
    return ascii_name


def domain_of(address: str) -> str:
    """The domain of a canonical address (see `parse_address`)."""
    return address.rpartition("@")[2]


def is_allowed(address: str, allowed_domains: Iterable[str]) -> bool:
    """Whether the canonical `address` is on one of `allowed_domains` (each normalised the same way)."""
    allowed = {canonical_domain(domain.lstrip("@")) for domain in allowed_domains}
    return domain_of(address) in allowed


def _reads_back(address: str) -> None:
    """The standard library's header parser must read `address` as itself: one address, no display name."""
    header = policy.strict.header_factory("To", address)
    addresses = list(getattr(header, "addresses", ()))
    if header.defects or len(addresses) != 1:
        raise AddressError(f"{address!r} is not read back as one address: {list(header.defects)}")
    only = addresses[0]
    if only.display_name or only.addr_spec != address:
        raise AddressError(f"{address!r} is read back as {only!s}")
