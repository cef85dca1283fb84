"""`$filter` on image metadata: the OData-like parser, and its translation into SQL.

Public names: `MetadataFilter`, `parse_filter`, `filter_sql`.
"""

from __future__ import annotations

import re

from syncd.emulator.store.records import ApiError

# A parsed filter: ("cmp", op, key, value) | ("and" | "or", left, right).
MetadataFilter = tuple

_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([^\s()']+))")


def parse_filter(text: str) -> MetadataFilter:
    """Parse `key eq 'v' and (k2 ne 'w' or k3 eq 'x')`; raise ApiError 400 when malformed.

    Grammar (OData-like, as the spec's example reads): `and` binds tighter than `or`, operators
    are case-insensitive, string values are single-quoted with '' for a quote.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _bad_filter(text)
        pos = match.end()
        if match.group(1):
            tokens.append(("(", "("))
        elif match.group(2):
            tokens.append((")", ")"))
        elif match.group(3) is not None:
            tokens.append(("str", match.group(3).replace("''", "'")))
        else:
            tokens.append(("word", match.group(4)))

    def expr(i: int) -> tuple[MetadataFilter, int]:
        left, i = term(i)
        while i < len(tokens) and _kw(tokens[i], "or"):
            right, i = term(i + 1)
            left = ("or", left, right)
        return left, i

    def term(i: int) -> tuple[MetadataFilter, int]:
        left, i = factor(i)
        while i < len(tokens) and _kw(tokens[i], "and"):
            right, i = factor(i + 1)
            left = ("and", left, right)
        return left, i

    def factor(i: int) -> tuple[MetadataFilter, int]:
        if i < len(tokens) and tokens[i][0] == "(":
            inner, i = expr(i + 1)
            if i >= len(tokens) or tokens[i][0] != ")":
                raise _bad_filter(text)
            return inner, i + 1
        if i + 2 < len(tokens) and tokens[i][0] == "word" and tokens[i + 2][0] == "str":
            op = tokens[i + 1][1].lower()
            if tokens[i + 1][0] == "word" and op in ("eq", "ne"):
                return ("cmp", op, tokens[i][1], tokens[i + 2][1]), i + 3
        raise _bad_filter(text)

    if not tokens:
        raise _bad_filter(text)
    tree, end = expr(0)
    if end != len(tokens):
        raise _bad_filter(text)
    return tree


def _kw(token: tuple[str, str], word: str) -> bool:
    return token[0] == "word" and token[1].lower() == word


def _bad_filter(text: str) -> ApiError:
    return ApiError(
        400,
        "BadRequestInvalid",
        "Invalid $filter: expected key eq 'value' / key ne 'value' joined by and/or.",
    )


def filter_sql(tree: MetadataFilter, params: list[object]) -> str:
    """Return the SQL condition on images `i` for tree, appending its parameters to params."""
    if tree[0] == "cmp":
        _, op, key, value = tree
        params.extend((key, value))
        # `ne` matches images that have the key with another value, as OData compares values.
        cmp = "=" if op == "eq" else "<>"
        return f"i.seq IN (SELECT image_seq FROM image_metadata WHERE key = ? AND value {cmp} ?)"
    left = filter_sql(tree[1], params)
    right = filter_sql(tree[2], params)
    return f"({left} {tree[0].upper()} {right})"
