"""SQL a user runs on a store (``store.query``, ``%lash sql``, reports) only reads.

Theory of operation (docs/adr/0013-user-sql-is-checked-by-duckdbs-parser-and-runs-in-a-read-only-transaction.md)
- :func:`check` decides with DuckDB's own parser (``extract_statements``, ``tokenize``,
  ``json_serialize_sql``), never with regexes over the text. Every statement must be a read:
  ``SELECT`` (with ``WITH``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM t``, ``VALUES``),
  ``EXPLAIN [ANALYZE]`` of a ``SELECT``, ``PRAGMA`` of a pragma that only reports
  (``table_info``, ``show_tables``, ``database_size``, ...), or ``CALL`` of a table function
  that reads (``CALL pragma_table_info('turns')``): DuckDB runs ``CALL f(...)`` as
  ``SELECT * FROM f(...)``, so that ``SELECT`` is what is checked, by the rules below (ADR
  144). Anything else is refused with
  one line naming the statement as written (its first keywords: ``INSTALL``, not DuckDB's
  type ``LOAD``); nothing runs when one statement of several is refused.
- Files stay closed unless the caller passes ``allow_files=True``: a table function must be
  one that reads no file (``range``, ``unnest``, ``json_each``, ``duckdb_*``, ``pragma_*``),
  and (DuckDB) a ``FROM`` name must be a table, a view or a CTE (no replacement scan of
  ``'data.csv'``). Functions that run other SQL or change the database (``query``,
  ``json_execute_serialized_sql``, ``checkpoint``, ``enable_logging`` ...) are refused always.
- The check is the first guard, not the only one: each store runs the statements in a
  transaction that cannot write (DuckDB ``BEGIN TRANSACTION READ ONLY``, PostgreSQL
  ``BEGIN READ ONLY``) and always rolls it back.
- The same check serves the PostgreSQL store (its dialect is the one DuckDB's parser was
  derived from). A PostgreSQL statement DuckDB cannot parse must open as a read and call no
  refused function, by DuckDB's tokenizer (ADR 157); the rest is left to the read-only
  transaction, one statement per call.
"""

from __future__ import annotations

import difflib
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import QueryNotAllowed

