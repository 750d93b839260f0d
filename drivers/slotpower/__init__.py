"""Per-slot DUT power switch drivers."""
