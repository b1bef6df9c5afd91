"""Flow records of many captures as a Dask DataFrame: one partition per capture.

    import handshake_probe.dask
    from distributed import Client
    client = Client("tcp://scheduler:8786")          # or none: Dask's local scheduler
    flows = handshake_probe.dask.analyze("/data/captures/*.pcap")
    flows[flows.close == "server-rst"].groupby("file").size().compute()

`analyze(paths_or_glob, **options)` builds the graph (`dask.dataframe.from_map`, one task per capture,
nothing is read until a compute); whatever scheduler is active runs it: a `distributed.Client` to a real
cluster, or Dask's local one. The columns are the Parquet schema's (views/arrow.py, docs/parquet.md), as
pandas ArrowDtype columns (nested lists and structs kept as they are); `file` names each row's capture.
Workers open the captures themselves: by path (the same path on every worker: a shared filesystem) or by
any fsspec URL the workers can open (`s3://bucket/caps/*.pcap`, with `storage_options`).

Needs `pip install 'handshake-probe[cluster]'` (pyarrow, dask[dataframe], distributed).
"""

from __future__ import annotations

import glob as _glob
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

__all__ = ["CaptureError", "analyze", "capture_paths", "partition"]


class CaptureError(Exception):
    """A capture that could not be read to its end; the message names the file (`FILE: frame N at byte
    offset X: what is wrong`)."""


def capture_paths(paths_or_glob: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
                  storage_options: Optional[Mapping[str, Any]] = None, absolute: bool = True) -> List[str]:
    """The captures meant: a file or URL as given, a directory (or a URL's prefix) for the captures directly in
    it, a glob pattern for what it matches, sorted; a list of any of these, in its order. Local paths are
    made absolute (`absolute`): a worker's working directory is not ours."""
    from handshake_probe.files.parallel import CAPTURE_SUFFIXES, expand
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else list(paths_or_glob)
    out: List[str] = []
    for item in (os.fspath(i) for i in items):
        if "://" in item:             # a URL, file:// included: listed by fsspec
            import fsspec
            fs, _token, _paths = fsspec.core.get_fs_token_paths(item, storage_options=dict(storage_options or {}))
            if _glob.has_magic(item):
                found = sorted(fs.glob(item))
            elif fs.isdir(item):
                found = sorted(p for p in fs.ls(item, detail=False) if p.lower().endswith(CAPTURE_SUFFIXES))
            else:
                out.append(item)
                continue
            out += [fs.unstrip_protocol(p) for p in found]
        elif _glob.has_magic(item):
            out += [os.path.abspath(p) if absolute else p for p in sorted(_glob.glob(item))]
        else:
            out += [os.path.abspath(p) if absolute else p for p in expand([item])]
    return out


def partition(path: str, options: Dict[str, Any], errors: str = "raise",
              storage_options: Optional[Mapping[str, Any]] = None) -> Any:
    """One capture's flows as a pandas DataFrame (ArrowDtype columns): the function each task runs."""
    import pandas as pd

    from handshake_probe.files.tables import analyze_table
    from handshake_probe.views.arrow import with_file
    result = analyze_table(path, options, storage_options)
    if result.error and errors == "raise":
        raise CaptureError(result.error)
    return with_file(result.table, path).to_pandas(types_mapper=pd.ArrowDtype)


def meta() -> Any:
    """The empty DataFrame with the columns and dtypes of every partition."""
    import pandas as pd

    from handshake_probe.views.arrow import schema
    return schema().empty_table().to_pandas(types_mapper=pd.ArrowDtype)


def analyze(paths_or_glob: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]], *,
            errors: str = "raise", storage_options: Optional[Mapping[str, Any]] = None,
            **options: Any) -> Any:
    """A dask.dataframe of the flow records of every capture meant by `paths_or_glob` (see capture_paths),
    one partition per capture, rows in flow order, partitions in the order of the files.

    `options`: the engine's analyze options (msl, linger, idle_timeout, max_open, check_checksums).
    `errors`: "raise" (a capture that does not open or breaks mid-way fails the compute with CaptureError
    naming it) or "keep" (its flows read before the fault are kept, and the other captures' in any case;
    `analyze DIR --dask-scheduler` reports each such file in one line)."""
    import dask.dataframe as dd
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', not {errors!r}")
    paths = capture_paths(paths_or_glob, storage_options)
    if not paths:
        raise FileNotFoundError(f"no capture files in {paths_or_glob!r}")
    return dd.from_map(partition, paths, args=(dict(options), errors, storage_options), meta=meta(),
                       label="handshake-probe-analyze", enforce_metadata=False)
