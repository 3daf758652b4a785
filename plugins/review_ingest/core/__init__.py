"""The pipeline's core: the contract's rules on plain values, no Great Expectations, no database.

Reading a file, the value and row-order rules, the merchants file and templates, when each
request is due, and the report of a file.
"""
