"""Digital multimeter drivers."""
