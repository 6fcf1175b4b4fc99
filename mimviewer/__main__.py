"""`python -m mimviewer` is the same as the `mimviewer` command."""

from mimviewer.cli import main

raise SystemExit(main())
