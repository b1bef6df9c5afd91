"""Flow records as Arrow: the schema (versioned, documented field by field) and the Parquet and Arrow IPC
writers of `analyze --format parquet|arrow`.

The schema is the JSON contract in Arrow types: one row per flow, one column per record key, nested
lists and structs where the record nests (states, transitions, violations, tunnels, handshake,
anomalies, negotiation). Two columns are not record keys: `file` (the capture, when several are
analyzed at once; null for one) and `schema_version`. Every field carries its meaning in its metadata
(`doc`), so a Parquet file documents itself and docs/parquet.md is generated from here
(`python scripts/arrow_schema_doc.py`; a test fails when it is out of date).

Records reach Arrow as the engine's own JSON Lines text (`Analysis.chunk("jsonl")`), parsed by Arrow's
JSON reader against this schema: no Python object per flow, and a key the schema does not know is an
error, never a silently dropped column (tests run every capture through it).

pyarrow is optional (`pip install 'handshake-probe[parquet]'`): nothing here is imported by the
commands until an Arrow format is asked for.
"""

from __future__ import annotations

import array
import io
import os
import tempfile
from typing import Any, BinaryIO, Dict, Iterable, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.json as pa_json

import handshake_probe

__all__ = ["SCHEMA_VERSION", "ROW_GROUP_ROWS", "schema", "record_schema", "table_from_jsonl",
           "table_from_records", "finish_table", "with_file", "ParquetSink", "ArrowStreamSink", "EXTRAS"]

# Bumped when a column changes type or meaning; adding a column (as the JSON contract adds keys) bumps it too,
# so a reader of a directory of files written by different versions can tell them apart.
SCHEMA_VERSION = 1

# Rows per Parquet row group: what the writer holds before it writes (about 20 MB of Arrow data for the
# bench capture's flows), so memory stays bounded whatever the capture's length.
ROW_GROUP_ROWS = 16384

EXTRAS = "pip install 'handshake-probe[parquet]'"

I64, F64, STR, BOOL = pa.int64(), pa.float64(), pa.string(), pa.bool_()


