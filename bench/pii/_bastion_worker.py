"""Bastion side of bench/pii: scan a Parquet file in a fresh process; print timings, peak RSS and findings."""

from __future__ import annotations

import json
import sys
import time

from bastion.data.pii import detect_spans_batch, scan_table


def peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork+exec, so a big parent would inflate the child's figure."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    import pandas as pd

    # warm imports, regexes and name dictionaries on a tiny table (not the file: RSS after this is the baseline)
    scan_table(pd.DataFrame({"a": ["Jane Doe lives at 1 Main St and mails jane@example.com today"] * 5}))
    rss0 = peak_rss_mb() * 1024
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    report = scan_table(path)
    cpu, wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    out = {"rows": meta.num_rows, "cells": meta.num_rows * meta.num_columns, "cpu_s": cpu, "wall_s": wall,
           "peak_rss_mb": peak_rss_mb(),
           "rss_after_load_mb": rss0 / 1024, "report": report.to_dict()}
    if mode == "spans":
        text_cols = [c.column for c in report.columns if c.kind == "text"]
        table = pq.read_table(path, columns=text_cols).to_pandas()
        out["spans"] = {c: [[(s.entity, s.start, s.end, s.score) for s in row]
                            for row in detect_spans_batch(table[c].tolist())] for c in text_cols}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
