"""MLMD's record messages (``ml_metadata/proto/metadata_store.proto``), without the ml-metadata client.

The messages our code reads and writes (``Value``, ``Artifact``, ``Execution``, ``Context``, their
types, ``Event``, the links and ``LineageGraph``), built at import from a descriptor written here,
with MLMD's field names and numbers. So they behave as MLMD's do (``HasField``, property maps,
enums such as ``Execution.COMPLETE``), and a message of either kind converts to the other through
its wire form (:func:`convert`), which is how the optional ml-metadata client and the native store
exchange records. The package is ``airflow_graphlets.mlmd``, not ``ml_metadata``, so both sets of
classes can be loaded in one process.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, struct_pb2  # noqa: F401 - registers imports

_FIELD = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _FIELD.LABEL_OPTIONAL, _FIELD.LABEL_REPEATED
_SCALARS = {"int64": _FIELD.TYPE_INT64, "int32": _FIELD.TYPE_INT32, "string": _FIELD.TYPE_STRING,
            "double": _FIELD.TYPE_DOUBLE, "bool": _FIELD.TYPE_BOOL}
_PACKAGE = "airflow_graphlets.mlmd"

# Each message: fields as (name, number, type, label or "map" or a oneof name). A type is a scalar
# name, ".Message" (this package), "google.protobuf.X", or "enum:.Path" for an enum.
_STATE_ARTIFACT = ("UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE")
_STATE_EXECUTION = ("UNKNOWN", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED")
_EVENT_TYPES = ("UNKNOWN", "DECLARED_OUTPUT", "DECLARED_INPUT", "INPUT", "OUTPUT", "INTERNAL_INPUT",
                "INTERNAL_OUTPUT", "PENDING_OUTPUT")
_PROPERTY_TYPES = ("UNKNOWN", "INT", "DOUBLE", "STRING", "STRUCT", "PROTO", "BOOLEAN")
_ARTIFACT_BASES = ("UNSET", "DATASET", "MODEL", "METRICS", "STATISTICS")
_EXECUTION_BASES = ("UNSET", "TRAIN", "TRANSFORM", "PROCESS", "EVALUATE", "DEPLOY")
_ANY = "google.protobuf.Any"


def _node(id_no: int, name_no: int, type_id_no: int, type_no: int, external_no: int, create_no: int,
          system_no: int) -> list[tuple]:
    return [("id", id_no, "int64", "opt"), ("name", name_no, "string", "opt"), ("type_id", type_id_no, "int64", "opt"),
            ("type", type_no, "string", "opt"), ("external_id", external_no, "string", "opt"),
            ("properties", 4, ".Value", "map"), ("custom_properties", 5, ".Value", "map"),
            ("create_time_since_epoch", create_no, "int64", "opt"),
            ("last_update_time_since_epoch", create_no + 1, "int64", "opt"),
            ("system_metadata", system_no, _ANY, "opt")]


def _type(version_no: int, description_no: int, external_no: int, base_no: int, base_enum: str) -> list[tuple]:
    return [("id", 1, "int64", "opt"), ("name", 2, "string", "opt"), ("version", version_no, "string", "opt"),
            ("description", description_no, "string", "opt"), ("external_id", external_no, "string", "opt"),
            ("properties", 3, "enum:.PropertyType", "map"), ("base_type", base_no, f"enum:{base_enum}", "opt")]


_MESSAGES: dict[str, dict[str, Any]] = {
    "Value": {"fields": [("int_value", 1, "int64", "value"), ("double_value", 2, "double", "value"),
                         ("string_value", 3, "string", "value"), ("struct_value", 4, "google.protobuf.Struct", "value"),
                         ("proto_value", 5, _ANY, "value"), ("bool_value", 6, "bool", "value")]},
    "Artifact": {"fields": [*_node(1, 7, 2, 8, 11, 9, 12), ("uri", 3, "string", "opt"),
                            ("state", 6, "enum:.Artifact.State", "opt")],
                 "enums": {"State": _STATE_ARTIFACT}},
    "ArtifactType": {"fields": _type(4, 5, 7, 6, ".ArtifactType.SystemDefinedBaseType"),
                     "enums": {"SystemDefinedBaseType": _ARTIFACT_BASES}},
    "Event": {"fields": [("artifact_id", 1, "int64", "opt"), ("execution_id", 2, "int64", "opt"),
                         ("path", 3, ".Event.Path", "opt"), ("type", 4, "enum:.Event.Type", "opt"),
                         ("milliseconds_since_epoch", 5, "int64", "opt"), ("system_metadata", 6, _ANY, "opt")],
              "enums": {"Type": _EVENT_TYPES},
              "nested": {"Path": {"fields": [("steps", 1, ".Event.Path.Step", "rep")],
                                  "nested": {"Step": {"fields": [("index", 1, "int64", "value"),
                                                                 ("key", 2, "string", "value")]}}}}},
    "Execution": {"fields": [*_node(1, 6, 2, 7, 10, 8, 11), ("last_known_state", 3, "enum:.Execution.State", "opt")],
                  "enums": {"State": _STATE_EXECUTION}},
    "ExecutionType": {"fields": _type(6, 7, 9, 8, ".ExecutionType.SystemDefinedBaseType"),
                      "enums": {"SystemDefinedBaseType": _EXECUTION_BASES}},
    "ContextType": {"fields": _type(4, 5, 7, 6, ".ContextType.SystemDefinedBaseType"),
                    "enums": {"SystemDefinedBaseType": ("UNSET",)}},
    "Context": {"fields": _node(1, 3, 2, 6, 9, 7, 10)},
    "Attribution": {"fields": [("artifact_id", 1, "int64", "opt"), ("context_id", 2, "int64", "opt")]},
    "Association": {"fields": [("execution_id", 1, "int64", "opt"), ("context_id", 2, "int64", "opt")]},
    "ParentContext": {"fields": [("child_id", 1, "int64", "opt"), ("parent_id", 2, "int64", "opt")]},
    "LineageGraph": {"fields": [("artifact_types", 1, ".ArtifactType", "rep"),
                                ("execution_types", 2, ".ExecutionType", "rep"),
                                ("context_types", 3, ".ContextType", "rep"), ("artifacts", 4, ".Artifact", "rep"),
                                ("executions", 5, ".Execution", "rep"), ("contexts", 6, ".Context", "rep"),
                                ("events", 7, ".Event", "rep"), ("attributions", 8, ".Attribution", "rep"),
                                ("associations", 9, ".Association", "rep"),
                                ("parent_contexts", 10, ".ParentContext", "rep")]},
}


def _type_name(spec: str) -> str:
    return f".{_PACKAGE}{spec}" if spec.startswith(".") else f".{spec}"


def _add_message(container, name: str, spec: dict[str, Any], path: str) -> None:
    message = container.add(name=name)
    for enum_name, values in spec.get("enums", {}).items():
        enum = message.enum_type.add(name=enum_name)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    for nested_name, nested in spec.get("nested", {}).items():
        _add_message(message.nested_type, nested_name, nested, f"{path}.{nested_name}")
    oneofs: list[str] = []
    for field_name, number, kind, label in spec["fields"]:
        field = message.field.add(name=field_name, number=number)
        if label == "map":
            entry = message.nested_type.add(name="".join(p.capitalize() for p in field_name.split("_")) + "Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_FIELD.TYPE_STRING, label=_OPTIONAL)
            value = entry.field.add(name="value", number=2, label=_OPTIONAL)
            _set_kind(value, kind)
            field.label = _REPEATED
            field.type = _FIELD.TYPE_MESSAGE
            field.type_name = f".{_PACKAGE}.{path}.{entry.name}"
            continue
        _set_kind(field, kind)
        field.label = _REPEATED if label == "rep" else _OPTIONAL
        if label not in ("opt", "rep"):
            if label not in oneofs:
                oneofs.append(label)
                message.oneof_decl.add(name=label)
            field.oneof_index = oneofs.index(label)


def _set_kind(field, kind: str) -> None:
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    elif kind.startswith("enum:"):
        field.type = _FIELD.TYPE_ENUM
        field.type_name = _type_name(kind[len("enum:"):])
    else:
        field.type = _FIELD.TYPE_MESSAGE
        field.type_name = _type_name(kind)


def _build() -> dict[str, type]:
    file = descriptor_pb2.FileDescriptorProto(name="airflow_graphlets/mlmd_records.proto", package=_PACKAGE,
                                              syntax="proto2",
                                              dependency=["google/protobuf/any.proto", "google/protobuf/struct.proto"])
    property_type = file.enum_type.add(name="PropertyType")
    for number, value in enumerate(_PROPERTY_TYPES):
        property_type.value.add(name=value, number=number)
    for name, spec in _MESSAGES.items():
        _add_message(file.message_type, name, spec, name)
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindFileByName(file.name)
    except KeyError:
        descriptor = pool.Add(file) if hasattr(pool, "Add") else pool.AddSerializedFile(file.SerializeToString())
        descriptor = pool.FindFileByName(file.name)
    return {name: _message_class(descriptor.message_types_by_name[name]) for name in _MESSAGES}


def _message_class(descriptor) -> type:
    from google.protobuf import message_factory

    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory().GetPrototype(descriptor)  # protobuf < 4.21


_CLASSES = _build()
Value = _CLASSES["Value"]
Artifact = _CLASSES["Artifact"]
ArtifactType = _CLASSES["ArtifactType"]
Event = _CLASSES["Event"]
Execution = _CLASSES["Execution"]
ExecutionType = _CLASSES["ExecutionType"]
ContextType = _CLASSES["ContextType"]
Context = _CLASSES["Context"]
Attribution = _CLASSES["Attribution"]
Association = _CLASSES["Association"]
ParentContext = _CLASSES["ParentContext"]
LineageGraph = _CLASSES["LineageGraph"]

# MLMD's PropertyType enum values, as module constants as in metadata_store_pb2.
UNKNOWN, INT, DOUBLE, STRING, STRUCT, PROTO, BOOLEAN = range(len(_PROPERTY_TYPES))

M = TypeVar("M")


def convert(message: Any, cls: type[M]) -> M:
    """``message`` as an instance of ``cls``: itself if it is one, else through the wire form.

    Converts between these classes and ml-metadata's ``metadata_store_pb2`` ones (same field
    numbers); fields one side does not know are kept as unknown fields.
    """
    if isinstance(message, cls):
        return message
    return cls.FromString(message.SerializeToString())
