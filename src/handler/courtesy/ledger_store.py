"""Where the ledger's items live: DynamoDB, or memory (the preview and the unit tests).

Both stores take the same few requests: read an item or many, list a queue oldest first,
and write one item *only if* a condition holds. A condition is data (``Check``s), not
expression text: DynamoStore turns it into a ConditionExpression, MemoryStore tests it
in Python, from the same definition, so the two cannot disagree. Items are plain Python
values (``str``, ``Decimal``), marshalled by boto3's TypeSerializer and TypeDeserializer.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from courtesy.errors import LedgerUnavailable

KEY = "follower_id"
QUEUE_INDEX = "queue-index"  # sparse: only items with a "queue" (hash) and "queued_at" (range)
BATCH_GET_LIMIT = 100  # DynamoDB BatchGetItem takes at most 100 keys
_BATCH_RETRIES = 8

Item = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """One test of an item's attribute: "=", "<>" (absent counts as different), "<", "<=", "absent"."""

    attribute: str
    op: str
    value: Any = None

    def holds(self, item: Item | None) -> bool:
        present = item is not None and self.attribute in item
        if self.op == "absent":
            return not present
        if self.op == "<>":
            return not present or item[self.attribute] != self.value  # type: ignore[index]
        if not present:
            return False
        current = item[self.attribute]  # type: ignore[index]
        if self.op == "=":
            return bool(current == self.value)
        if type(current) is not type(self.value):
            return False  # DynamoDB compares only values of one type
        return bool(current < self.value) if self.op == "<" else bool(current <= self.value)


# A write's condition: it holds if any alternative holds; an alternative holds if all its checks do.
# () means no condition.
Condition = Sequence[Sequence[Check]]


def holds(condition: Condition, item: Item | None) -> bool:
    return not condition or any(all(check.holds(item) for check in alternative) for alternative in condition)


def number(value: float | int) -> Decimal:
    """A number as DynamoDB takes it (boto3's serializer refuses floats)."""
    return Decimal(str(value))


class Store(Protocol):
    reads: int
    writes: int

    def get(self, key: str) -> Item | None: ...
    def get_many(self, keys: Sequence[str], attributes: Sequence[str]) -> dict[str, Item]: ...
    def queue(self, name: str, limit: int | None = None) -> list[Item]: ...
    def count_queue(self, name: str) -> int: ...
    def put(self, item: Item, *, when: Condition = ()) -> bool: ...
    def update(self, key: str, *, set_: Mapping[str, Any], remove: Iterable[str] = (), when: Condition = ()) -> bool: ...
    def increment(self, key: str, attribute: str, *, when: Condition = ()) -> int | None: ...
    def delete(self, key: str, *, when: Condition = ()) -> bool: ...


_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def to_dynamodb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items()}


def from_dynamodb(item: Mapping[str, Any]) -> Item:
    return {k: _deserialize(v) for k, v in item.items()}


