"""DynamoDB condition and update expressions, evaluated in memory.

Used by the preview's read-through ledger (courtesy_cli.overlay), so that writes the
welcome cycle would make are checked and applied exactly as DynamoDB would, without
reaching the table. Covers the grammar Courtesy's ledger uses and a little more:
comparisons, BETWEEN, IN, AND/OR/NOT, attribute_exists, attribute_not_exists,
attribute_type, begins_with, contains, size; SET (with +, -, if_not_exists,
list_append), REMOVE, ADD and DELETE on top-level attributes. Anything else raises
UnsupportedExpression: the preview then stops instead of guessing.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

Item = dict[str, dict[str, Any]]  # attribute name -> typed AttributeValue, as the low-level client uses

_TOKEN = re.compile(r"\s*(?:(<>|<=|>=|=|<|>|\(|\)|,|\+|-)|(:[A-Za-z0-9_]+)|(#?[A-Za-z_][A-Za-z0-9_]*)|(\S))")
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}


class UnsupportedExpression(Exception):
    """An expression this evaluator does not understand."""


def _tokens(text: str) -> list[str]:
    out = []
    for match in _TOKEN.finditer(text):
        symbol, value, name, other = match.groups()
        if other is not None:
            raise UnsupportedExpression(f"unsupported character {other!r} in expression {text!r}")
        out.append(symbol or value or name)
    return out


class _Parser:
    def __init__(self, text: str, names: dict[str, str] | None, values: dict[str, Any] | None):
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.names = names or {}
        self.values = values or {}

    # --- token helpers ---
    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.upper() == word:
            self.pos += 1
            return True
        return False

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise UnsupportedExpression(f"expected {expected or 'more'} in expression {self.text!r}")
        self.pos += 1
        return token

    def done(self) -> bool:
        return self.pos >= len(self.tokens)

    # --- operands ---
    def path(self) -> str:
        token = self.take()
        if token.startswith("#"):
            if token not in self.names:
                raise UnsupportedExpression(f"{token} is not in ExpressionAttributeNames")
            return self.names[token]
        if token.startswith(":") or token.upper() in _KEYWORDS or not re.match(r"[A-Za-z_]", token):
            raise UnsupportedExpression(f"expected an attribute name, got {token!r} in {self.text!r}")
        if self.peek() in (".", "["):
            raise UnsupportedExpression("nested attribute paths are not supported")
        return token

    def value_ref(self) -> Any:
        token = self.take()
        if token not in self.values:
            raise UnsupportedExpression(f"{token} is not in ExpressionAttributeValues")
        return self.values[token]


# --- typed values ----------------------------------------------------------------


def _comparable(value: Any) -> tuple[str, Any] | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, raw),) = value.items()
    if kind == "N":
        return kind, Decimal(raw)
    if kind in ("S", "B", "BOOL", "NULL"):
        return kind, raw
    if kind in ("SS", "BS"):
        return kind, frozenset(raw)
    if kind == "NS":
        return kind, frozenset(Decimal(n) for n in raw)
    return kind, repr(raw)


def _compare(left: Any, op: str, right: Any) -> bool:
    a, b = _comparable(left), _comparable(right)
    if op == "<>":
        return a != b
    if a is None or b is None or a[0] != b[0]:
        return False
    if op == "=":
        return a == b
    if a[0] not in ("S", "N", "B"):
        return False
    return {"<": a[1] < b[1], "<=": a[1] <= b[1], ">": a[1] > b[1], ">=": a[1] >= b[1]}[op]


def _number(value: Any) -> Decimal:
    if not isinstance(value, dict) or "N" not in value:
        raise UnsupportedExpression("arithmetic on a value that is not a number")
    return Decimal(value["N"])


def _n(value: Decimal) -> dict[str, str]:
    return {"N": str(value.normalize()) if value != value.to_integral() else str(int(value))}


# --- conditions ----------------------------------------------------------------------


class _Condition(_Parser):
    def __init__(self, text, names, values, item: Item):
        super().__init__(text, names, values)
        self.item = item

    def parse(self) -> bool:
        result = self.or_()
        if not self.done():
            raise UnsupportedExpression(f"unexpected {self.peek()!r} in condition {self.text!r}")
        return result

    def or_(self) -> bool:
        result = self.and_()
        while self.keyword("OR"):
            right = self.and_()
            result = result or right
        return result

    def and_(self) -> bool:
        result = self.not_()
        while self.keyword("AND"):
            right = self.not_()
            result = result and right
        return result

    def not_(self) -> bool:
        if self.keyword("NOT"):
            return not self.not_()
        return self.primary()

    def primary(self) -> bool:
        token = self.peek()
        if token == "(":  # noqa: S105 - a parenthesis, not a password
            self.take("(")
            result = self.or_()
            self.take(")")
            return result
        if token is not None and self.peek(1) == "(" and token.lower() != "size":
            return self.function()
        left = self.operand()
        op = self.peek()
        if op in ("=", "<>", "<", "<=", ">", ">="):
            self.take()
            return _compare(left, op, self.operand())
        if self.keyword("BETWEEN"):
            low = self.operand()
            if not self.keyword("AND"):
                raise UnsupportedExpression(f"BETWEEN without AND in {self.text!r}")
            high = self.operand()
            return _compare(left, ">=", low) and _compare(left, "<=", high)
        if self.keyword("IN"):
            self.take("(")
            options = [self.operand()]
            while self.peek() == ",":
                self.take(",")
                options.append(self.operand())
            self.take(")")
            return any(_compare(left, "=", option) for option in options)
        raise UnsupportedExpression(f"expected a comparison in {self.text!r}")

    def operand(self) -> Any:
        token = self.peek()
        if token is not None and token.startswith(":"):
            return self.value_ref()
        if token is not None and token.lower() == "size":
            self.take()
            self.take("(")
            value = self.item.get(self.path())
            self.take(")")
            if value is None:
                return None
            ((kind, raw),) = value.items()
            return {"N": str(len(raw.encode() if kind == "S" else raw))}
        return self.item.get(self.path())

    def function(self) -> bool:
        name = self.take().lower()
        self.take("(")
        attribute = self.path()
        value = self.item.get(attribute)
        argument = None
        if self.peek() == ",":
            self.take(",")
            argument = self.operand()
        self.take(")")
        if name == "attribute_exists":
            return value is not None
        if name == "attribute_not_exists":
            return value is None
        if name == "attribute_type":
            return value is not None and isinstance(argument, dict) and next(iter(value)) == argument.get("S")
        if name == "begins_with":
            return value is not None and argument is not None and "S" in value and value["S"].startswith(argument.get("S", "\0"))
        if name == "contains":
            if value is None or argument is None:
                return False
            ((kind, raw),) = value.items()
            if kind == "S":
                return "S" in argument and argument["S"] in raw
            if kind in ("SS", "NS", "BS"):
                return next(iter(argument.values())) in raw
            if kind == "L":
                return argument in raw
            return False
        raise UnsupportedExpression(f"unsupported function {name}() in {self.text!r}")


def condition_holds(expression: str | None, item: Item | None, names=None, values=None) -> bool:
    """Whether a ConditionExpression (or FilterExpression, KeyConditionExpression) holds for an item."""
    if not expression:
        return True
    return _Condition(expression, names, values, item or {}).parse()


# --- updates ---------------------------------------------------------------------------


class _Update(_Parser):
    def __init__(self, text, names, values, item: Item):
        super().__init__(text, names, values)
        self.old = item
        self.new = copy.deepcopy(item)

    def apply(self) -> Item:
        while not self.done():
            clause = self.take().upper()
            if clause not in ("SET", "REMOVE", "ADD", "DELETE"):
                raise UnsupportedExpression(f"unexpected {clause!r} in update {self.text!r}")
            while True:
                getattr(self, f"_{clause.lower()}")()
                if self.peek() != ",":
                    break
                self.take(",")
        return self.new

    def _set(self) -> None:
        target = self.path()
        self.take("=")
        value = self.set_operand()
        if self.peek() in ("+", "-"):
            op = self.take()
            right = self.set_operand()
            left_n, right_n = _number(value), _number(right)
            value = _n(left_n + right_n if op == "+" else left_n - right_n)
        self.new[target] = copy.deepcopy(value)

    def set_operand(self) -> Any:
        token = self.peek()
        if token is not None and token.startswith(":"):
            return self.value_ref()
        if token is not None and self.peek(1) == "(":
            name = self.take().lower()
            self.take("(")
            if name == "if_not_exists":
                attribute = self.path()
                self.take(",")
                fallback = self.set_operand()
                self.take(")")
                existing = self.old.get(attribute)
                return existing if existing is not None else fallback
            if name == "list_append":
                first = self.set_operand()
                self.take(",")
                second = self.set_operand()
                self.take(")")
                return {"L": list((first or {}).get("L", [])) + list((second or {}).get("L", []))}
            raise UnsupportedExpression(f"unsupported function {name}() in update {self.text!r}")
        attribute = self.path()
        value = self.old.get(attribute)
        if value is None:
            raise UnsupportedExpression(f"the update reads {attribute!r}, which the item does not have")
        return value

    def _remove(self) -> None:
        self.new.pop(self.path(), None)

    def _add(self) -> None:
        target = self.path()
        value = self.value_ref()
        current = self.new.get(target)
        if "N" in value:
            self.new[target] = _n((_number(current) if current else Decimal(0)) + _number(value))
            return
        ((kind, raw),) = value.items()
        existing = list(current.get(kind, [])) if current else []
        self.new[target] = {kind: existing + [v for v in raw if v not in existing]}

    def _delete(self) -> None:
        target = self.path()
        value = self.value_ref()
        current = self.new.get(target)
        if current is None:
            return
        ((kind, raw),) = value.items()
        remaining = [v for v in current.get(kind, []) if v not in raw]
        if remaining:
            self.new[target] = {kind: remaining}
        else:
            self.new.pop(target)


def apply_update(expression: str, item: Item, names=None, values=None) -> Item:
    """The item after an UpdateExpression; the item given is left as it was."""
    return _Update(expression, names, values, item).apply()
