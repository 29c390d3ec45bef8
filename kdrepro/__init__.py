"""kdrepro: a declarative reproduction of Hinton, Vinyals & Dean (2015), section 3 (MNIST)."""

__version__ = "0.1.0"
