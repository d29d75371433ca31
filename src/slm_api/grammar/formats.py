"""GBNF for the string body (between the quotes) of the `format`s we enforce.

The grammars accept a well-formed subset (e.g. every month may have 31 days): what slips
through is caught by the post-generation format check.
"""

from __future__ import annotations

from .numbers import _same_len

_HEX = "[0-9a-fA-F]"
_DATE = '[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])'
_TIME = (
    '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? '
    '("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])'
)
_OCTET = "(" + " | ".join(["[0-9]", "[1-9] [0-9]", _same_len("100", "255")]) + ")"
_LABEL = "[a-zA-Z0-9] ([a-zA-Z0-9-]{0,61} [a-zA-Z0-9])?"

FORMATS: dict[str, str] = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f'{_DATE} "T" {_TIME}',
    "uuid": f'{_HEX}{{8}} "-" {_HEX}{{4}} "-" {_HEX}{{4}} "-" {_HEX}{{4}} "-" {_HEX}{{12}}',
    "email": f'[a-zA-Z0-9._%+-]{{1,64}} "@" {_LABEL} ("." {_LABEL}){{1,4}}',
    "ipv4": f'{_OCTET} "." {_OCTET} "." {_OCTET} "." {_OCTET}',
    "hostname": f'{_LABEL} ("." {_LABEL}){{0,8}}',
    "uri": '[a-zA-Z] [a-zA-Z0-9+.-]{0,15} ":" [!#$%&\'()*+,./0-9:;=?@A-Z_a-z~-]{1,200}',
}
