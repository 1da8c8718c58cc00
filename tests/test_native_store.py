"""The native MLMD store (store/native_store.py) is ml-metadata's store without the client.

Checked against ml-metadata 1.17.1 itself (the ``[mlmd]`` extra, installed for the tests) on
SQLite, PostgreSQL and MariaDB:
- the same TFX history written through either API leaves the same rows, in the same id order;
- a store written natively reads identically through ml-metadata's API, including
  ``get_lineage_subgraph`` and filter queries, and ml-metadata keeps writing into it;
- a store ml-metadata wrote reads identically through the native API and both graphlet readers.
"""

from __future__ import annotations

import gc
import itertools
import threading
import uuid

import pytest
import sqlalchemy as sa
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as client_pb
from support import tfx_store
from support.databases import create_store_uri, drop_store
from support.tfx_store import RunPlan, TfxPipeline

from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store import mlmd_proto as pb
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.native_reads import LineageQuery
from airflow_graphlets.store.uri import parse_store_uri

# Columns whose value is the clock's, not the writer's choice.
_CLOCK_COLUMNS = {"create_time_since_epoch", "last_update_time_since_epoch", "milliseconds_since_epoch"}
_TABLES = ("Type", "ParentType", "TypeProperty", "Artifact", "ArtifactProperty", "Execution", "ExecutionProperty",
           "Context", "ContextProperty", "ParentContext", "Event", "EventPath", "Association", "Attribution", "MLMDEnv")
_PLANS = [RunPlan(span=1), RunPlan(span=2, blessed=False), RunPlan(span=3, trainer_fails=True),
          RunPlan(span=4, transform=False, window=2), RunPlan(span=5, trainer_cached=True),
          RunPlan(span=6, statistics_cached=True, infra_validator=True)]


def client_store(uri: str) -> metadata_store.MetadataStore:
    """ml-metadata's own client; on a new database it creates the schema itself."""
    return metadata_store.MetadataStore(parse_store_uri(uri).mlmd_connection_config())


def rows(uri: str) -> dict[str, list[tuple]]:
    """Every row of every MLMD table, clock columns left out, in key order."""
    config = parse_store_uri(uri)
    engine = sa.create_engine(config.sqlalchemy_url())
    dump = {}
    with engine.connect() as conn:
        for table in _TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            keep = [i for i, name in enumerate(result.keys()) if name.lower() not in _CLOCK_COLUMNS]
            dump[table] = sorted(tuple(_plain(row[i]) for i in keep) for row in result)
    engine.dispose()
    return dump


def _plain(value):
    """One spelling per value across drivers (MySQL's 0/1 booleans, bytes from BLOBs)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    return value


def write_history(store, names: itertools.count, plans=_PLANS) -> TfxPipeline:
    """Two TFX pipelines' runs, written through ``store``'s API, execution names deterministic."""
    pipelines = [TfxPipeline(store, "taxi"), TfxPipeline(store, "churn")]
    for n, plan in enumerate(plans):
        for pipeline in pipelines:
            pipeline.run(f"run-{n}-{next(names)}", plan)
    return pipelines[0]


@pytest.fixture
def deterministic_uuid(monkeypatch):
    counter = itertools.count()
    monkeypatch.setattr(tfx_store.uuid, "uuid4", lambda: uuid.UUID(int=next(counter)))


@pytest.fixture
def two_stores(store_uri, tmp_path):
    """The test's store and a second fresh database of the same backend."""
    other = create_store_uri(store_uri.split(":")[0], str(tmp_path))
    yield store_uri, other
    drop_store(other)


