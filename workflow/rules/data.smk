# MNIST, fetched once on the submit host (compute nodes often have no internet).


localrules:
    fetch_mnist,


rule fetch_mnist:
    output:
        DATA,
    params:
        source=(f"--source-dir {config['mnist_dir']}" if config["mnist_dir"] else ""),
    log:
        "results/logs/fetch_mnist.log",
    shell:
        "kdrepro data fetch --data {output} {params.source} > {log} 2>&1"
