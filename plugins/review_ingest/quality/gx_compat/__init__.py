"""Every patch of Great Expectations' and pandas' internals, in one place, gated on versions."""
