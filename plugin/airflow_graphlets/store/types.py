"""Register MLMD types the way TFX does, once per store handle."""

from __future__ import annotations

from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store import mlmd_proto as mlmd_pb

from airflow_graphlets.store import schema

_ARTIFACT_BASES = {
    schema.BASE_DATASET: mlmd_pb.ArtifactType.DATASET,
    schema.BASE_MODEL: mlmd_pb.ArtifactType.MODEL,
    schema.BASE_STATISTICS: mlmd_pb.ArtifactType.STATISTICS,
}
_EXECUTION_BASES = {
    schema.BASE_TRAIN: mlmd_pb.ExecutionType.TRAIN,
    schema.BASE_TRANSFORM: mlmd_pb.ExecutionType.TRANSFORM,
    schema.BASE_PROCESS: mlmd_pb.ExecutionType.PROCESS,
    schema.BASE_EVALUATE: mlmd_pb.ExecutionType.EVALUATE,
    schema.BASE_DEPLOY: mlmd_pb.ExecutionType.DEPLOY,
}


class TypeRegistry:
    """Type ids of one store, registered on first use and remembered after.

    Types are registered with ``can_add_fields`` and ``can_omit_fields``, as TFX's
    ``common_utils.register_type_if_not_exist`` does, so a store TFX wrote accepts ours and back.
    """

    def __init__(self, store: NativeStore) -> None:
        self._store = store
        self._ids: dict[tuple[str, str], int] = {}
        self._artifact_properties: dict[int, dict[str, int]] = {}

    def artifact_type(self, name: str) -> int:
        """Id of the artifact type ``name``; TFX's standard types get TFX's properties and base."""
        spec = schema.ARTIFACT_TYPES.get(name)
        proto = mlmd_pb.ArtifactType(name=name)
        if spec is not None:
            for prop, prop_type in spec.properties.items():
                proto.properties[prop] = int(prop_type)
            if spec.base_type:
                proto.base_type = _ARTIFACT_BASES[spec.base_type]
        type_id = self._register("artifact", proto, self._store.put_artifact_type, self._store.get_artifact_type)
        self._artifact_properties[type_id] = dict(proto.properties)
        return type_id

    def declared_artifact_properties(self, type_id: int) -> dict[str, int] | None:
        """The typed properties (name to MLMD ``PropertyType``) an artifact type got through this
        registry; ``None`` for a type it did not register."""
        return self._artifact_properties.get(type_id)

    def artifact_property_names(self, name: str) -> frozenset[str]:
        """Names declared as typed properties on the artifact type ``name`` (others are custom)."""
        spec = schema.ARTIFACT_TYPES.get(name)
        return frozenset(spec.properties) if spec else frozenset()

    def execution_type(self, name: str, base_type: str | None = None) -> int:
        """Id of the execution type ``name`` (with an MLMD base type such as ``mlmd.Train``)."""
        proto = mlmd_pb.ExecutionType(name=name)
        if base_type:
            proto.base_type = _EXECUTION_BASES[base_type]
        return self._register("execution", proto, self._store.put_execution_type, self._store.get_execution_type)

    def context_type(self, name: str) -> int:
        """Id of the context type ``name`` (TFX registers them with no properties)."""
        proto = mlmd_pb.ContextType(name=name)
        return self._register("context", proto, self._store.put_context_type, self._store.get_context_type)

    def _register(self, kind, proto, put, get) -> int:
        key = (kind, proto.name)
        if key not in self._ids:
            try:
                self._ids[key] = put(proto, can_add_fields=True, can_omit_fields=True)
            except mlmd_errors.AlreadyExistsError:
                # Another writer registered it between our check and insert.
                self._ids[key] = get(proto.name).id
        return self._ids[key]