def _f(name: str, typ: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": doc})


def _struct(*fields: pa.Field) -> pa.StructType:
    return pa.struct(list(fields))


_TRANSITION = _struct(
    _f("ts", F64, "time of the segment (or timer) that caused it, seconds since the epoch"),
    _f("frame", I64, "frame number in the capture; null for a timer (2MSL timeout)", nullable=True),
    _f("endpoint", STR, "`client` or `server`"),
    _f("from", STR, "state before (RFC 9293 spelling)"),
    _f("to", STR, "state after"),
    _f("cause", STR, "the cue: `rcv SYN-ACK`, `snd FIN`, `2MSL timeout`, ..."),
)

_VIOLATION = _struct(
    _f("ts", F64, "time of the segment"),
    _f("frame", I64, "frame number"),
    _f("endpoint", STR, "the endpoint whose machine had no transition"),
    _f("state", STR, "its state then"),
    _f("cue", STR, "the cue that fit no transition"),
    _f("reason", STR, "why, in words"),
)

_TUNNEL = _struct(
    _f("kind", STR, "GRE, VXLAN, Geneve, GTP-U, Teredo, AYIYA, L2TP, IP-in-IP, ..."),
    _f("outer_client", STR, "outer end on the inner client's side (`ip` or `ip:port` for kinds over UDP)"),
    _f("outer_server", STR, "outer end on the inner server's side"),
    _f("packets", I64, "the flow's packets through this tunnel"),
)

_HANDSHAKE = _struct(
    _f("complete", BOOL, "SYN, SYN-ACK and ACK all seen"),
    _f("status", STR, "`complete`, `partial` or `none`"),
    _f("syn_to_synack_ms", F64, "first SYN to first SYN-ACK, ms; null without both", nullable=True),
    _f("synack_to_ack_ms", F64, "first SYN-ACK to the ACK completing the handshake, ms; null without both",
       nullable=True),
    _f("syn_count", I64, "SYNs (without ACK) from the client, retransmissions included"),
    _f("synack_count", I64, "SYN-ACKs from the server"),
)

def _n(name: str, typ: pa.DataType, doc: str) -> pa.Field:
    # Inside `negotiation` every field is nullable for Arrow: the struct itself is null in rows without it,
    # and Arrow refuses a null struct whose children are declared `not null`. The contract's own nulls are
    # the fields whose meaning says "null when".
    return _f(name, typ, doc, nullable=True)


# The `negotiation` object of issue 12: the contract shared by the helpers (/work/brief/NEGOTIATION.md)
# plus what its branch added (`offer`, `summary`, `simultaneous_open`), in the record's order. Null in the
# rows of an engine that does not write it yet.
_TFO = _struct(
    _n("cookie_request", BOOL, "a TFO option without a cookie (a cookie request)"),
    _n("cookie", STR, "the TFO cookie, hex; null when none"),
    _n("data", I64, "payload bytes on the SYN / SYN-ACK"),
    _n("data_acked", BOOL, "client side: did the SYN-ACK acknowledge the SYN's data; null on the server side"),
)
_ECN = _struct(
    _n("ece", BOOL, "ECE bit"),
    _n("cwr", BOOL, "CWR bit"),
    _n("ae", BOOL, "AE bit (AccECN, RFC 9768)"),
)
_SIDE = _struct(
    _n("isn", I64, "sequence number of the SYN / SYN-ACK"),
    _n("window", I64, "raw window field (never scaled on SYN segments, RFC 7323 §2.2)"),
    _n("mss", I64, "MSS option; null when absent"),
    _n("window_scale", I64, "window scale shift count as sent; null when absent"),
    _n("sack_permitted", BOOL, "SACK-permitted option present"),
    _n("timestamps", BOOL, "timestamps option present"),
    _n("tsval", I64, "TSval of the timestamps option; null when absent"),
    _n("tfo", _TFO, "TCP Fast Open"),
    _n("mptcp", BOOL, "MP_CAPABLE present"),
    _n("ecn", _ECN, "ECN header bits on that segment"),
    _n("ttl", I64, "IPv4 TTL or IPv6 hop limit"),
    _n("df", BOOL, "IPv4 DF bit; false for IPv6"),
    _n("options", STR, "option layout in order, p0f's names (`mss,sok,ts,nop,ws`)"),
    _n("offer", STR, "what the segment offers, in words (`mss 65495 ws 7 sack ts`)"),
    _n("p0f", STR, "p0f v3 raw signature of the segment"),
    _n("os", STR, "p0f label with --p0f-db FILE, else null"),
)
_EFFECT = _struct(
    _n("window_scaling", BOOL, "both sides offered window scaling (RFC 7323 §2.2)"),
    _n("client_window_scale", I64, "null when scaling is not in effect"),
    _n("server_window_scale", I64, "null when scaling is not in effect"),
    _n("sack", BOOL, "SACK in effect"),
    _n("timestamps", BOOL, "timestamps in effect"),
    _n("ecn", BOOL, "ECN in effect (RFC 3168 §6.1.1)"),
    _n("tfo", BOOL, "data on the SYN acknowledged by the SYN-ACK"),
    _n("mss_to_server", I64, "largest segment the client may send"),
    _n("mss_to_client", I64, "largest segment the server may send"),
)
_NEGOTIATION = _struct(
    _n("syn_seen", BOOL, "a SYN (no ACK) from the client was seen"),
    _n("synack_seen", BOOL, "a SYN-ACK from the server was seen"),
    _n("client", _SIDE, "from the client's first SYN; null without one"),
    _n("server", _SIDE, "from the server's first SYN-ACK; null without one"),
    _n("in_effect", _EFFECT, "what both SYNs agreed; null unless both were seen"),
    _n("warnings", pa.list_(STR), "`syn_options_changed`, `window_scale_one_side`, `mss_above_mtu`, ..."),
    _n("summary", STR, "one line: `ws 7/7 sack ts ecn mss 65495/1460`, `no ws ...`, `SYN only: ...`"),
    _n("simultaneous_open", _struct(
        _n("server_syn", _SIDE, "the server's own SYN (a side, as `client`)"),
        _n("client_synack", _SIDE, "the client's SYN-ACK answering it"),
    ), "null, or the crossing SYN and SYN-ACK of a simultaneous open"),
)


def _anomalies() -> pa.StructType:
    # The kinds are the engine's vocabulary (defined once there): one int64 count per kind, in its order.
    return _struct(*(_f(kind, I64, f"Wireshark's `{kind}` count") for kind in handshake_probe.ANOMALY_KINDS))


def _bare(typ: pa.DataType) -> pa.DataType:
    """The type as Arrow's JSON reader returns it: nested fields without their docs and all nullable.
    The reader checks the documented `not null` while it parses (a null there is an error) but types
    its output so; a column whose type differed (in a child's metadata or nullability) would be copied
    by the cast to match, for every flow."""
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _bare(f.type)) for f in typ])
    if pa.types.is_list(typ):
        return pa.list_(_bare(typ.value_type))
    return typ


