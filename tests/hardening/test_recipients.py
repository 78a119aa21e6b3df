"""The recipient allow-list cannot be bypassed: whatever the record says, no address outside
CSM_ALLOWED_RECIPIENT_DOMAINS appears in any header of a draft (one parser for the check and the draft)."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from src.app.nodes.delivery import RecipientRefused, internal_recipient
from src.app.schemas import AccountRecord, EmailMessage
from src.app.tools.mail.address import AddressError, parse_address
from src.app.tools.mail.outbox import render_mime

ALLOWED = ["example.com", "bücher.de"]
ALLOWED_ASCII = {"example.com", "xn--bcher-kva.de"}

HOSTILE = [
    "evil@attacker.com:rep@example.com",
    "rep@example.com:evil@attacker.com",
    "evil@attacker.com@example.com",
    "evil@attacker.com,rep@example.com",
    '"rep@example.com" <evil@attacker.com>',
    "rep@example.com <evil@attacker.com>",
    "Rep: evil@attacker.com;@example.com",
    "rep:evil@attacker.com;x@example.com",
    "=?utf-8?q?evil=40attacker.com?=@example.com",
    "=?utf-8?b?ZXZpbEBhdHRhY2tlci5jb20=?= <rep@example.com>",
    '"evil@attacker.com"@example.com',
    "evil@attacker.com\r\nBcc: rep@example.com",
    "evil@attacker.com (rep@example.com)",
    "rep@example.com(evil@attacker.com)",
    "rep@exampl\u212a.com",  # Kelvin sign: case-folds and NFKC-normalises to "K"
    "rep@\uff45xample.com",  # full-width e
    "\u017frep@example.com",  # long s, case-folds to "s"
    "rep@example.com\u200b",
    "rep@example.com.attacker.com",
    "rep@attacker.com#@example.com",
    "<evil@attacker.com>rep@example.com",
    "rep@[127.0.0.1]",
    "evil@attacker.com\x00@example.com",
]

fragments = st.sampled_from(
    ["rep", "evil", "@", ":", ";", ",", "<", ">", '"', " ", "(", ")", "=?utf-8?q?", "?=", "\\", ".", "\r\n",
     "example.com", "attacker.com", "xn--bcher-kva.de", "bücher.de", "\u212a", "\uff45", "\u017f", "\u0130", "Bcc:"]
)  # fmt: skip
hostile_text = st.one_of(
    st.lists(fragments, min_size=1, max_size=10).map("".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(HOSTILE),
)


def account(address: str) -> AccountRecord:
    return AccountRecord.model_validate({"account_id": "acct-1", "name": "Beacon", "rep_email": address})


def header_domains(raw: bytes) -> set[str]:
    """Every domain named in any address header of the draft, read back by the standard library's parsers."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    domains = set()
    for name in ("To", "Cc", "Bcc", "From", "Reply-To", "Sender"):
        for value in parsed.get_all(name) or []:
            for _, address in getaddresses([str(value)]):
                domains.add(address.rpartition("@")[2].lower())
            for found in getattr(value, "addresses", ()):
                domains.add(found.domain.lower())
    return domains - {""}


def draft_headers_for(address: str) -> set[str] | None:
    """The domains a draft to this record's rep would name, or None when the draft is refused."""
    try:
        to, _ = internal_recipient(account(address), "rep", allowed_domains=ALLOWED)
        message = EmailMessage(to=to, subject="Hello", body_html="<p>Hi</p>")
        raw = render_mime(message, draft_id="d1", idempotency_key="k", at=datetime(2026, 1, 1, tzinfo=UTC))
    except (RecipientRefused, ValueError):
        return None
    return header_domains(raw)


@pytest.mark.parametrize("address", HOSTILE)
def test_each_known_bypass_is_refused(address: str) -> None:
    assert draft_headers_for(address) is None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text)
@example("rep@example.com")
@example("rep@bücher.de")
def test_no_draft_header_names_a_domain_outside_the_allow_list(address: str) -> None:
    domains = draft_headers_for(address)
    if domains is not None:
        assert domains and domains <= ALLOWED_ASCII, (address, domains)


@settings(max_examples=200, deadline=None)
@given(hostile_text)
def test_the_parser_is_idempotent_and_its_output_reads_back_as_itself(address: str) -> None:
    try:
        canonical = parse_address(address)
    except AddressError:
        return
    assert parse_address(canonical) == canonical
    assert getaddresses([canonical]) == [("", canonical)]


def test_plain_and_unicode_domain_addresses_are_accepted_in_canonical_form() -> None:
    assert draft_headers_for("Rep.One@Example.COM") == {"example.com"}
    assert draft_headers_for("rep@bücher.de") == {"xn--bcher-kva.de"}
    assert internal_recipient(account("rep@bücher.de"), "rep", allowed_domains=ALLOWED)[0] == "rep@xn--bcher-kva.de"


def test_the_draft_builder_refuses_what_the_parser_refuses() -> None:
    message = EmailMessage.model_construct(to="evil@attacker.com:rep@example.com", subject="s", body_html="b", cc=[])
    with pytest.raises(AddressError):
        render_mime(message, draft_id="d1", idempotency_key="k", at=datetime(2026, 1, 1, tzinfo=UTC))
