from scgraphbench.cli import main

raise SystemExit(main())
