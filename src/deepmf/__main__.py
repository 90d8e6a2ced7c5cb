"""``python -m deepmf`` is the ``deepmf`` command; ``torchrun -m deepmf train ...`` trains data-parallel."""

from deepmf.cli.app import main

if __name__ == "__main__":
    main()
