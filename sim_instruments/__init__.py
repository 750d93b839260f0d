"""The simulated lab: a world model, device models, and servers that speak real protocols."""
