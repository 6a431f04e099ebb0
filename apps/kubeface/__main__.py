"""``python -m kubeface``: the same as the ``kubeface`` command."""

import sys

from kubeface.cli import main

sys.exit(main())
