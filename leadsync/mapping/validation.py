"""Validation plumbing shared by the sections of the lead definition file.

Pydantic gives a model validator's error the model's own location; `problems` lets one validator
name the exact key below it, and report several mistakes at once. `known_fields` reads the
canonical fields (name -> type) the loader passes as validation context.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic_core import PydanticCustomError

from leadsync.problems import PROBLEMS_ERROR

__all__ = ["PROBLEMS_ERROR", "StrictModel", "known_fields", "problems", "unknown_field_message"]


class StrictModel(BaseModel):
    # Strict: TOML is typed, so "20" where a number belongs is a mistake to report, not coerce;
    # and finite: a rule comparing with nan never fires, a half-life of inf never decays.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def problems(*found: tuple[str, str]) -> PydanticCustomError:
    """An error carrying one or more (key below the current one, message) pairs."""
    return PydanticCustomError(
        PROBLEMS_ERROR, "; ".join(message for _, message in found), {"problems": found}
    )


def known_fields(info: ValidationInfo) -> Mapping[str, str] | None:
    """The canonical fields (name -> type) rules may name; None when the loader gave none."""
    context = info.context
    return context.get("fields") if isinstance(context, Mapping) else None


def unknown_field_message(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {name!r}: the field mapping has no such canonical field{hint}"
