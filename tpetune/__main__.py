from tpetune.cli import main

raise SystemExit(main())
