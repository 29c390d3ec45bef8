# Section 3's transfer-set ablations: without some classes (omit) or with only
# some (keep), then a sweep of the shifted classes' output biases.


def transfer_priority(wc):
    """Omit runs train on ~9/10 of MNIST (slow, like the 800-unit grid); keep runs on ~1/5."""
    return 2 if wc.kind == "omit" else 0


rule train_transfer:
    input:
        data=DATA,
        soft_targets=SOFT_TARGETS,
        teacher=f"{TEACHER}/model.pt",
    output:
        run_files("results/{kind}/c{classes}/seed{seed}"),
    params:
        spec=lambda wc: student_spec(
            wc.kind, config["student"]["width"], wc.seed, config["distill"]["temperature"],
            **transfer_spec(wc.kind, wc.classes)),
        run="{kind}/c{classes}/seed{seed}",
    threads: 1
    priority: transfer_priority
    resources:
        mem_mb=2500,
        runtime=60,
        gpu=GPUS,
    log:
        "results/logs/train_{kind}/c{classes}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_{kind}/c{classes}/seed{seed}.tsv"
    shell:
        TRAIN + DISTIL + LOG


rule bias_sweep:
    input:
        data=DATA,
        run=run_files("results/{kind}/c{classes}/seed{seed}"),
    output:
        "results/{kind}/c{classes}/seed{seed}/bias.json",
    params:
        run="results/{kind}/c{classes}/seed{seed}",
        paper_shift=lambda wc: config[wc.kind]["paper_shift"],
        shifts=lambda wc: "{start}:{stop}:{step}".format(**config[wc.kind]["sweep"]),
        set_all=lambda wc: (
            "" if config[wc.kind]["set_all_biases"] is None
            else f" --set-all-biases={config[wc.kind]['set_all_biases']}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/bias_sweep/{kind}/c{classes}/seed{seed}.log",
    benchmark:
        "results/benchmarks/bias_sweep/{kind}/c{classes}/seed{seed}.tsv"
    shell:
        "kdrepro bias --run-dir {params.run} --data {input.data} --out {output}"
        " --paper-shift {params.paper_shift} --shifts={params.shifts}{params.set_all}"
        " --threads {threads}" + LOG
