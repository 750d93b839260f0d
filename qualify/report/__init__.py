"""HTML qualification reports rendered from the results store."""
