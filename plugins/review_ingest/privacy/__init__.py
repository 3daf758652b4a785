"""Personal data (contract section 11): addresses, retention, erasure, opt-out."""
