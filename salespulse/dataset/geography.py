"""US geography from the offline ``zipcodes`` package: real zip codes, cities, states and coordinates."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import zipcodes

# Four sales regions, as in the common "superstore" exports.
REGION_STATES: dict[str, tuple[str, ...]] = {
    "West": ("AK", "AZ", "CA", "CO", "HI", "ID", "MT", "NM", "NV", "OR", "UT", "WA", "WY"),
    "Central": ("IA", "IL", "IN", "KS", "MI", "MN", "MO", "ND", "NE", "OK", "SD", "TX", "WI"),
    "South": ("AL", "AR", "FL", "GA", "KY", "LA", "MS", "NC", "SC", "TN", "VA"),
    "East": ("CT", "DC", "DE", "MA", "MD", "ME", "NH", "NJ", "NY", "OH", "PA", "RI", "VT", "WV"),
}
REGIONS: tuple[str, ...] = tuple(REGION_STATES)
REGION_OF_STATE: dict[str, str] = {
    state: region for region, states in REGION_STATES.items() for state in states
}

STATE_NAMES: dict[str, str] = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN",
    "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO",
    "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ",
    "New Mexico": "NM", "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH",
    "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI",
    "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT",
    "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI",
    "Wyoming": "WY",
}  # fmt: skip


def state_code(value: str) -> str | None:
    """'California' or 'ca' -> 'CA'; None for anything that is not a US state."""
    cleaned = value.strip().upper()
    if cleaned in REGION_OF_STATE:
        return cleaned
    # Compared upper-cased: str.title() would make "District Of Columbia", which is not a key.
    return next((code for name, code in STATE_NAMES.items() if name.upper() == cleaned), None)


@lru_cache
def zip_table() -> pd.DataFrame:
    """Active, standard (street-address) zip codes in the 50 states and DC, with coordinates and region."""
    rows = [
        (z["zip_code"], z["city"].title(), z["state"], float(z["lat"]), float(z["long"]))
        for z in zipcodes.list_all()
        if z["active"] and z["zip_code_type"] == "STANDARD" and z["state"] in REGION_OF_STATE
    ]
    table = pd.DataFrame(rows, columns=["zip", "city", "state", "latitude", "longitude"])
    table["region"] = table["state"].map(REGION_OF_STATE)
    return table.sort_values("zip", ignore_index=True)