_READ_PRAGMAS = frozenset({
    "table_info", "show_tables", "show_tables_expanded", "show_databases", "database_list",
    "database_size", "storage_info", "version", "platform", "functions", "metadata_info",
    "show", "collations", "user_agent",
})
_SAFE_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree", "repeat", "repeat_row",
    "summary", "pg_timezone_names", "icu_calendar_names", "test_all_types",
    # PostgreSQL's JSON and text set-returning functions (reports use them): pure reads
    "jsonb_array_elements", "jsonb_array_elements_text", "json_array_elements",
    "json_array_elements_text", "jsonb_each", "jsonb_each_text", "json_each_text",
    "jsonb_object_keys", "json_object_keys", "string_to_table", "regexp_split_to_table",
})
_FILE_TABLE_FUNCTIONS = frozenset({"glob", "sniff_csv", "read_duckdb"})
_NEVER = frozenset({
    "query", "query_table", "json_execute_serialized_sql", "checkpoint", "force_checkpoint",
    "enable_logging", "disable_logging", "enable_profiling", "disable_profiling",
    "truncate_duckdb_logs", "python_map_function",
})
# PostgreSQL server functions: files on the server (superusers), and ones that act on other
# sessions or outlive the rolled-back transaction (a session advisory lock)
_PG_FILES = frozenset({
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
    "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "lo_import", "lo_export",
    "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir", "pg_ls_replslotdir",
    # adminpack: they change files outside any transaction
    "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls",
})
_PG_NEVER = frozenset({
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_switch_wal", "pg_promote", "pg_advisory_lock", "pg_advisory_lock_shared",
    "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "dblink", "dblink_exec",
    # run SQL given as text, which no check here sees
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "ts_stat",
})
# how a PostgreSQL statement DuckDB cannot parse may begin: one that reads (the read-only
# transaction refuses a write in it); anything else (COPY ... TO PROGRAM) is refused
_PG_READ_OPENINGS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "("})
# what to do instead, by the statement the user wrote (see :func:`_named`)
_EXTENSIONS = "extensions are installed and loaded by a duckdb connection of your own"
_TRANSACTION = "every query already runs in its own read-only transaction"
_NOT_YOURS = "the store's tables are not yours to change"
_ROWS = "stored rows change only through sessions and turns"
_OTHER_DB = "open other databases with a duckdb connection of your own"
_SETTINGS = "settings of the store's connection are the store's"
_UPKEEP = "the store checkpoints and maintains its own file"
_WHAT_TO_DO = {
    "DELETE": "delete sessions with session APIs (store.delete_session)",
    "TRUNCATE": "delete sessions with session APIs (store.delete_session)",
    "UPDATE": _ROWS, "INSERT": _ROWS, "MERGE": _ROWS,
    "DROP": _NOT_YOURS, "ALTER": _NOT_YOURS, "COMMENT": _NOT_YOURS,
    "CREATE": "query into a DataFrame and keep it in Python, or use a duckdb connection of your own",
    "BEGIN": _TRANSACTION, "START TRANSACTION": _TRANSACTION, "COMMIT": _TRANSACTION,
    "END": _TRANSACTION, "ROLLBACK": _TRANSACTION, "ABORT": _TRANSACTION,
    "COPY": "query into a DataFrame and write it with pandas (df.to_csv)",
    "EXPORT": "query into a DataFrame and write it with pandas (df.to_parquet)",
    "ATTACH": _OTHER_DB, "DETACH": _OTHER_DB, "IMPORT": _OTHER_DB, "USE": _OTHER_DB,
    "INSTALL": _EXTENSIONS, "FORCE INSTALL": _EXTENSIONS, "LOAD": _EXTENSIONS,
    "UPDATE EXTENSIONS": _EXTENSIONS,
    "SET": _SETTINGS, "RESET": _SETTINGS,
    "CHECKPOINT": _UPKEEP, "FORCE CHECKPOINT": _UPKEEP, "VACUUM": _UPKEEP, "ANALYZE": _UPKEEP,
    "CALL": "CALL runs a table function that reads, e.g. CALL pragma_table_info('turns')",
    "PREPARE": "write the query with its values ({var} puts in a notebook variable)",
    "EXECUTE": "write the query with its values ({var} puts in a notebook variable)",
    "DEALLOCATE": "write the query with its values ({var} puts in a notebook variable)",
    "PIVOT": "PIVOT runs several statements; pivot the DataFrame with pandas (df.pivot_table)",
}
# by DuckDB's statement type, for a statement named by it (a WITH ... DELETE)
_BY_TYPE = {"TRANSACTION": _TRANSACTION, "MERGE_INTO": _ROWS, "MULTI": _WHAT_TO_DO["PIVOT"]}
# what to do instead of a CALL of a function that is never allowed, by its name
_CALL_INSTEAD = {
    "checkpoint": _UPKEEP, "force_checkpoint": _UPKEEP,
    "query": "write the query itself", "query_table": "write the query itself",
    "json_execute_serialized_sql": "write the query itself",
}
# statements whose first word alone would name another (UPDATE) or none (FORCE)
_TWO_WORDS = frozenset({("FORCE", "INSTALL"), ("FORCE", "CHECKPOINT"), ("START", "TRANSACTION"),
                        ("UPDATE", "EXTENSIONS")})


@dataclass(frozen=True)
class Checked:
    """The statements of a query that passed :func:`check` (each statement's own text, or
    ``None`` when the dialect check was left to the database)."""

    statements: tuple[str, ...] | None


def check(
    sql: str, *, allow_files: bool = False, con: Any = None,
    relations: Callable[[], set[str]] | None = None, dialect: str = "duckdb",
) -> Checked:
    """Refuse (with :class:`QueryNotAllowed`) a query that is not made only of reads.
    ``con``: a DuckDB connection to parse with (the DuckDB store's own; else a private one).
    ``relations`` gives the table and view names a ``FROM`` may name (DuckDB: no file
    replacement scans); ``dialect="postgres"`` lets text DuckDB cannot parse through."""
    if con is None:
        with _PARSER_LOCK:
            return check(sql, allow_files=allow_files, con=_parser(), relations=relations,
                         dialect=dialect)
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error:
        if dialect == "postgres":
            _check_unparsed(sql, allow_files)
            return Checked(None)
        raise  # a syntax error is the user's to fix; the store shows it as such
    if not statements:
        raise QueryNotAllowed("no SQL statement to run; write a SELECT over the store's tables")
    texts = []
    for st in statements:
        text = st.query
        try:
            kind = st.type.name
        except ValueError:  # a type the duckdb package cannot name (UPDATE EXTENSIONS)
            _refuse("", text)
        select = text if kind == "SELECT" else None  # the SELECT whose tree is checked
        if kind == "EXPLAIN":
            _check_explain(con, text)
        elif kind == "PRAGMA" and _named(text, kind).startswith("PRAGMA "):
            _check_pragma(text)
        elif kind == "CALL" and dialect == "duckdb" and _named(text, kind) == "CALL":
            kind, select = "SELECT", _called(con, text)
        elif kind != "SELECT":
            _refuse(kind, text)
        if kind != "PRAGMA":
            tree = _tree(con, select if select is not None else _explained(text))
            if tree is not None:
                _check_tree(tree, allow_files, None if allow_files else relations)
            elif dialect == "duckdb" and not allow_files:
                # DuckDB gave no parse tree for this SELECT: the file rule
                # cannot be checked, so it is not assumed
                raise QueryNotAllowed(
                    "store queries do not read files, and this query's sources cannot be "
                    "checked; pass allow_files=True (%lash sql "
                    "--allow-files) to run it")
        texts.append(text)
    return Checked(tuple(texts))