class _Expression:
    """Placeholders for one request's names and values (#n0, :v0, ...)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        for placeholder, known in self.names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _serialize(value)
        return placeholder

    def check(self, check: Check) -> str:
        name = self.name(check.attribute)
        if check.op == "absent":
            return f"attribute_not_exists({name})"
        if check.op == "<>":
            return f"(attribute_not_exists({name}) OR {name} <> {self.value(check.value)})"
        return f"{name} {check.op} {self.value(check.value)}"

    def condition(self, condition: Condition) -> str:
        return " OR ".join("(" + " AND ".join(self.check(c) for c in alternative) + ")" for alternative in condition)

    def arguments(self, **expressions: str) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in expressions.items() if v}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


def _refused(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoStore:
    """The ledger table, through a low-level boto3 DynamoDB client. Counts its requests."""

    def __init__(self, client: Any, table: str, *, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.table = table
        self._sleep = sleep
        self.reads = 0
        self.writes = 0

    def get(self, key: str) -> Item | None:
        self.reads += 1
        item = self.client.get_item(TableName=self.table, Key=to_dynamodb({KEY: key}), ConsistentRead=True).get("Item")
        return from_dynamodb(item) if item is not None else None

    def get_many(self, keys: Sequence[str], attributes: Sequence[str]) -> dict[str, Item]:
        """One BatchGetItem per 100 keys, retrying what DynamoDB leaves unprocessed."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Item] = {}
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            names = _Expression()
            projection = ", ".join(names.name(a) for a in (KEY, *attributes))
            request = {
                self.table: {
                    "Keys": [to_dynamodb({KEY: k}) for k in keys[start : start + BATCH_GET_LIMIT]],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names.names,
                    "ConsistentRead": True,
                }
            }
            for attempt in range(_BATCH_RETRIES):
                self.reads += 1
                answer = self.client.batch_get_item(RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.table, []):
                    item = from_dynamodb(raw)
                    found[item[KEY]] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise LedgerUnavailable("DynamoDB left keys unprocessed after retries")
        return found

    def _query(self, name: str, **extra: Any) -> Iterable[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": QUEUE_INDEX,
            "KeyConditionExpression": "#q = :q",
            "ExpressionAttributeNames": {"#q": "queue"},
            "ExpressionAttributeValues": {":q": _serialize(str(name))},
            **extra,
        }
        while True:
            self.reads += 1
            answer = self.client.query(**kwargs)
            yield answer
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def queue(self, name: str, limit: int | None = None) -> list[Item]:
        items: list[Item] = []
        extra = {} if limit is None else {"Limit": limit}
        for answer in self._query(name, **extra):
            items += [from_dynamodb(raw) for raw in answer.get("Items", [])]
            if limit is not None and len(items) >= limit:
                return items[:limit]
        return items

    def count_queue(self, name: str) -> int:
        return sum(answer.get("Count", 0) for answer in self._query(name, Select="COUNT"))

    def _write(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """The request's answer, or None if its condition refused it."""
        self.writes += 1
        try:
            return dict(getattr(self.client, operation)(TableName=self.table, **kwargs) or {})
        except ClientError as exc:
            if _refused(exc):
                return None
            raise

    def put(self, item: Item, *, when: Condition = ()) -> bool:
        expression = _Expression()
        arguments = expression.arguments(ConditionExpression=expression.condition(when))
        return self._write("put_item", Item=to_dynamodb(item), **arguments) is not None

    def update(self, key: str, *, set_: Mapping[str, Any], remove: Iterable[str] = (), when: Condition = ()) -> bool:
        expression = _Expression()
        sets = ", ".join(f"{expression.name(k)} = {expression.value(v)}" for k, v in set_.items())
        removes = ", ".join(expression.name(k) for k in remove)
        update = " ".join(part for part in (sets and f"SET {sets}", removes and f"REMOVE {removes}") if part)
        condition = expression.condition(when)
        arguments = expression.arguments(UpdateExpression=update, ConditionExpression=condition)
        return self._write("update_item", Key=to_dynamodb({KEY: key}), **arguments) is not None

    def increment(self, key: str, attribute: str, *, when: Condition = ()) -> int | None:
        """Adds one to a number in place (DynamoDB's ADD, one request): the new value, or None if refused."""
        expression = _Expression()
        add = f"ADD {expression.name(attribute)} {expression.value(number(1))}"
        arguments = expression.arguments(UpdateExpression=add, ConditionExpression=expression.condition(when))
        answer = self._write("update_item", Key=to_dynamodb({KEY: key}), ReturnValues="UPDATED_NEW", **arguments)
        return None if answer is None else int(from_dynamodb(answer["Attributes"])[attribute])

    def delete(self, key: str, *, when: Condition = ()) -> bool:
        expression = _Expression()
        condition = expression.condition(when)
        return self._write("delete_item", Key=to_dynamodb({KEY: key}), **expression.arguments(ConditionExpression=condition)) is not None


class MemoryStore:
    """The same requests over a dict. With ``under`` (another store), a read-through overlay:
    reads see ``under`` with this store's writes laid over it, and writes stay here (the
    preview: the real cycle runs, and the table is never written)."""

    def __init__(self, under: Store | None = None):
        self.under = under
        self.items: dict[str, Item | None] = {}  # None: deleted here
        self.before: dict[str, Item | None] = {}  # what ``under`` held before the first write here
        self.reads = 0
        self.writes = 0

    def _current(self, key: str) -> Item | None:
        if key in self.items:
            return copy.deepcopy(self.items[key])
        return self.under.get(key) if self.under is not None else None

    def _store(self, key: str, item: Item | None, before: Item | None) -> None:
        self.before.setdefault(key, copy.deepcopy(before))
        self.items[key] = copy.deepcopy(item)

    def get(self, key: str) -> Item | None:
        self.reads += 1
        return self._current(key)

    def get_many(self, keys: Sequence[str], attributes: Sequence[str]) -> dict[str, Item]:
        keys = list(dict.fromkeys(keys))
        self.reads += (len(keys) + BATCH_GET_LIMIT - 1) // BATCH_GET_LIMIT
        found = self.under.get_many([k for k in keys if k not in self.items], attributes) if self.under is not None else {}
        for key in keys:
            item = self.items.get(key)
            if item is not None:
                found[key] = {a: item[a] for a in (KEY, *attributes) if a in item}
        return found

    def queue(self, name: str, limit: int | None = None) -> list[Item]:
        self.reads += 1
        below = self.under.queue(name) if self.under is not None else []
        items = {item[KEY]: item for item in below if item[KEY] not in self.items}
        for key, item in self.items.items():
            if item is not None and item.get("queue") == name and "queued_at" in item:
                items[key] = copy.deepcopy(item)
        ordered = sorted(items.values(), key=lambda i: str(i["queued_at"]))
        return ordered if limit is None else ordered[:limit]

    def count_queue(self, name: str) -> int:
        return len(self.queue(name))

    def put(self, item: Item, *, when: Condition = ()) -> bool:
        self.writes += 1
        current = self._current(item[KEY])
        if not holds(when, current):
            return False
        self._store(item[KEY], item, current)
        return True

    def update(self, key: str, *, set_: Mapping[str, Any], remove: Iterable[str] = (), when: Condition = ()) -> bool:
        self.writes += 1
        current = self._current(key)
        if not holds(when, current):
            return False
        new = {**(current or {KEY: key}), **copy.deepcopy(dict(set_))}
        for attribute in remove:
            new.pop(attribute, None)
        self._store(key, new, current)
        return True

    def increment(self, key: str, attribute: str, *, when: Condition = ()) -> int | None:
        self.writes += 1
        current = self._current(key)
        if not holds(when, current):
            return None
        value = int((current or {}).get(attribute, 0)) + 1
        self._store(key, {**(current or {KEY: key}), attribute: number(value)}, current)
        return value

    def delete(self, key: str, *, when: Condition = ()) -> bool:
        self.writes += 1
        current = self._current(key)
        if not holds(when, current):
            return False
        self._store(key, None, current)
        return True

    def changes(self) -> list[tuple[Item | None, Item | None]]:
        """(before, after) of every item written here, in first-write order."""
        return [(self.before[key], item) for key, item in self.items.items() if self.before[key] != item]
