"""Unified profiles: the 360° table, one person's timeline and card, lookup, and the right to erasure."""

from cxlens.profiles.build import PROFILE_COLUMNS, build_profiles
from cxlens.profiles.forget import ERASED_TABLES, erasure_subject, forget
from cxlens.profiles.lookup import find_profile, resolve_identifier
from cxlens.profiles.timeline import profile_card, profile_timeline

__all__ = [
    "ERASED_TABLES",
    "PROFILE_COLUMNS",
    "build_profiles",
    "erasure_subject",
    "find_profile",
    "forget",
    "profile_card",
    "profile_timeline",
    "resolve_identifier",
]
