"""Actions that plans name: what a step does on a DUT or the station."""
