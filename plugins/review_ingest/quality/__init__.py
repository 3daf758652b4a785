"""The row checks as Great Expectations suites, their validation and their Data Docs.

``gx_compat`` holds every patch of Great Expectations' and pandas' internals, gated on the
versions they were proven on.
"""
