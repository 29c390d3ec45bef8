"""Networks and their training: the MLPs (models), objectives (losses), the training
loop (engine), checkpoints, run specs, soft targets, bias shifts, and one run end to
end (runs). Paper sections 2-3."""
