"""MNIST and what is built from it: IDX files and the verified cache (mnist), where the
files come from (sources, fetch), transfer sets and the validation split (transfer),
and the teacher's input jitter (jitter). Paper section 3."""