def statement_count(sql: str) -> int | None:
    """How many statements DuckDB's parser finds in ``sql`` (a ``;`` in a string or a
    comment, or a trailing one, adds none); None when it cannot parse it (a syntax error, or
    PostgreSQL text: the store reports those)."""
    import duckdb

    with _PARSER_LOCK:
        try:
            return len(_parser().extract_statements(sql))
        except duckdb.Error:
            return None


def _refuse(kind: str, text: str) -> None:
    named = _named(text, kind)
    hint = (_WHAT_TO_DO.get(named) or _BY_TYPE.get(kind) or _WHAT_TO_DO.get(kind)
            or "only SELECT, EXPLAIN, DESCRIBE, SHOW and PRAGMA table_info run")
    raise QueryNotAllowed(f"store queries only read; {named} is not allowed ({hint})")


def _named(text: str, kind: str) -> str:
    """The statement as the user wrote it (``INSTALL``, ``FORCE CHECKPOINT``, ``USE``), by
    its first keywords: DuckDB's type is coarser (INSTALL is ``LOAD``, CHECKPOINT ``CALL``,
    USE ``SET``). A statement that opens as a query (``WITH ... DELETE``) is named by type."""
    import duckdb

    tokens = [(pos, token) for pos, token in duckdb.tokenize(text)
              if token != duckdb.token_type.comment][:2]
    words = [_word(text, pos) for pos, _ in tokens]
    first = words[0].upper() if tokens and tokens[0][1] == duckdb.token_type.keyword else ""
    if first in ("", "WITH", "SELECT", "FROM", "VALUES"):
        return {"": "this statement", "MULTI": "PIVOT", "MERGE_INTO": "MERGE"}.get(kind, kind)
    if len(words) == 2 and words[1]:
        if first == "PRAGMA":
            return f"PRAGMA {words[1]}"
        if (first, words[1].upper()) in _TWO_WORDS:
            return f"{first} {words[1].upper()}"
    return first


def _check_unparsed(text: str, allow_files: bool) -> None:
    """PostgreSQL text DuckDB's parser cannot read, checked by DuckDB's tokenizer: it must
    open as a read, and call no function the parsed rules refuse (a call is a name followed
    by ``(``; a quoted or schema-qualified name counts)."""
    import duckdb

    tokens = [pos for pos, kind in duckdb.tokenize(text) if kind != duckdb.token_type.comment]
    words = [_name_at(text, pos) or text[pos] for pos in tokens]
    if words and words[0].upper() not in _PG_READ_OPENINGS:
        _refuse("", text)
    for name, after in itertools.pairwise(words):
        if after != "(":
            continue
        _check_function(name.lower(), allow_files)


def _check_function(name: str, allow_files: bool) -> None:
    """Refuse a call of ``name`` (lower case) that no store query may make."""
    if name in _NEVER or name in _PG_NEVER:
        raise QueryNotAllowed(f"store queries only read; {name}() is not allowed in them")
    if name in _PG_FILES and not allow_files:
        raise QueryNotAllowed(
            f"store queries do not read files; {name}() is off (pass allow_files=True "
            "to store.query to read server files)")


def _name_at(text: str, pos: int) -> str:
    """The word or the double-quoted name that starts at ``pos`` (without its quotes)."""
    if text.startswith('"', pos):
        end = text.find('"', pos + 1)
        return text[pos + 1:end] if end > pos else ""
    return _word(text, pos)


def _word(text: str, pos: int) -> str:
    end = pos
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[pos:end]


def _called(con: Any, text: str) -> str:
    """The ``SELECT * FROM f(...)`` that DuckDB runs for ``CALL f(...)``; a function that is
    never allowed is refused here, named as the user wrote the statement (``CALL checkpoint``)."""
    import duckdb

    tokens = [pos for pos, kind in duckdb.tokenize(text) if kind != duckdb.token_type.comment]
    name = _word(text, tokens[1]).lower() if len(tokens) > 1 else ""
    if name in _NEVER or name in _PG_NEVER:
        hint = _CALL_INSTEAD.get(name, _SETTINGS)
        raise QueryNotAllowed(f"store queries only read; CALL {name} is not allowed ({hint})")
    select = "SELECT * FROM " + text[tokens[1]:] if len(tokens) > 1 else ""
    try:
        got = con.extract_statements(select)
    except duckdb.Error:
        got = []
    if len(got) != 1 or got[0].type.name != "SELECT":
        _refuse("CALL", text)
    return select


