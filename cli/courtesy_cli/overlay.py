"""A read-through overlay of a DynamoDB client: reads go to the table, writes stay in memory.

The preview gives this to courtesy.ledger.Ledger in place of the real client, so the real
welcome cycle can run a whole dry run (queue the followers it finds, skip the ones its
filters refuse, update the meta item) while the table is never written: a preview can
never disturb a live run. Later reads in the same preview see the in-memory writes, as
they would see their own writes in DynamoDB. Conditional writes are checked against what
the overlay sees (the table, then the in-memory changes), with DynamoDB's own errors.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from courtesy_cli.expressions import Item, UnsupportedExpression, apply_update, condition_holds

# Reads passed straight to the real client (nothing here can write).
_READ_ONLY = ("describe_table", "describe_time_to_live", "list_tables", "get_waiter", "can_paginate")


@dataclass(frozen=True)
class TableSchema:
    key: tuple[str, ...]  # the table's HASH (and RANGE) attribute names
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # index name -> (HASH, RANGE?)


def _sort_value(value: Any) -> tuple:
    if not value:
        return (0, "")
    ((kind, raw),) = value.items()
    return (1, float(raw)) if kind == "N" else (1, str(raw))


class ReadThroughDynamoDB:
    """Stands in for a boto3 DynamoDB client. Only the overlay's ``changes`` ever hold a write."""

    def __init__(self, client: Any, schemas: dict[str, TableSchema] | None = None):
        self._real = client
        self._schemas = dict(schemas or {})
        self._local: dict[tuple[str, str], Item | None] = {}  # (table, key) -> item, or None once deleted
        self._original: dict[tuple[str, str], Item | None] = {}  # what the table held before the first local write
        self.exceptions = client.exceptions
        self.meta = client.meta

    # --- bookkeeping -------------------------------------------------------------

    def _schema(self, table: str) -> TableSchema:
        if table not in self._schemas:
            described = self._real.describe_table(TableName=table)["Table"]
            key = tuple(k["AttributeName"] for k in sorted(described["KeySchema"], key=lambda k: k["KeyType"] != "HASH"))
            indexes = {
                index["IndexName"]: tuple(k["AttributeName"] for k in sorted(index["KeySchema"], key=lambda k: k["KeyType"] != "HASH"))
                for index in described.get("GlobalSecondaryIndexes", []) + described.get("LocalSecondaryIndexes", [])
            }
            self._schemas[table] = TableSchema(key, indexes)
        return self._schemas[table]

    def _key_of(self, table: str, item: Item) -> str:
        try:
            return json.dumps([item[name] for name in self._schema(table).key], sort_keys=True)
        except KeyError as exc:
            raise UnsupportedExpression(f"an item or key without the table's key attribute {exc}") from None

    def _current(self, table: str, key: dict[str, Any]) -> Item | None:
        local_key = (table, self._key_of(table, key))
        if local_key in self._local:
            return copy.deepcopy(self._local[local_key])
        return self._real.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def _store(self, table: str, key: dict[str, Any], item: Item | None, *, before: Item | None) -> None:
        local_key = (table, self._key_of(table, key))
        self._original.setdefault(local_key, copy.deepcopy(before))
        self._local[local_key] = copy.deepcopy(item)

    def _check(self, operation: str, kwargs: dict[str, Any], current: Item | None) -> None:
        if not condition_holds(
            kwargs.get("ConditionExpression"),
            current,
            kwargs.get("ExpressionAttributeNames"),
            kwargs.get("ExpressionAttributeValues"),
        ):
            raise self._real.exceptions.ConditionalCheckFailedException(
                {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}}, operation
            )

    def changes(self, table: str) -> list[tuple[Item | None, Item | None]]:
        """(before, after) for every item of the table written in memory, in first-write order."""
        return [
            (self._original[local_key], item)
            for local_key, item in self._local.items()
            if local_key[0] == table and self._original[local_key] != item
        ]

    # --- reads -------------------------------------------------------------------------

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        local_key = (kwargs["TableName"], self._key_of(kwargs["TableName"], kwargs["Key"]))
        if local_key in self._local:
            item = self._local[local_key]
            return {"Item": copy.deepcopy(item)} if item is not None else {}
        return self._real.get_item(**kwargs)

    def batch_get_item(self, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # noqa: N803 - boto3's name
        responses: dict[str, list[Item]] = {}
        remote: dict[str, Any] = {}
        for table, request in RequestItems.items():
            responses[table] = []
            keys = []
            for key in request["Keys"]:
                local_key = (table, self._key_of(table, key))
                if local_key in self._local:
                    if self._local[local_key] is not None:
                        responses[table].append(copy.deepcopy(self._local[local_key]))  # type: ignore[arg-type]
                else:
                    keys.append(key)
            if keys:
                remote[table] = {**request, "Keys": keys}
        answer: dict[str, Any] = {"Responses": responses, "UnprocessedKeys": {}}
        if remote:
            real = self._real.batch_get_item(RequestItems=remote, **kwargs)
            for table, items in real.get("Responses", {}).items():
                responses.setdefault(table, []).extend(items)
            answer["UnprocessedKeys"] = real.get("UnprocessedKeys", {})
        return answer

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._read_many("query", kwargs)

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        return self._read_many("scan", kwargs)

    def _read_many(self, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The whole answer in one page: the table's items with the in-memory writes laid over them."""
        table = kwargs["TableName"]
        schema = self._schema(table)
        names, values = kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
        request = {k: v for k, v in kwargs.items() if k not in ("Limit", "ExclusiveStartKey", "Select", "ProjectionExpression")}
        if names:
            # Names used only by the projection (dropped: whole items are needed) would make DynamoDB refuse.
            used = set(re.findall(r"#[A-Za-z0-9_]+", " ".join(kwargs.get(e) or "" for e in ("KeyConditionExpression", "FilterExpression"))))
            request.pop("ExpressionAttributeNames")
            if used:
                request["ExpressionAttributeNames"] = {k: v for k, v in names.items() if k in used}
        found: dict[str, Item] = {}
        call = getattr(self._real, operation)
        while True:
            page = call(**request)
            for item in page.get("Items", []):
                found[self._key_of(table, item)] = item
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        index = kwargs.get("IndexName")
        key_attributes = schema.indexes.get(index, ()) if index else schema.key
        for (local_table, key), item in self._local.items():
            if local_table != table:
                continue
            found.pop(key, None)
            if item is None or any(name not in item for name in key_attributes):
                continue  # deleted, or not in this (sparse) index
            if condition_holds(kwargs.get("KeyConditionExpression"), item, names, values) and condition_holds(
                kwargs.get("FilterExpression"), item, names, values
            ):
                found[key] = copy.deepcopy(item)
        items = list(found.values())
        if operation == "query":
            range_key = key_attributes[1] if len(key_attributes) > 1 else None
            if range_key:
                items.sort(key=lambda i: _sort_value(i.get(range_key)), reverse=not kwargs.get("ScanIndexForward", True))
        start = kwargs.get("ExclusiveStartKey")
        if start:
            start_key = self._key_of(table, start)
            keys = [self._key_of(table, i) for i in items]
            items = items[keys.index(start_key) + 1 :] if start_key in keys else []
        answer: dict[str, Any] = {}
        limit = kwargs.get("Limit")
        if limit is not None and len(items) > limit:
            items = items[:limit]
            last = items[-1]
            answer["LastEvaluatedKey"] = {name: last[name] for name in (*schema.key, *key_attributes) if name in last}
        answer["Count"] = answer["ScannedCount"] = len(items)
        if kwargs.get("Select") != "COUNT":
            answer["Items"] = items
        return answer

    # --- writes (in memory only) ------------------------------------------------------

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        table, item = kwargs["TableName"], kwargs["Item"]
        key = {name: item[name] for name in self._schema(table).key}
        current = self._current(table, key)
        self._check("PutItem", kwargs, current)
        self._store(table, key, item, before=current)
        return {"Attributes": current} if kwargs.get("ReturnValues") == "ALL_OLD" and current else {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        table, key = kwargs["TableName"], kwargs["Key"]
        current = self._current(table, key)
        self._check("UpdateItem", kwargs, current)
        base = current if current is not None else copy.deepcopy(key)
        new = apply_update(
            kwargs["UpdateExpression"], base, kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
        )
        self._store(table, key, new, before=current)
        returns = kwargs.get("ReturnValues", "NONE")
        if returns == "ALL_NEW":
            return {"Attributes": copy.deepcopy(new)}
        if returns == "ALL_OLD" and current:
            return {"Attributes": current}
        return {}

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        table, key = kwargs["TableName"], kwargs["Key"]
        current = self._current(table, key)
        self._check("DeleteItem", kwargs, current)
        self._store(table, key, None, before=current)
        return {"Attributes": current} if kwargs.get("ReturnValues") == "ALL_OLD" and current else {}

    def batch_write_item(self, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # noqa: N803 - boto3's name
        for table, requests in RequestItems.items():
            for request in requests:
                if "PutRequest" in request:
                    self.put_item(TableName=table, Item=request["PutRequest"]["Item"])
                else:
                    self.delete_item(TableName=table, Key=request["DeleteRequest"]["Key"])
        return {"UnprocessedItems": {}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        reasons, failed = [], False
        for entry in TransactItems:
            ((kind, request),) = entry.items()
            table = request["TableName"]
            key = request.get("Key") or {name: request["Item"][name] for name in self._schema(table).key}
            holds = condition_holds(
                request.get("ConditionExpression"),
                self._current(table, key),
                request.get("ExpressionAttributeNames"),
                request.get("ExpressionAttributeValues"),
            )
            failed |= not holds
            reasons.append({"Code": "None"} if holds else {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"})
        if failed:
            raise self._real.exceptions.TransactionCanceledException(
                {"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}, "CancellationReasons": reasons},
                "TransactWriteItems",
            )
        for entry in TransactItems:
            ((kind, request),) = entry.items()
            request = {k: v for k, v in request.items() if k != "ConditionExpression"}
            if kind == "Put":
                self.put_item(**request)
            elif kind == "Update":
                self.update_item(**request)
            elif kind == "Delete":
                self.delete_item(**request)
        return {}

    def __getattr__(self, name: str) -> Any:
        if name in _READ_ONLY:
            return getattr(self._real, name)
        raise UnsupportedExpression(f"the preview's read-through ledger does not support DynamoDB {name}; nothing was written")
