"""The study's claims, one module each, every module with the same verbs:

    plan(ctx) -> (experiments, recorded)      the claim's experiments (replication.experiments.Experiment)
                                              and settings to record once in run.json
    estimate(task, machine) -> dict           time and memory of one experiment, before it runs
    TASKS: {task kind: function(task) -> dict}   what a worker runs for it
    summarise(summary, outcomes[, folder])    its sections of summary.json
    judge(paper, summary) -> [claim]          its verdict rows (by the rules of replication.verdicts)
    figures(summary, paper, out_dir) -> {name: SVG file or None}
    report(summary, paper, folder, figures_dir) -> {"sections", "figures", "prose"}

`generation` holds C1, C2 and the uncached validation; `quality` C3 and the samples; `scaling` C4;
`languages` C5; `beyond` the measurements beyond the paper (FAVOR+, PAR), which are not judged. The
run, the summary and the report loop over CLAIMS in this order.
"""

from __future__ import annotations

from . import beyond, generation, languages, quality, scaling

CLAIMS = (generation, quality, scaling, languages, beyond)


def task_runner(kind):
    """The function a worker runs for a task of this kind."""
    for claim in CLAIMS:
        if kind in claim.TASKS:
            return claim.TASKS[kind]
    raise ValueError(f"unknown task kind {kind!r}")