def record_schema(documented: bool = False) -> pa.Schema:
    """The columns that are record keys, in the records' key order: what the JSON reader parses. Each
    column has its `doc`; with `documented` its nested fields too (the rows of docs/parquet.md)."""
    fields = [
        _f("flow", I64, "1-based, in order of the flow's first segment"),
        _f("client", STR, "`ip:port` of the client (the SYN's sender), IPv6 as `[::1]:port`"),
        _f("server", STR, "`ip:port` of the server"),
        _f("direction", STR, "`observed` (the SYN was seen) or `inferred`"),
        _f("packets", I64, "segments in the flow"),
        _f("client_packets", I64, "segments sent by the client"),
        _f("server_packets", I64, "segments sent by the server"),
        _f("client_bytes", I64, "payload bytes sent by the client (from IP lengths)"),
        _f("server_bytes", I64, "payload bytes sent by the server"),
        _f("first_ts", F64, "first segment, seconds since the epoch (UTC)"),
        _f("last_ts", F64, "last segment, seconds since the epoch (UTC)"),
        _f("duration_ms", F64, "last_ts - first_ts, ms"),
        _f("client_states", pa.list_(STR), "the client's state path, RFC 9293 spelling; UNKNOWN before the "
                                           "capture could tell"),
        _f("server_states", pa.list_(STR), "the server's state path"),
        _f("transitions", pa.list_(_TRANSITION), "every state change of either endpoint, in order"),
        _f("handshake", _HANDSHAKE, "the three-way handshake; times from the first SYN"),
        _f("close", STR, "`fin`, `client-rst`, `server-rst`, `rejected` or `none`"),
        _f("violations", pa.list_(_VIOLATION), "segments that fit no transition (the first 50)"),
        _f("violation_count", I64, "all of them"),
        _f("reused_port", BOOL, "an earlier flow of this capture used the same 4-tuple"),
        _f("tunnels", pa.list_(_TUNNEL), "every tunnel the flow came through; empty when none"),
        _f("conn_state", STR, "Zeek's conn_state (S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH)"),
        _f("history", STR, "Zeek's history letters (`^`: Zeek flipped the direction)"),
        _f("zeek_orig", STR, "which endpoint Zeek calls the originator (`client` / `server`)"),
        _f("completeness", I64, "tshark's tcp.completeness bitmask (1 SYN, 2 SYN-ACK, 4 ACK, 8 DATA, 16 FIN, "
                                "32 RST)"),
        _f("completeness_flags", STR, "the same, spelled as tshark does (`SYN|SYN-ACK|ACK`, `-` for 0)"),
        _f("anomalies", _anomalies(), "Wireshark's TCP analysis, counted per kind"),
        _f("negotiation", _NEGOTIATION, "options and parameters both SYNs negotiated (issue 12); null when "
                                        "the engine does not report it", nullable=True),
    ]
    if not documented:
        fields = [pa.field(f.name, _bare(f.type), f.nullable, f.metadata) for f in fields]
    return pa.schema(fields)


