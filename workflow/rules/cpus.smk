# The local core budget, clamped to the CPUs there are (included first, before any rule).
from kdrepro import cpus


def clamp_local_cores():
    """Never more compute threads than CPUs: lower --cores to the CPUs this process
    may use (so jobs side by side fit, and each rule's threads are scaled down to
    it, as Snakemake does for --cores). Only for local runs: under an executor such
    as SLURM (--jobs, no local core budget) each job gets its own CPUs; inside a
    SLURM job the affinity mask is the job's --cpus-per-task."""
    requested = workflow.resource_settings.cores
    if workflow.nodes is not None or requested is None:
        return
    available = cpus.available_cpus()
    cores = cpus.clamp_cores(requested, available)
    if cores != requested:
        logger.info(f"note: --cores {requested} but this process may use {available} CPUs: "
                    f"running at most {cores} threads at once")
        workflow.resource_settings.cores = cores
        workflow.global_resources["_cores"] = cores


clamp_local_cores()