def test_the_same_history_written_natively_or_by_ml_metadata_leaves_the_same_rows(two_stores, deterministic_uuid):
    native_uri, client_uri = two_stores
    write_history(client_store(client_uri), itertools.count())
    tfx_store.uuid.uuid4 = _restart_uuid()
    native = open_store(parse_store_uri(native_uri))
    write_history(native, itertools.count())
    native.close()
    ours, theirs = rows(native_uri), rows(client_uri)
    # ml-metadata links a try's artifacts to each context in the order of a hash set (its
    # PutExecution iterates an absl::flat_hash_set): the same links, ids in another order.
    assert sorted(link[1:] for link in ours.pop("Attribution")) == sorted(link[1:] for link in theirs.pop("Attribution"))
    if native_uri.startswith("mysql"):
        # On MySQL, ml-metadata's insert of a link that exists fails after drawing an id, so its
        # Association ids have gaps; the links and their order are the same.
        ours["Association"] = [row[1:] for row in ours["Association"]]
        theirs["Association"] = [row[1:] for row in theirs["Association"]]
    assert ours == theirs


def _restart_uuid():
    counter = itertools.count()
    return lambda: uuid.UUID(int=next(counter))


def everything(store) -> dict[str, list]:
    """What MLMD's getters return for a whole store, as native messages."""
    executions, artifacts, contexts = store.get_executions(), store.get_artifacts(), store.get_contexts()
    found = {
        "artifact_types": store.get_artifact_types(), "execution_types": store.get_execution_types(),
        "context_types": store.get_context_types(), "executions": executions, "artifacts": artifacts,
        "contexts": contexts,
        "events": store.get_events_by_execution_ids([e.id for e in executions]),
        "events_by_artifact": store.get_events_by_artifact_ids([a.id for a in artifacts]),
        "parents": [(c.id, p.id) for c in contexts for p in store.get_parent_contexts_by_context(c.id)],
        "children": [(c.id, k.id) for c in contexts for k in store.get_children_contexts_by_context(c.id)],
        "associations": [(c.id, e.id) for c in contexts for e in store.get_executions_by_context(c.id)],
        "contexts_of_execution": [(e.id, c.id) for e in executions for c in store.get_contexts_by_execution(e.id)],
        "by_external_id": store.get_executions_by_external_ids([e.external_id for e in executions if e.external_id]),
        "by_uri": store.get_artifacts_by_uri(min(artifacts, key=lambda a: a.id).uri),
        "node_context": store.get_context_by_type_and_name("node", "taxi.Trainer"),
        "model_type": store.get_artifact_type("Model"),
    }
    # ml-metadata orders only its listings; other getters return rows in the database's order.
    return {key: sorted((_native(v) for v in value), key=_identity) if isinstance(value, list) else _native(value)
            for key, value in found.items()}


def _identity(value):
    if isinstance(value, tuple):
        return value
    if isinstance(value, pb.Event):
        return (value.artifact_id, value.execution_id, value.type)
    return (value.id,)


def _native(value):
    if isinstance(value, tuple):
        return value
    return pb.convert(value, getattr(pb, type(value).__name__))


def test_a_store_written_natively_reads_the_same_through_ml_metadata_which_keeps_writing(
        store_uri, deterministic_uuid):
    # One SQLite library at a time on a file: ml-metadata links its own copy of SQLite, and two
    # copies in one process break each other's file locks (sqlite.org/howtocorrupt.html, 2.2.1).
    config = parse_store_uri(store_uri)
    native = open_store(config)
    write_history(native, itertools.count(), _PLANS[:3])
    written_natively = everything(native)
    native.close()
    client = client_store(store_uri)
    assert everything(client) == written_natively

    # ml-metadata continues the same pipeline where the native writer stopped.
    spans = {a.properties["span"].int_value: a for a in client.get_artifacts_by_type("Examples")
             if a.uri.startswith("/pipelines/taxi/CsvExampleGen")}
    TfxPipeline(client, "taxi", spans=spans).run("client-run", RunPlan(span=4))
    continued = everything(client)
    assert len(continued["executions"]) == len(written_natively["executions"]) + 8
    # MLMD's filter queries and lineage, for the native store to match below.
    filtered = client.get_artifacts(list_options=metadata_store.ListOptions(
        filter_query='type = "Examples" AND contexts_p.name = "taxi" AND properties.span.int_value >= 2'))
    assert sorted(a.properties["span"].int_value for a in filtered) == [2, 3, 4]
    model = client.get_artifacts_by_type("Model")[0]
    options = client_pb.LineageSubgraphQueryOptions(
        starting_artifacts=client_pb.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id IN ({model.id})"),
        max_num_hops=4, direction=client_pb.LineageSubgraphQueryOptions.DOWNSTREAM)
    theirs = client.get_lineage_subgraph(options, ["artifacts", "executions", "events"])
    del client
    gc.collect()

    native = open_store(config)
    assert everything(native) == continued
    assert sorted(a.id for a in filtered) == native.span_artifact_ids("taxi", "Examples", 2, 4)
    ours = native.get_lineage_subgraph(LineageQuery((model.id,), max_num_hops=4), ["artifacts", "executions", "events"])
    assert sorted(a.id for a in ours.artifacts) == sorted(a.id for a in theirs.artifacts)
    assert sorted(e.id for e in ours.executions) == sorted(e.id for e in theirs.executions)
    assert sorted((e.artifact_id, e.execution_id, e.type) for e in ours.events) == \
        sorted((e.artifact_id, e.execution_id, e.type) for e in theirs.events)
    native.close()


