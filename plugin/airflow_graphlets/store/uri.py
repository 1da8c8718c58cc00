"""Store URIs: one string names an MLMD store on SQLite, PostgreSQL or MySQL/MariaDB.

Accepted forms::

    sqlite:////absolute/path/mlmd.sqlite        (four slashes: an absolute path)
    sqlite:///relative/path/mlmd.sqlite
    postgresql://user:password@host:5432/dbname  (also postgres://, postgresql+psycopg2://)
    mysql://user:password@host:3306/dbname       (also mariadb://, mysql+pymysql://)

A server address may carry TLS options as a query string, which every connection to the store
honours (the native store, the readers, the flusher's row batch, ml-metadata's client)::

    postgresql://mlmd@db:5432/mlmd?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem
    mysql://mlmd@db:3306/mlmd?ssl_ca=/etc/ssl/ca.pem&ssl_verify_cert=true
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from airflow_graphlets.errors import StoreConfigError, mask_secrets

if TYPE_CHECKING:
    from ml_metadata.proto import metadata_store_pb2

_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
# TLS options a server address may carry: libpq's names for PostgreSQL; for MySQL, the names
# SQLAlchemy's MySQL URLs use (and ml-metadata's MySQL SSL options take).
TLS_OPTIONS = {
    "postgresql": ("sslmode", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl"),
    "mysql": ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_verify_cert"),
}
_SECRET_OPTIONS = frozenset({"sslpassword"})
_EXAMPLES = (
    "sqlite:////abs/path/mlmd.sqlite, postgresql://user@127.0.0.1:5432/mlmd "
    "or mysql://root@127.0.0.1:3306/mlmd"
)


@dataclass(frozen=True)
class StoreConfig:
    """Where an MLMD store lives. Build one with :func:`parse_store_uri`."""

    backend: str  # "sqlite", "postgresql" or "mysql"
    path: str = ""  # sqlite only
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()  # TLS options, in the order given (TLS_OPTIONS)

    def uri(self, *, hide_password: bool = True) -> str:
        """The store's URI; the password (and a key's passphrase) masked unless ``hide_password`` is false."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.path}"
        secret = "***" if hide_password else quote(self.password, safe="")
        auth = quote(self.user, safe="") + (f":{secret}" if self.password else "")
        query = urlencode([(k, "***" if hide_password and k in _SECRET_OPTIONS else v) for k, v in self.options],
                          safe="/*")
        return f"{self.backend}://{auth}@{_host_in_uri(self.host)}:{self.port}/{self.database}" + (
            f"?{query}" if query else "")

    def connect_args(self) -> dict:
        """The TLS options as the database driver's connect arguments (psycopg2 takes libpq's
        names; PyMySQL one ``ssl`` dictionary)."""
        if self.backend == "postgresql":
            return dict(self.options)
        if self.backend == "mysql" and self.options:
            ssl = {key[len("ssl_"):]: value for key, value in self.options if key != "ssl_verify_cert"}
            verify = dict(self.options).get("ssl_verify_cert")
            if verify is not None:
                import ssl as ssl_module

                required = verify.lower() in ("1", "true", "yes", "required")
                ssl["verify_mode"] = ssl_module.CERT_REQUIRED if required else ssl_module.CERT_NONE
                ssl.setdefault("check_hostname", required)
            return {"ssl": ssl}
        return {}

    def __str__(self) -> str:
        return self.uri()

    def mlmd_connection_config(self) -> metadata_store_pb2.ConnectionConfig:
        """The ``ConnectionConfig`` proto MLMD's ``MetadataStore`` takes."""
        from ml_metadata.proto import metadata_store_pb2  # not at import: tasks load this module, never MLMD

        config = metadata_store_pb2.ConnectionConfig()
        if self.backend == "sqlite":
            config.sqlite.filename_uri = self.path
            config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        elif self.backend == "postgresql":
            config.postgresql.host = self.host
            config.postgresql.port = str(self.port)
            config.postgresql.user = self.user
            config.postgresql.dbname = self.database
            if self.password:
                config.postgresql.password = self.password
            for key, value in self.options:
                setattr(config.postgresql.ssloption, key, value)
        else:
            config.mysql.host = self.host
            config.mysql.port = self.port
            config.mysql.user = self.user
            config.mysql.database = self.database
            if self.password:
                config.mysql.password = self.password
            names = {"ssl_ca": "ca", "ssl_cert": "cert", "ssl_key": "key", "ssl_capath": "capath",
                     "ssl_cipher": "cipher"}
            for key, value in self.options:
                if key == "ssl_verify_cert":
                    config.mysql.ssl_options.verify_server_cert = value.lower() in ("1", "true", "yes", "required")
                else:
                    setattr(config.mysql.ssl_options, names[key], value)
        return config

    def sqlalchemy_url(self):
        """A SQLAlchemy URL for the store's database (for SQLite a ``URL`` object, which keeps a
        path holding ``%``, ``#`` or ``?`` as it is; a string would be parsed)."""
        if self.backend == "sqlite":
            from sqlalchemy.engine import URL  # not at import: tasks load this module

            return URL.create("sqlite", database=self.path)
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        driver = "postgresql+psycopg2" if self.backend == "postgresql" else "mysql+pymysql"
        return f"{driver}://{auth}@{_host_in_uri(self.host)}:{self.port}/{self.database}"


