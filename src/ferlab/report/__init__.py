"""The reproduction report: every configuration of the five papers beside ferlab's runs.

``ferlab compare RUN_DIR... --report FILE`` and ``benchmarks/reproduce.py`` build it from run
folders (written by :func:`ferlab.engine.train`) and the plan ``benchmarks/reproduction.yaml``.
"""

from ferlab.report.build import (
    COLLAPSED,
    GAP_POINTS,
    CheckResult,
    Comparison,
    Gap,
    Report,
    Row,
    Stat,
    build_report,
    compare_rows,
    conclusions,
    gap,
    identical_seeds,
    mean_sd,
)
from ferlab.report.plan import (
    CHECK_KINDS,
    STAGES,
    Check,
    Configuration,
    GpuOnly,
    Paper,
    ReproductionSpec,
    Schedule,
    load_spec,
)
from ferlab.report.render import (
    draw_figures,
    embed_sections,
    protocol_text,
    render_markdown,
    write_report,
)
from ferlab.report.runs import (
    MACHINE_FILE,
    RunRecord,
    cpu_name,
    epoch_seconds,
    folder_runs,
    protocol_difference,
    read_run,
    record_machine,
)

__all__ = [
    "CHECK_KINDS",
    "COLLAPSED",
    "GAP_POINTS",
    "CheckResult",
    "Comparison",
    "Gap",
    "Report",
    "Row",
    "Stat",
    "build_report",
    "compare_rows",
    "conclusions",
    "draw_figures",
    "embed_sections",
    "gap",
    "identical_seeds",
    "mean_sd",
    "protocol_text",
    "render_markdown",
    "write_report",
    "MACHINE_FILE",
    "STAGES",
    "Check",
    "Configuration",
    "GpuOnly",
    "Paper",
    "ReproductionSpec",
    "RunRecord",
    "Schedule",
    "cpu_name",
    "epoch_seconds",
    "folder_runs",
    "load_spec",
    "protocol_difference",
    "read_run",
    "record_machine",
]
