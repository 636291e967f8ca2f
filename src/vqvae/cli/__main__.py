"""``python -m vqvae.cli`` (and ``torchrun -m vqvae.cli``): the ``vqvae`` command."""

import sys

from vqvae.cli import main

sys.exit(main())