def parse_store_uri(uri: str) -> StoreConfig:
    """Parse a store URI into a :class:`StoreConfig`.

    Args:
      uri: the store's URI, in one of the forms this module's docstring lists.

    Returns:
      The parsed configuration.

    Raises:
      StoreConfigError: the URI is empty, of an unknown scheme, or misses a part it needs;
        the message names the part and shows valid examples.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise StoreConfigError(f"The MLMD store URI is empty. Give one such as {_EXAMPLES}.")
    uri = uri.strip()
    if "://" not in uri:
        raise StoreConfigError(f"The MLMD store URI {mask_secrets(uri)!r} has no scheme. Give one such as {_EXAMPLES}.")
    scheme = uri.split("://", 1)[0].lower()
    backend = _SCHEMES.get(scheme)
    if backend is None:
        raise StoreConfigError(
            f"The MLMD store URI scheme {scheme!r} is not supported; use sqlite, postgresql or mysql "
            f"(for example {_EXAMPLES})."
        )
    if backend == "sqlite":
        return _parse_sqlite(uri)
    return _parse_server(uri, backend)


def _parse_sqlite(uri: str) -> StoreConfig:
    rest = uri.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise StoreConfigError(
            f"The SQLite store URI {uri!r} has no file path; write sqlite:////absolute/path/mlmd.sqlite "
            "(four slashes for an absolute path)."
        )
    path, _, query = rest[1:].partition("?")
    if query:
        raise StoreConfigError(f"The SQLite store URI {uri!r} has options ({query}); SQLite stores take none. "
                               "A '?' in the file name is written %3F.")
    path = unquote(path)
    if not path or path.endswith("/"):
        raise StoreConfigError(f"The SQLite store URI {uri!r} names a directory, not a file.")
    if path == ":memory:":
        raise StoreConfigError(
            "An in-memory SQLite MLMD store would lose every record when the task ends; give a file path."
        )
    return StoreConfig(backend="sqlite", path=os.path.abspath(path))


def _parse_server(uri: str, backend: str) -> StoreConfig:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as err:
        raise StoreConfigError(f"The MLMD store URI {_mask(uri)!r} is malformed: {err}.") from None
    if not parts.hostname:
        raise StoreConfigError(f"The MLMD store URI {_mask(uri)!r} has no host; for example {_EXAMPLES}.")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise StoreConfigError(
            f"The MLMD store URI {_mask(uri)!r} must name one database after the host, as in "
            f"{backend}://user@host:{_DEFAULT_PORTS[backend]}/mlmd."
        )
    if not parts.username:
        raise StoreConfigError(
            f"The MLMD store URI {_mask(uri)!r} has no user; write {backend}://USER@{parts.hostname}/..."
        )
    return StoreConfig(
        backend=backend,
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[backend],
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        database=database,
        options=_options(parts.query, backend, _mask(uri)),
    )


def _options(query: str, backend: str, shown: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as err:
        raise StoreConfigError(f"The MLMD store URI {shown!r} has a malformed query string: {err}.") from None
    known = TLS_OPTIONS[backend]
    unknown = [key for key, _ in pairs if key not in known]
    if unknown:
        raise StoreConfigError(f"The MLMD store URI has the unknown option(s) {', '.join(unknown)}; a {backend} "
                               f"address takes {', '.join(known)}.")
    return tuple(pairs)


def _with_password(uri: str, password: str | None, conn_id: str) -> str:
    """An ``mlmd`` connection's ``uri`` with the connection's password field put in it: Airflow
    masks the password field in logs and the UI, not the extras, so the password belongs there."""
    if not password:
        return uri
    head, sep, tail = uri.partition("://")
    auth, at, rest = tail.rpartition("@")
    if not at:
        raise StoreConfigError(f"Connection {conn_id!r} has a password but its uri names no user; write "
                               "extra uri as postgresql://USER@host:5432/mlmd.")
    if ":" in auth:
        raise StoreConfigError(f"Connection {conn_id!r} has a password both in its password field and in extra "
                               "uri; keep it in the password field only (Airflow does not mask extras).")
    return f"{head}{sep}{auth}:{quote(password, safe='')}@{rest}"


def _host_in_uri(host: str) -> str:
    """An IPv6 address in brackets, as URIs write it (urlsplit gives it without)."""
    return f"[{host}]" if ":" in host else host


def _mask(uri: str) -> str:
    """The URI with any password replaced, for error messages."""
    head, sep, tail = uri.partition("://")
    if "@" not in tail:
        return mask_secrets(uri)
    auth, _, host = tail.rpartition("@")
    user = auth.split(":", 1)[0]
    return mask_secrets(f"{head}{sep}{user}{':***' if ':' in auth else ''}@{host}")


def connection_to_store_uri(
    conn_type: str,
    *,
    host: str | None = None,
    port: int | None = None,
    login: str | None = None,
    password: str | None = None,
    schema: str | None = None,
    extra: dict | None = None,
    conn_id: str = "mlmd_default",
) -> str:
    """Turn the fields of an Airflow connection into a store URI.

    Accepted: an ``mlmd`` connection whose extra holds ``uri`` (or ``backend`` plus the usual
    host/port/login/password/schema fields), or a plain ``sqlite``, ``postgres`` or ``mysql``
    connection (what ``AIRFLOW_CONN_MLMD_DEFAULT='postgresql://...'`` gives).

    Raises:
      StoreConfigError: the connection is of another type or misses a field; the message names
        the connection id and the field.
    """
    extra = extra or {}
    kind = (conn_type or "").lower()
    if kind == "mlmd":
        if extra.get("uri"):
            return _with_password(str(extra["uri"]), password, conn_id)
        kind = str(extra.get("backend", "")).lower()
        if not kind:
            raise StoreConfigError(
                f"Connection {conn_id!r} (type mlmd) needs extra 'uri' (e.g. {{\"uri\": "
                "\"postgresql://user@host:5432/mlmd\"}) or extra 'backend' with host, login and schema."
            )
    backend = _SCHEMES.get(kind)
    if backend is None:
        raise StoreConfigError(
            f"Connection {conn_id!r} has type {conn_type!r}; use type mlmd, sqlite, postgres or mysql."
        )
    if backend == "sqlite":
        path = schema or host or ""
        if not path:
            raise StoreConfigError(f"Connection {conn_id!r} (sqlite) names no database file.")
        return "sqlite:///" + quote(path, safe="/")
    if not host or not login or not schema:
        missing = [name for name, value in (("host", host), ("login", login), ("schema", schema)) if not value]
        raise StoreConfigError(
            f"Connection {conn_id!r} ({backend}) is missing {', '.join(missing)}; the schema field names "
            "the database."
        )
    auth = quote(login, safe="") + (f":{quote(password, safe='')}" if password else "")
    options = [(key, str(extra[key])) for key in TLS_OPTIONS[backend] if extra.get(key) not in (None, "")]
    query = f"?{urlencode(options)}" if options else ""
    return f"{backend}://{auth}@{_host_in_uri(host)}:{port or _DEFAULT_PORTS[backend]}/{quote(schema, safe='')}{query}"
