"""ml-metadata's own client behind the native store's interface (the ``[mlmd]`` extra).

:class:`ClientStore` wraps ml-metadata's ``MetadataStore`` so code written against
:class:`~airflow_graphlets.store.native_store.NativeStore` (the recorder's writer, say) runs on
it unchanged: record messages are converted to ml-metadata's classes on the way in and back on the
way out, and ml-metadata's errors become the native ones. The benchmarks compare the two writers
with it; users who prefer ml-metadata's client for writing can use it too.
"""

from __future__ import annotations

from typing import Any

from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store import mlmd_proto as pb
from airflow_graphlets.store.uri import StoreConfig

_ERRORS = ("AlreadyExistsError", "NotFoundError", "InvalidArgumentError", "FailedPreconditionError",
           "UnavailableError")


class ClientStore:
    """ml-metadata's ``MetadataStore`` speaking the native store's messages and errors.

    Args:
      config: the store; its schema is created natively first if it is new (as ``open_store`` does).

    Raises:
      StoreUnavailableError: ml-metadata is not installed, or the store cannot be opened.
    """

    def __init__(self, config: StoreConfig) -> None:
        from ml_metadata import errors as client_errors
        from ml_metadata.proto import metadata_store_pb2 as client_pb

        from airflow_graphlets.store.connect import open_mlmd_client

        self.config = config
        self.client = open_mlmd_client(config)
        self._client_pb = client_pb
        self._client_errors = client_errors

    def close(self) -> None:
        """ml-metadata's client closes its connection when collected."""
        self.client = None

    def span_artifact_ids(self, pipeline: str, type_name: str, span_min: int, span_max: int) -> list[int]:
        """:meth:`NativeStore.span_artifact_ids`, as TFX asks ml-metadata: a filter query."""
        from airflow_graphlets.store import schema

        query = (f"type = {_quote(type_name)} AND state = LIVE AND contexts_p.type = "
                 f"{_quote(schema.PIPELINE_CONTEXT)} AND contexts_p.name = {_quote(pipeline)} AND "
                 f"properties.{schema.SPAN}.int_value >= {int(span_min)} AND "
                 f"properties.{schema.SPAN}.int_value <= {int(span_max)}")
        return sorted(a.id for a in self._list("get_artifacts", query))

    def executions_with_property_since(self, name: str, since_ms: int, limit: int) -> list:
        """:meth:`NativeStore.executions_with_property_since`, as a filter query."""
        query = f"custom_properties.{name}.string_value != '' AND create_time_since_epoch > {int(since_ms)}"
        return _ours(self._list("get_executions", query, limit))

    def _list(self, getter: str, query: str, limit: int | None = None) -> list:
        from ml_metadata.metadata_store.metadata_store import ListOptions

        return getattr(self.client, getter)(list_options=ListOptions(filter_query=query, limit=limit))

    def __getattr__(self, name: str):
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(self._theirs(a) for a in args)
            kwargs = {k: self._theirs(v) for k, v in kwargs.items()}
            try:
                return _ours(method(*args, **kwargs))
            except self._client_errors.StatusError as err:
                kind = type(err).__name__
                ours = getattr(mlmd_errors, kind) if kind in _ERRORS else mlmd_errors.StatusError
                raise ours(str(err)) from err

        return call

    def _theirs(self, value: Any) -> Any:
        """A native message (or a list or tuple of them) as ml-metadata's classes."""
        if isinstance(value, (list, tuple)):
            return type(value)(self._theirs(v) for v in value)
        descriptor = getattr(value, "DESCRIPTOR", None)
        if descriptor is not None and descriptor.full_name.startswith("airflow_graphlets."):
            return pb.convert(value, getattr(self._client_pb, descriptor.name))
        return value


def _ours(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_ours(v) for v in value)
    descriptor = getattr(value, "DESCRIPTOR", None)
    if descriptor is not None and descriptor.full_name.startswith("ml_metadata.") and hasattr(pb, descriptor.name):
        return pb.convert(value, getattr(pb, descriptor.name))
    return value


def _quote(text: str) -> str:
    """A string literal for MLMD's filter-query language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
