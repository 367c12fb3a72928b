"""A faster moto DynamoDB Query on a global secondary index, for the deep-backlog simulations
(bench.backlog): the same items, in the same order, with the same pages.

moto answers such a Query by sorting every item of the table, then checking each, then
deep-copying every match before the response turns them into JSON. With a backlog of
thousands queued in the ledger's queue-index, each count of the queue then costs about a
second of CPU here, and the simulated days would take an hour. This version looks at the
table's items once, sorts only the matches (by the strings themselves when the keys are
strings, which is how moto compares them), measures each item's size once instead of twice
(string attributes directly, as moto counts them), and hands the matches to the response
without a deep copy: the response serializes them at once, and nothing writes meanwhile
(runs never overlap).

Anything else (a table with a range key, a local index, a projection other than ALL, legacy
filters, several range conditions) goes to moto's own Query unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

_moto_query = Table.query


def _query(
    self: Table,
    hash_key: Any,
    range_comparison: str | None,
    range_objs: list,
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    consistent_read: bool = False,
    filter_expression: Any = None,
    hash_key_conditions: list | None = None,
    range_key_conditions: list | None = None,
    **filter_kwargs: Any,
):
    index = next((i for i in self.global_indexes or [] if i.name == index_name), None) if index_name else None
    hash_keys = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"] if index else []
    range_keys = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] if index else []
    if (
        index is None
        or consistent_read
        or filter_kwargs
        or self.range_key_attr
        or len(hash_keys) != 1
        or len(range_keys) != 1
        or (index.projection or {}).get("ProjectionType") != "ALL"
        or len(range_key_conditions or []) > 1
    ):
        return _moto_query(
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name=index_name,
            consistent_read=consistent_read,
            filter_expression=filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )
    range_key = range_keys[0]
    conditions = dict(hash_key_conditions or [])
    matches = [
        item
        for item in self.items.values()  # a table without a range key: one Item per hash key
        if all((value := item.attrs.get(name)) and value == expected for name, expected in conditions.items()) and item.attrs.get(range_key)
    ]
    hash_attrs, range_attrs = [*hash_keys, self.hash_key_attr], [range_key, self.range_key_attr]
    sort_by = [*hash_keys, range_key, self.hash_key_attr]
    if all(item.attrs[name].type == "S" for item in matches for name in sort_by):
        matches.sort(key=lambda item: tuple(item.attrs[name].value for name in sort_by))
    else:
        matches = self.sorted_items(hash_attrs, range_attrs, matches)
    if scan_index_forward is False:
        matches.reverse()

    results: list = []
    result_size = scanned_count = 0
    last_evaluated_key = None
    previous_page = exclusive_start_key is not None
    for item in matches:
        if previous_page:
            if self._item_comes_before_dct(item, exclusive_start_key, hash_attrs, range_attrs, scan_index_forward):
                continue
            previous_page = False
        size = _size(item)
        if len(results) == limit or result_size + size > RESULT_SIZE_LIMIT:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
            break
        if not range_comparison or item.attrs[range_key].compare(range_comparison, range_objs):
            results.append(item)
            result_size += size
            scanned_count += 1
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expressions:
        results = [item.project(projection_expressions) for item in results]
    return results, scanned_count, last_evaluated_key


def _size(item: Any) -> int:
    """moto's Item.size(): its attributes' names and values in UTF-8 bytes (other types as moto counts them)."""
    return sum(
        len(name.encode("utf-8")) + (len(value.value.encode("utf-8")) if value.type == "S" else value.size())
        for name, value in item.attrs.items()
    )


@contextlib.contextmanager
def faster_queries() -> Iterator[None]:
    """Use the faster Query in this process (moto's server threads included) until the block ends."""
    Table.query = _query  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query = _moto_query  # type: ignore[method-assign]
