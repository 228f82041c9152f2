"""The checks on every exchange, and Cedar policy-as-code evaluated after them."""
