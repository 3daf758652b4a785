"""Great Expectations' expectation configurations and metric ids, each computed once per block.

Upstream (Great Expectations 1.24.1): ``Expectation.configuration`` is a property that
serialises the expectation anew on each read (pydantic's ``dict()``, then a new
``ExpectationConfiguration``), and ``IDDict.to_id`` names a metric's kwargs by an MD5 of their
JSON dump (``convert_to_json_serializable``) on each call.

Why: building a validation's metric graph reads each expectation's configuration, and computes
the id of the same few kwargs, over and over; that is most of a small batch's validation.
Inside ``memoized()`` each expectation's configuration is built once and handed out again (a
validation neither changes an expectation nor the configurations it reads: it ``deepcopy``s
those it changes), and each id is computed once per distinct content, for dicts of plain values
only, whose JSON their content alone decides. The memos belong to the thread that entered the
block and end with it.

It can go when Great Expectations builds an expectation's configuration and a metric's ids once
per validation itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from review_ingest.quality.gx_compat import gate

_local = threading.local()
_patch = gate.Patch()


def install() -> bool:
    """Route ``Expectation.configuration`` and ``IDDict.to_id`` through the memos, on the proven
    versions only (imports GX); whether they are."""
    if _patch.installed or not gate.proven():
        return _patch.installed
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation

    upstream = Expectation.configuration
    configuration = property(_configuration(upstream.fget), doc=upstream.__doc__)
    _patch.replace(Expectation, "configuration", configuration)
    _patch.replace(IDDict, "to_id", _to_id(IDDict.to_id))
    return True


def uninstall() -> bool:
    """Put Great Expectations' own methods back; whether they had been replaced."""
    return _patch.restore()


def _configuration(built: Any) -> Any:
    """``Expectation.configuration``'s getter, memoised inside ``memoized()``."""

    def configuration(expectation: Any) -> Any:
        memo: dict[int, tuple[Any, Any]] | None = getattr(_local, "memo", None)
        if memo is None:
            return built(expectation)
        hit = memo.get(id(expectation))
        if hit is None:
            # The expectation is kept beside its configuration: its id cannot be reused
            # by another object while the memo lives.
            hit = memo[id(expectation)] = (expectation, built(expectation))
        return hit[1]

    return configuration


def _to_id(computed: Any) -> Any:
    """``IDDict.to_id``, memoised inside ``memoized()`` for plain kwargs and default keys."""

    def to_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        ids: dict[Any, Any] | None = getattr(_local, "ids", None)
        if ids is None or id_keys is not None or id_ignore_keys is not None:
            return computed(self, id_keys, id_ignore_keys)
        try:
            key = plain_key(self)
        except NotPlain:
            return computed(self)
        if key not in ids:
            ids[key] = computed(self)
        return ids[key]

    return to_id


class NotPlain(Exception):
    """A value whose JSON its content alone may not decide."""


_SCALARS = frozenset({str, int, bool, type(None)})


def plain_key(value: Any) -> Any:
    """A hashable key equal for two values exactly when their content (types included) is;
    raises ``NotPlain`` for anything but plain values. Floats by ``repr``: 0.0 == -0.0, and
    their JSON differs."""
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)
    if kind is float:
        return (kind, repr(value))
    if isinstance(value, dict):
        if any(type(k) is not str for k in value):
            raise NotPlain(kind)
        return (kind, tuple(sorted((k, plain_key(v)) for k, v in value.items())))
    if kind is list or kind is tuple:
        return (kind, tuple(plain_key(v) for v in value))
    raise NotPlain(kind)


@contextmanager
def memoized() -> Iterator[None]:
    """Within the block, on this thread, each expectation's configuration is built once and each
    plain metric kwargs' id computed once; a nested block keeps the outer memos, and without the
    patch installed the block does nothing."""
    if not _patch.installed or getattr(_local, "memo", None) is not None:
        yield
        return
    _local.memo, _local.ids = {}, {}
    try:
        yield
    finally:
        _local.memo = _local.ids = None
