from hakon.cli import main

raise SystemExit(main())
