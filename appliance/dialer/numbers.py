"""Prospect numbers: normalised to E.164 with the site's default country, with the lead's time zone.

A prospect file holds numbers as people type them ("06 12 34 56 78", "(212) 555-0123",
"+44 20 7946 0958"). The dialer, the do-not-call list and the per-number attempt limits all key
on one form, E.164 (ITU-T E.164: '+', country code, national number, at most 15 digits), so a
number on the DNC list is found however the file wrote it. Google's libphonenumber metadata
(the `phonenumbers` package) knows each country's numbering plan and which time zones a number
range belongs to; calling windows are enforced in the lead's own zone, not the appliance's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import timezone as pn_timezone

# Characters people put in numbers that carry no digits; anything else (letters) is an error.
_SEPARATORS = re.compile(r"[\s().\-/]")
_PLAUSIBLE = re.compile(r"^\+?[0-9]{3,20}$")
UNKNOWN_ZONE = "Etc/Unknown"  # what libphonenumber returns for a range it cannot place


class NumberError(ValueError):
    """A number that cannot be dialled; the message says why, for the import report."""


@dataclass(frozen=True)
class Normalised:
    """A dialable number: E.164, and the time zone its calling window is judged in."""

    e164: str
    timezone: str
    country: str  # ISO 3166 region code of the number ("FR"), for reports


def check_country(country: str) -> str:
    """The upper-cased ISO 3166 region code if libphonenumber knows it, else NumberError."""
    code = country.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise NumberError(f"{country!r} is not a country code (ISO 3166, like FR, GB, US)")
    return code


def normalise(raw: str, country: str, site_timezone: str) -> Normalised:
    """`raw` as E.164, read in `country`'s numbering plan unless it starts with '+' or 00.

    `site_timezone` is used when the number's range spans several zones (US toll-free) or none:
    the window is then judged where the appliance is, which is what an admin would assume.
    """
    text = _SEPARATORS.sub("", raw.strip())
    if not text:
        raise NumberError("the number is empty")
    if not _PLAUSIBLE.match(text):
        raise NumberError(f"{raw.strip()!r} is not a phone number (digits, spaces, '+', '(', ')', '-')")
    if text.startswith("00"):
        text = "+" + text[2:]  # the international prefix used almost everywhere outside NANP
    try:
        parsed = phonenumbers.parse(text, check_country(country))
    except phonenumbers.NumberParseException as exc:
        raise NumberError(f"{raw.strip()!r}: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        region = phonenumbers.region_code_for_number(parsed) or country.upper()
        raise NumberError(f"{raw.strip()!r} is not a valid number in {region}'s numbering plan")
    zones = [z for z in pn_timezone.time_zones_for_number(parsed) if z != UNKNOWN_ZONE]
    zone = zones[0] if len(zones) == 1 else site_timezone
    region = phonenumbers.region_code_for_number(parsed) or country.upper()
    return Normalised(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), zone, region)


def try_normalise(raw: str, country: str, site_timezone: str) -> str | None:
    """E.164 of `raw`, or None: for matching typed numbers (DNC lookups, opt-outs) against stored ones."""
    try:
        return normalise(raw, country, site_timezone).e164
    except NumberError:
        return None