def schema(documented: bool = False) -> pa.Schema:
    """The full schema of a Parquet file / Arrow stream: the record columns, then `file` and
    `schema_version`; the version also in the schema's metadata. Every column has its meaning in its
    metadata (`doc`); nested fields' meanings are in docs/parquet.md (`documented`: in the schema)."""
    fields = list(record_schema(documented)) + [
        _f("file", STR, "the capture the flow came from when several were analyzed at once; null for one",
           nullable=True),
        _f("schema_version", pa.int16(), f"this schema's version ({SCHEMA_VERSION})"),
    ]
    return pa.schema(fields, metadata={"handshake_probe.schema_version": str(SCHEMA_VERSION),
                                       "handshake_probe.version": handshake_probe.__version__})


_RECORD_SCHEMA: Optional[pa.Schema] = None
_SCHEMA: Optional[pa.Schema] = None


def _schemas() -> Tuple[pa.Schema, pa.Schema]:
    """(the record columns as the JSON reader checks them, the full schema), built once."""
    global _RECORD_SCHEMA, _SCHEMA
    if _SCHEMA is None:
        _RECORD_SCHEMA = record_schema(documented=True)
        _SCHEMA = schema()
    assert _RECORD_SCHEMA is not None
    return _RECORD_SCHEMA, _SCHEMA


def finish_table(records: pa.Table, file: Optional[str] = None) -> pa.Table:
    """Record columns plus `file` and `schema_version`, under the full schema (its docs and metadata).
    Columns of the JSON reader have the schema's types already and are taken as they are; others
    (from Python records) are cast."""
    _rec, full = _schemas()
    n = records.num_rows
    columns = [c if c.type.equals(f.type) else c.cast(f.type) for c, f in zip(records.columns, full)]
    columns += [_repeated_text(file, n), _repeated_int16(SCHEMA_VERSION, n)]
    return pa.Table.from_arrays(columns, schema=full)


# The two constant columns are built from buffers: pyarrow's first conversion of a Python value
# (pa.array([...]), pa.scalar(...)) imports pandas when it is installed, 50 MB of resident memory that a
# Parquet writer never needs (measured on the 1M-packet bench: 257 -> 207 MB peak).
def _repeated_int16(value: int, n: int) -> pa.Array:
    return pa.Array.from_buffers(pa.int16(), n, [None, pa.py_buffer(value.to_bytes(2, "little", signed=True) * n)])


def _repeated_text(text: Optional[str], n: int) -> pa.Array:
    if text is None:
        return pa.nulls(n, STR)
    data = text.encode()
    offsets = array.array("i", range(0, len(data) * (n + 1), len(data))) if data else array.array("i", [0] * (n + 1))
    return pa.Array.from_buffers(STR, n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])


def with_file(table: pa.Table, file: Optional[str]) -> pa.Table:
    """The table with every row's `file` set to `file`."""
    i = table.schema.get_field_index("file")
    return table.set_column(i, table.schema.field(i), _repeated_text(file, table.num_rows))


def table_from_jsonl(text: bytes, file: Optional[str] = None) -> pa.Table:
    """The engine's JSON Lines (whole lines) as a table of the full schema."""
    rec, _full = _schemas()
    if not text:
        return finish_table(rec.empty_table(), file)
    opts = pa_json.ParseOptions(explicit_schema=rec, unexpected_field_behavior="error")
    # One block for the whole text: the reader's default block size would cut a chunk with a long record.
    read = pa_json.ReadOptions(use_threads=False, block_size=max(len(text), 1 << 20))
    return finish_table(pa_json.read_json(io.BytesIO(text), read_options=read, parse_options=opts), file)


