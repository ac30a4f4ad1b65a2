"""`python -m proxy`: the same as the `signing-proxy` command."""

from proxy.cli.main import main

raise SystemExit(main())
