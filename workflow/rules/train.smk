# Teacher, its soft targets, the hard-label baseline and the distilled students.


rule train_teacher:
    input:
        data=DATA,
    output:
        run_files("results/teacher/seed{seed}"),
    params:
        spec=teacher_spec,
        run="teacher/seed{seed}",
    threads: TEACHER_THREADS
    priority: 10  # every distilled student waits for the teacher
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=GPUS,
    log:
        "results/logs/train_teacher/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_teacher/seed{seed}.tsv"
    shell:
        TRAIN + LOG


rule soft_targets:
    input:
        data=DATA,
        teacher="results/teacher/seed{seed}/model.pt",
    output:
        "results/teacher/seed{seed}/soft_targets.pt",
    threads: TEACHER_THREADS  # one thread while a second teacher may still be training
    priority: 10
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/soft_targets/seed{seed}.log",
    benchmark:
        "results/benchmarks/soft_targets/seed{seed}.tsv"
    shell:
        "kdrepro soft-targets --teacher {input.teacher} --data {input.data} --out {output}"
        " --threads {threads}" + LOG


rule train_baseline:
    input:
        data=DATA,
    output:
        run_files("results/baseline/h{width}/seed{seed}"),
    params:
        spec=lambda wc: student_spec("baseline", wc.width, wc.seed),
        run="baseline/h{width}/seed{seed}",
    threads: 1
    priority: by_width
    resources:
        mem_mb=2500,
        runtime=60,
        gpu=GPUS,
    log:
        "results/logs/train_baseline/h{width}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_baseline/h{width}/seed{seed}.tsv"
    shell:
        TRAIN + LOG


rule train_distilled:
    input:
        data=DATA,
        soft_targets=SOFT_TARGETS,
        teacher=f"{TEACHER}/model.pt",
    output:
        run_files("results/distilled/h{width}/T{temp}/seed{seed}"),
    params:
        spec=lambda wc: student_spec("distilled", wc.width, wc.seed, float(wc.temp)),
        run="distilled/h{width}/T{temp}/seed{seed}",
    threads: 1
    priority: by_width
    resources:
        mem_mb=2500,
        runtime=60,
        gpu=GPUS,
    log:
        "results/logs/train_distilled/h{width}/T{temp}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_distilled/h{width}/T{temp}/seed{seed}.tsv"
    shell:
        TRAIN + DISTIL + LOG


# The temperature grid as student blocks (kdrepro.plan.grid_blocks): one job per
# (width, seed) trains every temperature of that width in one process. Outputs
# cannot come from wildcards, so each block is its own rule; a rule without
# wildcards wins over train_distilled (made explicit by the ruleorder), which
# still trains the distilled cells outside the grid (e.g. h800/T20/seed2).
for block in plan.grid_blocks(config):

    rule:
        name:
            f"train_block_{block['name']}"
        input:
            data=DATA,
            soft_targets=SOFT_TARGETS,
            teacher=f"{TEACHER}/model.pt",
        output:
            [f for run in block["runs"] for f in run_files(f"results/{run}")],
        params:
            spec=student_spec("distilled", block["width"], block["seed"], block["temperatures"][0]),
            temperatures=",".join(plan.temp_tag(t) for t in block["temperatures"]),
            runs=" ".join(f"--out results/{r} --label {r}" for r in block["runs"]),
            checkpoint=f"results/checkpoints/blocks/{block['name']}.pt",
            progress=f"results/progress/blocks/{block['name']}.json",
        threads: 1
        priority: by_width(block)
        resources:
            mem_mb=2000,  # measured peak RSS 1.42 GB for ten 300-unit students (docs/results.md)
            runtime=block_runtime(block),
            gpu=GPUS,
        log:
            f"results/logs/train_block/{block['name']}.log",
        benchmark:
            f"results/benchmarks/train_block/{block['name']}.tsv"
        shell:
            TRAIN_BLOCK + LOG

    workflow.ruleorder(f"train_block_{block['name']}", "train_distilled")