def _check_explain(con: Any, text: str) -> None:
    inner = _explained(text)
    try:
        got = con.extract_statements(inner)
    except Exception:
        got = []
    if len(got) != 1 or got[0].type.name != "SELECT":
        raise QueryNotAllowed(
            "store queries only read; EXPLAIN is allowed for a SELECT only (write EXPLAIN SELECT ...)"
        )


def _explained(text: str) -> str:
    """The statement an ``EXPLAIN [ANALYZE] [(options)]`` names, by DuckDB's tokenizer."""
    import duckdb

    tokens = [(pos, kind) for pos, kind in duckdb.tokenize(text)
              if kind != duckdb.token_type.comment]
    i = 1  # tokens[0] is EXPLAIN
    if i < len(tokens) and text[tokens[i][0]:tokens[i][0] + 7].upper() == "ANALYZE":
        i += 1
    if i < len(tokens) and text[tokens[i][0]] == "(":
        depth = 0
        while i < len(tokens):
            ch = text[tokens[i][0]]
            depth += ch == "("
            depth -= ch == ")"
            i += 1
            if depth == 0:
                break
    return text[tokens[i][0]:] if i < len(tokens) else ""


def _check_pragma(text: str) -> None:
    import duckdb

    tokens = [(pos, kind) for pos, kind in duckdb.tokenize(text)
              if kind != duckdb.token_type.comment]
    name = ""
    if len(tokens) > 1:
        end = tokens[2][0] if len(tokens) > 2 else len(text)
        name = text[tokens[1][0]:end].strip().lower()
    assigns = len(tokens) > 2 and text[tokens[2][0]] == "="
    if name not in _READ_PRAGMAS or assigns:
        raise QueryNotAllowed(
            f"store queries only read; PRAGMA {name or '?'} is not allowed (allowed: "
            "table_info, show_tables, database_size, storage_info, version, ...)"
        )


def _tree(con: Any, text: str) -> Any:
    got = json.loads(con.execute("SELECT json_serialize_sql(?::VARCHAR)", [text]).fetchall()[0][0])
    return None if got.get("error") else got


def _check_tree(
    tree: Any, allow_files: bool, relations: Callable[[], set[str]] | None
) -> None:
    ctes: set[str] = set()
    tables: list[str] = []
    functions: list[tuple[str, bool]] = []  # (name, is a table function)
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "BASE_TABLE":
            tables.append(str(node.get("table_name", "")))
        elif kind == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            functions.append((str(fn.get("function_name", "")).lower(), True))
        elif node.get("class") == "FUNCTION":
            functions.append((str(node.get("function_name", "")).lower(), False))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map") or ():
                if isinstance(entry, dict) and "key" in entry:
                    ctes.add(str(entry["key"]).lower())
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    for name, is_table in functions:
        _check_function(name, allow_files)
        if not is_table or allow_files:
            continue
        if name in _SAFE_TABLE_FUNCTIONS or name.startswith(("duckdb_", "pragma_")):
            continue
        files = name in _FILE_TABLE_FUNCTIONS or name.startswith(("read_", "parquet_"))
        raise QueryNotAllowed(
            f"store queries do not read files; {name}() is off (pass allow_files=True to "
            "store.query / %lash sql --allow-files to read files)" if files else
            f"store queries only read the store; table function {name}() is not allowed"
        )
    if relations is not None and tables:
        known = {r.lower() for r in relations()} | ctes
        for t in tables:
            if t.lower() not in known:
                close = difflib.get_close_matches(t.lower(), sorted(known - ctes), n=1)
                meant = f"; did you mean {close[0]}?" if close else ";"
                raise QueryNotAllowed(
                    f"no table or view {t!r} in the store{meant} SHOW TABLES lists them "
                    "(files are read only with allow_files=True, %lash sql --allow-files)"
                )


_PARSER_LOCK = threading.Lock()
_PARSER: list[Any] = []


def _parser() -> Any:
    """A private in-memory DuckDB connection for parsing (callers hold ``_PARSER_LOCK``).
    Closed at exit: a DuckDB connection left to interpreter shutdown on a daemon thread's
    locals aborted the process ("terminate called ... exception not rethrown")."""
    if not _PARSER:
        import atexit

        import duckdb

        _PARSER.append(duckdb.connect(":memory:", config={"threads": 1}))
        atexit.register(_close_parser)
    return _PARSER[0]


def _close_parser() -> None:
    with _PARSER_LOCK:
        while _PARSER:
            _PARSER.pop().close()
