"""The one-class benchmark of chapter 10: the runner, its CSV record, the published tables."""

from .published import PUBLISHED, PUBLISHED_MEANS, SOURCES
from .results import (COLUMNS, RESTORATION_CANDIDATES, append_row, choose_restoration_record, class_table,
                      headline_summary, markdown_summary, mean_by_score, mean_over_classes,
                      outlier_share_f1, read_rows, restoration_ablation,
                      restoration_round_three, run_key, score_table, summarise, summarise_candidates)
from .runner import MODELS, BenchmarkModel, done_key, planned_runs, run_benchmark, run_one

__all__ = ["COLUMNS", "MODELS", "PUBLISHED", "PUBLISHED_MEANS", "BenchmarkModel", "SOURCES",
           "RESTORATION_CANDIDATES",
           "append_row", "choose_restoration_record", "class_table", "done_key",
           "headline_summary", "markdown_summary", "mean_by_score", "mean_over_classes",
           "outlier_share_f1", "planned_runs", "read_rows", "restoration_ablation",
           "restoration_round_three",
           "run_benchmark", "run_key", "run_one", "score_table", "summarise",
           "summarise_candidates"]
