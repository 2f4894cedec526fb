"""SCIM 2.0 (RFC 7643/7644) connector for servers as they are in the field."""

from connectors.scim.connector import ScimConnector
from connectors.scim.gate import AppPaused, RateGate, parse_retry_after
from connectors.scim.pager import Listing, Pager
from connectors.scim.payloads import escape_filter_value, parse_active

__all__ = [
    "AppPaused",
    "Listing",
    "Pager",
    "RateGate",
    "ScimConnector",
    "escape_filter_value",
    "parse_active",
    "parse_retry_after",
]
