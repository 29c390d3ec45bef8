# Opt-in (not part of `all`): the teacher ablation of issue 16. The paper's teacher with
# exactly one ingredient removed (no jitter; no dropout; no max-norm), each with the
# distilled student it yields. Run `snakemake --cores 2 ablation`, then re-render the
# report (`--forcerun report`): its "Ablation" section appears when these runs exist.


wildcard_constraints:
    variant="|".join(plan.ABLATIONS),


rule train_ablation_teacher:
    input:
        data=DATA,
    output:
        run_files("results/ablation/{variant}/teacher"),
    params:
        spec=lambda wc: plan.ablation_teacher_spec(config, wc.variant),
        run="ablation/{variant}/teacher",
    threads: 1  # three teachers: side by side on 1 thread each beats one after another on 2
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=GPUS,
    log:
        "results/logs/ablation/{variant}/teacher.log",
    benchmark:
        "results/benchmarks/ablation/{variant}/teacher.tsv"
    shell:
        TRAIN + LOG


rule ablation_soft_targets:
    input:
        data=DATA,
        teacher="results/ablation/{variant}/teacher/model.pt",
    output:
        "results/ablation/{variant}/teacher/soft_targets.pt",
    threads: 1
    log:
        "results/logs/ablation/{variant}/soft_targets.log",
    shell:
        "kdrepro soft-targets --teacher {input.teacher} --data {input.data} --out {output}"
        " --threads {threads}" + LOG


rule train_ablation_distilled:
    input:
        data=DATA,
        soft_targets="results/ablation/{variant}/teacher/soft_targets.pt",
        teacher="results/ablation/{variant}/teacher/model.pt",
    output:
        run_files("results/ablation/{variant}/distilled"),
    params:
        spec=lambda wc: plan.ablation_student_spec(config),
        run="ablation/{variant}/distilled",
    threads: 1
    resources:
        mem_mb=2500,
        runtime=60,
        gpu=GPUS,
    log:
        "results/logs/ablation/{variant}/distilled.log",
    benchmark:
        "results/benchmarks/ablation/{variant}/distilled.tsv"
    shell:
        TRAIN + DISTIL + LOG


rule ablation:
    input:
        plan.ablation_targets(config),
