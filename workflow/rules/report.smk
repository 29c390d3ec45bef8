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
        "kdrepro collect results --out {output}" + LOG


rule report:
    input:
        "results/metrics.csv",
        experiment_targets(),
        data=DATA,
    output:
        html="reports/report.html",
        md="reports/report.md",
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/report.log",
    shell:
        "kdrepro report --results results --templates templates --out-dir reports"
        " --data {input.data}" + LOG
