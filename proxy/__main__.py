"""`python -m proxy`: the same as the `signing-proxy` command."""

from proxy.cli import main

raise SystemExit(main())
