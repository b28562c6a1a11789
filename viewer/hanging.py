"""Hanging protocols: how the viewer lays out a study when it opens.

One simple protocol per modality. Cross-sectional studies are read beside
the patient's latest prior with scrolling linked by slice position; a
projection image beside its prior without linking (there are no slices).
"""

from dataclasses import dataclass

from pacs.models import Series, Study


@dataclass(frozen=True)
class HangingProtocol:
    with_prior: bool
    linked: bool


SIDE_BY_SIDE_LINKED = HangingProtocol(with_prior=True, linked=True)
SIDE_BY_SIDE = HangingProtocol(with_prior=True, linked=False)
SINGLE = HangingProtocol(with_prior=False, linked=False)

PROTOCOLS = {
    "CT": SIDE_BY_SIDE_LINKED,
    "MR": SIDE_BY_SIDE_LINKED,
    "PT": SIDE_BY_SIDE_LINKED,
    "NM": SIDE_BY_SIDE_LINKED,
    "CR": SIDE_BY_SIDE,
    "DX": SIDE_BY_SIDE,
    "MG": SIDE_BY_SIDE,
}


@dataclass(frozen=True)
class Hanging:
    """The opening layout and which series each viewport shows."""

    layout: str
    viewports: list[tuple[str, str]]  # (study UID, series UID)
    linked: bool


def protocol_for(series: Series | None) -> HangingProtocol:
    return PROTOCOLS.get(series.modality.upper(), SINGLE) if series else SINGLE


def matching_series(first: Series, candidates: list[Series]) -> Series | None:
    """The prior's series most like ``first``: same description, number, modality."""
    same_modality = [s for s in candidates if s.modality == first.modality]
    for series in same_modality:
        if first.series_description and (
            series.series_description.lower() == first.series_description.lower()
        ):
            return series
    for series in same_modality:
        if (
            first.series_number is not None
            and series.series_number == first.series_number
        ):
            return series
    return (same_modality or candidates or [None])[0]


def hang(
    study: Study,
    series_list: list[Series],
    prior: Study | None,
    prior_series: list[Series],
) -> Hanging:
    """Current study on the left and, where the protocol asks, the prior beside it."""
    if not series_list:
        return Hanging("1x1", [], False)
    first = series_list[0]
    current = (study.study_instance_uid, first.series_instance_uid)
    protocol = protocol_for(first)

    match = (
        matching_series(first, prior_series) if prior and protocol.with_prior else None
    )
    if prior is None or match is None:
        return Hanging("1x1", [current], False)
    beside = (prior.study_instance_uid, match.series_instance_uid)
    return Hanging("1x2", [current, beside], protocol.linked)
