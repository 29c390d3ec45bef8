# kdrepro: every MNIST experiment of Hinton, Vinyals & Dean (2015), section 3,
# as a file target. Run:  snakemake --cores 4 reports/report.html
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/cpus.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ablate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/teacher_ablation.smk"


rule all:
    input:
        "reports/report.html",
        "reports/report.md",
    default_target: True