def table_from_records(records: Iterable[Dict[str, Any]], file: Optional[str] = None) -> pa.Table:
    """Records already in Python (dicts of the JSON contract) as a table of the full schema; a key the
    schema does not know is an error."""
    rec, _full = _schemas()
    rows: List[Dict[str, Any]] = []
    known = set(rec.names)
    for r in records:
        unknown = set(r) - known - {"file"}
        if unknown:
            raise ValueError(f"record keys not in the Arrow schema: {', '.join(sorted(unknown))}")
        rows.append(r)
    return finish_table(pa.Table.from_pylist(rows, schema=rec), file)


class ParquetSink:
    """A Parquet file written in row groups of ROW_GROUP_ROWS as tables come: what is held is at most one
    row group. Written to a temporary file beside the target and renamed at close(), so the target is
    always a whole Parquet file (an interrupted run leaves none); abort() removes the temporary file."""

    def __init__(self, path: str, compression: str = "zstd") -> None:
        import pyarrow.parquet as pq
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        fd, self._tmp = tempfile.mkstemp(prefix=".handshake-probe-", suffix=".parquet.partial", dir=directory)
        os.close(fd)
        self._writer = pq.ParquetWriter(self._tmp, _schemas()[1], compression=compression)
        self._held: List[pa.Table] = []
        self._rows = 0
        self.rows_written = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._held.append(table)
        self._rows += table.num_rows
        while self._rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        whole = pa.concat_tables(self._held)
        group, rest = whole.slice(0, rows), whole.slice(rows)
        self._writer.write_table(group, row_group_size=rows)
        self.rows_written += group.num_rows
        self._held = [rest] if rest.num_rows else []      # a slice: nothing is copied
        self._rows = rest.num_rows

    def close(self) -> None:
        if self._rows:
            self._flush(self._rows)
        self._writer.close()
        # mkstemp made it private (0600); the file gets the mode any new file gets (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


class ArrowStreamSink:
    """An Arrow IPC stream (what `pyarrow.ipc.open_stream`, DuckDB and polars' `read_ipc_stream` read
    from a pipe): each table is written at once as record batches, so a reader sees flows as they finish.
    To `out`, or to the file `path` (opened here, so an unwritable path fails before any work; removed
    by abort()). The stream starts at the first write or at close(): abort() before any leaves nothing."""

    def __init__(self, out: Optional[BinaryIO] = None, path: Optional[str] = None) -> None:
        self._path = path
        self._out: BinaryIO = open(path, "wb") if path is not None else out  # type: ignore[assignment]
        self._writer: Optional[Any] = None
        self.rows_written = 0

    def _start(self) -> Any:
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._out, _schemas()[1])
        return self._writer

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._start().write_table(table)
        self.rows_written += table.num_rows
        self._out.flush()

    def close(self) -> None:
        self._start().close()
        self._out.flush()
        if self._path is not None:
            self._out.close()

    def abort(self) -> None:
        if self._path is not None:
            self._out.close()
            os.unlink(self._path)
        elif self._writer is not None:
            self._writer.close()      # what was sent stays a whole stream


def schema_rows(fields: Sequence[pa.Field] = (), prefix: str = "") -> List[Tuple[str, str, str]]:
    """(column path, Arrow type, meaning) for every field, nested ones as `parent.child` (list items as
    `parent[].child`): the rows of docs/parquet.md."""
    out: List[Tuple[str, str, str]] = []
    for field in (fields or list(schema(documented=True))):
        path = prefix + field.name
        typ = field.type
        doc = (field.metadata or {}).get(b"doc", b"").decode()
        out.append((path, _type_name(typ) + ("" if field.nullable else " not null"), doc))
        if pa.types.is_struct(typ):
            out += schema_rows([typ.field(i) for i in range(typ.num_fields)], path + ".")
        elif pa.types.is_list(typ) and pa.types.is_struct(typ.value_type):
            vt = typ.value_type
            out += schema_rows([vt.field(i) for i in range(vt.num_fields)], path + "[].")
    return out


def _type_name(typ: pa.DataType) -> str:
    if pa.types.is_struct(typ):
        return "struct"
    if pa.types.is_list(typ):
        return f"list<{'struct' if pa.types.is_struct(typ.value_type) else typ.value_type}>"
    return str(typ)
