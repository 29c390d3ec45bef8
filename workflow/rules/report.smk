# Collect every run's metrics into one table, then render the report.


rule collect:
    input:
        experiment_targets(),
    output:
        "results/metrics.csv",
    resources:
        mem_mb=1500,
        runtime=5,
    log:
        "results/logs/collect.log",
    shell:
        "kdrepro collect --results results --out {output}" + LOG


rule report:
    input:
        experiment_targets(),
        metrics="results/metrics.csv",
        data=DATA,
    output:
        html="reports/report.html",
        md="reports/report.md",
        # the collected table beside the report, so a committed report carries its numbers
        metrics="reports/metrics.csv",
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/report.log",
    shell:
        # the table `collect` wrote, copied rather than collected a second time
        "(cp {input.metrics} {output.metrics} && kdrepro report --results results"
        " --templates templates --out reports --data {input.data})" + LOG


# Opt-in (not part of `all`): the same report as PDF, for review systems that take
# only PDF attachments; rendered from the HTML by WeasyPrint with its print styles.
rule report_pdf:
    input:
        "reports/report.html",
    output:
        "reports/report.pdf",
    resources:
        mem_mb=1500,
        runtime=10,
    log:
        "results/logs/report_pdf.log",
    shell:
        "kdrepro pdf {input} --out {output}" + LOG


# Opt-in (not part of `all`): the training-speed benchmark of benchmarks/README.md.
# Run it alone, e.g. `snakemake --cores 2 results/speed/train_speed.json`, then
# re-render the report: its figures appear in an appendix. Jobs running beside
# it would slow it down: run it on its own. (Not `workflow.cores`: executors
# such as SLURM run without --cores.)
rule speed_benchmark:
    input:
        data=DATA,
    output:
        "results/speed/train_speed.json",
    threads: 2
    log:
        "results/logs/speed_benchmark.log",
    shell:
        "python benchmarks/train_speed.py --quick --data {input.data} --out {output}" + LOG
