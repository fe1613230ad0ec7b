"""HTTP routes, one module per area: collection, reading, administration."""
