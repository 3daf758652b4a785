"""Great Expectations' expectation configurations, built once per expectation and validation.

``Expectation.configuration`` (Great Expectations 1.x) is a property that serialises the
expectation anew each time it is read (pydantic's ``dict()``, then a new
``ExpectationConfiguration``), and a validation reads it about 135 times per expectation while
it builds the metric graph: about a third of the fixed cost of a validation (0.28 -> 0.20 s for
ten small ``website_products`` files, ``benchmarks/bench_validation.py``).

Inside ``memoized()`` each expectation object's configuration is built once and handed out
again. It is safe because a validation neither changes an expectation after making it (it makes
them from configurations, ``to_domain_obj``) nor changes the configurations it reads (it
``deepcopy``s those it changes); ``tests/test_gx_memo.py`` holds the results of every row rule
equal with and without it. The memo belongs to the thread that entered it and is dropped when
the block ends, so nothing outlives one validation and other threads read the property as
Great Expectations wrote it.

The same block keeps the ids of metric configurations: each ``MetricConfiguration`` names its
domain and value kwargs by ``IDDict.to_id`` (a JSON dump of them through
``convert_to_json_serializable``, then an MD5), about 5,000 times per validation for a few
hundred distinct dicts: a third of a small file's validation. Inside the block an id is
computed once per distinct content, for dicts of plain values only (str, int, float, bool,
None, and lists, tuples and str-keyed dicts of them), whose JSON their content alone decides;
any other dict's id is computed as before.

Given the validation's frame, the block also keeps the null mask of each of its text columns:
the metrics of each expectation ask for it again (about 150 times per validation), and for a
5 MB file each took about 3 ms (its 40,000 strings lie all over memory), a fifth of the
validation. Each caller gets its own copy of the mask; the frame is not changed while it is
validated (pandas' copy-on-write copies anything derived from it that is written to).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_installed = False


def install() -> None:
    """Route ``Expectation.configuration`` and ``IDDict.to_id`` through the memo (idempotent;
    imports GX)."""
    global _installed
    if _installed:
        return
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation

    built = Expectation.configuration.fget

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

    computed = IDDict.to_id

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

    from pandas.core.arrays.string_ import StringArray

    computed_isna = StringArray.isna

    def isna(array: Any) -> Any:
        masks: dict[int, list[Any]] | None = getattr(_local, "masks", None)
        entry = masks.get(id(array._ndarray)) if masks else None
        if entry is None or entry[0] is not array._ndarray:
            return computed_isna(array)
        if entry[1] is None:
            entry[1] = computed_isna(array)
        return entry[1].copy()

    Expectation.configuration = property(configuration, doc=Expectation.configuration.__doc__)
    IDDict.to_id = to_id
    StringArray.isna = isna
    _installed = True


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
def memoized(frame: Any | None = None) -> Iterator[None]:
    """Within the block, on this thread, each expectation's configuration is built once, each
    plain metric kwargs' id computed once, and each null mask of a text column of ``frame``
    (the frame being validated) computed once."""
    install()
    outer = getattr(_local, "memo", None)
    if outer is None:
        _local.memo, _local.ids, _local.masks = {}, {}, _text_columns(frame)
    try:
        yield
    finally:
        if outer is None:
            _local.memo = _local.ids = _local.masks = None


def _text_columns(frame: Any | None) -> dict[int, list[Any]]:
    """The values of each text column of ``frame`` (pandas' python-backed strings), by id, with
    room for its mask; the values are held, so that no other array takes their id."""
    if frame is None:
        return {}
    from pandas.core.arrays.string_ import StringArray

    columns = (frame[name].array for name in frame.columns)
    return {id(a._ndarray): [a._ndarray, None] for a in columns if type(a) is StringArray}
