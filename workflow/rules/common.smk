# Configuration check, run specs and target lists. Pure wiring: every
# computation happens in the `kdrepro` CLI that the rules call.
from kdrepro import plan
from kdrepro.config import ConfigError, validate_config

try:
    validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as error:
    raise WorkflowError(f"bad configuration: {error}") from None

DATA = "results/data/mnist.pt"

# SLURM: training jobs ask for one GPU (sbatch --gpus=1) when device is cuda; 0 asks for none.
GPUS = 1 if config["device"] == "cuda" else 0
RUN_FILES = ("model.pt", "metrics.json", "manifest.json")


wildcard_constraints:
    seed=r"\d+",
    width=r"\d+",
    temp=r"\d+(\.\d+)?",
    classes=r"\d+",
    kind=r"omit|keep",


def run_files(prefix):
    return [f"{prefix}/{name}" for name in RUN_FILES]


# Run specs and target lists come from the tested experiment plan (kdrepro.plan).
def teacher_spec(wc):
    return plan.teacher_spec(config, wc.seed)


def student_spec(role, width, seed, temperature=None, **transfer):
    return plan.student_spec(config, role, width, seed, temperature, **transfer)


def transfer_spec(kind, classes):
    return plan.transfer_spec(config, kind, classes)


# One command line for every training rule; distilled rules add the soft targets.
TRAIN = (
    "kdrepro train --spec {params.spec:q} --data {input.data} --out results/{params.run}"
    " --checkpoint results/checkpoints/{params.run}.pt --label {params.run}"
    " --threads {threads} --progress results/progress/{params.run}.json"
)
DISTIL = " --soft-targets {input.soft_targets} --teacher {input.teacher}"
TRAIN_BLOCK = (
    "kdrepro train-block --spec {params.spec:q} --temperatures {params.temperatures}"
    " --data {input.data} {params.runs} --checkpoint {params.checkpoint} --threads {threads}"
    " --progress {params.progress}" + DISTIL
)
LOG = " > {log} 2>&1"


def by_width(wc):
    """Scheduling priority: wider (slower) students first, so the last job to
    finish under --cores 2 is a short one and no core idles at the end.
    `wc` is a job's wildcards or a student block of kdrepro.plan.grid_blocks."""
    width = int(wc["width"] if isinstance(wc, dict) else wc.width)
    return 2 if width >= 800 else 1 if width >= 300 else 0


def block_runtime(block):
    """Minutes for a student block: a single run's 60 per 800-unit-equivalent student."""
    return max(60, round(60 * len(block["runs"]) * block["width"] / 800))


TEACHER_SEED = config["teacher"]["seeds"][0]
TEACHER = f"results/teacher/seed{TEACHER_SEED}"
SOFT_TARGETS = f"{TEACHER}/soft_targets.pt"
# Two or more teachers train side by side on one thread each at the start: on 2 CPUs a
# second thread makes a teacher epoch only ~1.3x faster, so two 1-thread teachers finish
# both sooner than two 2-thread teachers one after the other.
TEACHER_THREADS = 1 if len(config["teacher"]["seeds"]) > 1 else 2


def experiment_targets():
    """metrics.json of every run, bias.json of omit/keep runs."""
    return plan.experiment_targets(config)