def test_a_store_ml_metadata_wrote_reads_the_same_natively_and_through_both_graphlet_readers(
        store_uri, deterministic_uuid):
    client = client_store(store_uri)
    write_history(client, itertools.count())
    written_by_client = everything(client)
    del client
    gc.collect()
    config = parse_store_uri(store_uri)
    native = open_store(config)
    assert everything(native) == written_by_client
    native.close()
    bulk = read_graphlets(config).graphlets.records()
    through_native = read_graphlets_with_mlmd_api(config).graphlets.records()
    through_client = read_graphlets_with_mlmd_api(config, client="mlmd").graphlets.records()
    assert len(bulk) == 2 * sum(not p.trainer_cached for p in _PLANS)
    assert through_native == through_client == bulk


def test_native_writes_refuse_what_ml_metadata_refuses(store_uri):
    native = open_store(parse_store_uri(store_uri))
    type_id = native.put_artifact_type(pb.ArtifactType(name="Examples", properties={"span": pb.INT}))
    wrong = pb.Artifact(type_id=type_id, uri="/x")
    wrong.properties["span"].string_value = "one"
    with pytest.raises(mlmd_errors.InvalidArgumentError, match="unmatched property type: span"):
        native.put_artifacts([wrong])
    undeclared = pb.Artifact(type_id=type_id)
    undeclared.properties["split"].int_value = 1
    with pytest.raises(mlmd_errors.InvalidArgumentError, match="unknown property: split"):
        native.put_artifacts([undeclared])
    with pytest.raises(mlmd_errors.AlreadyExistsError):
        native.put_artifact_type(pb.ArtifactType(name="Examples", properties={"span": pb.STRING}))
    context_type = native.put_context_type(pb.ContextType(name="pipeline"))
    native.put_contexts([pb.Context(type_id=context_type, name="taxi")])
    with pytest.raises(mlmd_errors.AlreadyExistsError):
        native.put_contexts([pb.Context(type_id=context_type, name="taxi")])
    assert native.get_artifacts() == []  # nothing of a refused call was written
    native.close()


def test_writers_racing_on_one_new_store_leave_one_copy_of_each_type_and_context(store_uri):
    """Eight threads register the same types and contexts and write executions at once."""
    config = parse_store_uri(store_uri)
    open_store(config).close()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            store = open_store(config)
            for i in range(5):
                execution_type = store.put_execution_type(pb.ExecutionType(name="Trainer"), can_add_fields=True)
                context_type = store.put_context_type(pb.ContextType(name="pipeline"))
                execution = pb.Execution(type_id=execution_type, external_id=f"w{n}-{i}",
                                         last_known_state=pb.Execution.COMPLETE)
                store.put_execution(execution, [], [pb.Context(type_id=context_type, name="taxi")],
                                    reuse_context_if_already_exist=True)
            store.close()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    dump = rows(store_uri)
    assert [row for row in dump["Type"] if row[1] in ("Trainer", "pipeline")].__len__() == 2
    assert len(dump["Context"]) == 1
    assert len(dump["Execution"]) == 40
    assert len(dump["Association"]) == 40
