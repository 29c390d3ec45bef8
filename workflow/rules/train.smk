# Teacher, its soft targets, the hard-label baseline and the distilled students.


rule train_teacher:
    input:
        data=DATA,
    output:
        run_files("results/teacher/seed{seed}"),
    params:
        spec=teacher_spec,
        run="teacher/seed{seed}",
    threads: 2
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
    threads: 2
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
