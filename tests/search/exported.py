"""One encoder export per test session, shared by tests/search and tests/training (about 15 s on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

# product titles and queries as the search sees them: short, empty-ish, non-ASCII, and one over 64 tokens
PRODUCT_TEXTS = [
    "cordless drill",
    "DEWALT 20V MAX Cordless Drill/Driver Kit",
    "Glacier Bay Round Closed Front Toilet Seat in White",
    "toilet seat",
    "Behr Premium Plus 1-gal. Jet Black Satin Enamel Interior Paint",
    "Bosch 18V Bohrschrauber – 2 Akkus",
    "Façade éclairage extérieur LED 3000K",
    "1/2 in. x 10 ft. PEX pipe",
    "ryobi",
    "Prime-Line 2 in. Sliding Glass Door Roller Assembly with Steel Ball Bearings, Tandem Steel Wheels and Housing, "
    "Replacement Kit for Patio Doors, Fits Most Brands, Includes Mounting Screws and Instructions, Pack of 2, "
    "Model 112-233-4455 (Compatible with Andersen, Pella, Milgard and Anlin Doors)",
]
DEGENERATE_TEXTS = ["", " ", "x"]


def exported_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's encoder directory; the first caller exports it, later callers find it."""
    from streamrec.training.text_encoder import ensure_encoder

    return ensure_encoder(tmp_path_factory.getbasetemp() / "encoder")
